"""Benchmarks with same-run references (`liquid-control bench cells|envs|ppo|readout`)."""
