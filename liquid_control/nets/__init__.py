"""Networks: liquid cells (LTC, CfC), wirings, baselines and policy networks (pure torch)."""
