"""Learning: expert demonstrations, sequence behaviour cloning, DAgger and PPO."""
