#!/usr/bin/env python
"""How well a cloned policy agrees with its expert: on the expert's own states and on the learner's.

    python scripts/imitation_gap.py policies/rovernav-ltc --episodes 30
    python scripts/imitation_gap.py policies/dronenav-ltc --split val --json gap.json

Two sets of episodes on the same layouts (``--split``, seeds 0..N-1), both labelled by the expert (the
privileged teacher of the policy's env, with ``--expert-options``): the expert driving (its own state
distribution, what BC trains on) and the policy driving (the states it meets in closed loop, what DAgger
relabels). For each, per action dimension in the normalised [-1, 1] space: the mean squared error of
the policy's action against the expert's label and their correlation, plus the success rate. A policy
that fits the expert's states but not its own ones suffers from compounding errors (covariate shift).
The episodes are written to ``--out`` (reused if complete).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def agreement(episodes: list[dict], policy) -> dict:
    """Per-dimension MSE / correlation of the policy's actions vs the labels, on recorded episodes.

    The policy is run over each episode's observations from a zero state (the closed-loop computation
    for the episodes it drove itself)."""
    preds, labels = [], []
    for ep in episodes:
        obs = torch.as_tensor(ep["observations"][None], dtype=torch.float32)
        with torch.no_grad():
            pred, _ = policy(obs, normalized=True)
        preds.append(pred[0].numpy())
        labels.append(policy.normalize_actions(torch.as_tensor(ep["actions"], dtype=torch.float32)).numpy())
    p, y = np.concatenate(preds), np.concatenate(labels)
    corr = [float(np.corrcoef(p[:, k], y[:, k])[0, 1]) if p[:, k].std() > 0 and y[:, k].std() > 0
            else float("nan") for k in range(p.shape[1])]  # fmt: skip
    return {"steps": int(len(p)), "episodes": len(episodes),
            "success_rate": float(np.mean([bool(e["success"]) for e in episodes])),
            "mse": [float(v) for v in ((p - y) ** 2).mean(0)], "corr": corr}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policy", help="policy checkpoint directory")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--split", default="val", help="layout split of the episodes (default val)")
    ap.add_argument("--expert-options", default=None, metavar="JSON", help="teacher options")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default=None, help="episode directory (default runs/imitation-gap/<policy>)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.episodes < 1:
        ap.error("--episodes must be >= 1")
    from liquid_control.learn.checkpoint import load_config, load_policy
    from liquid_control.learn.demos import collect, load_dataset, parse_expert_options
    from liquid_control.learn.rollout import expert_spec

    try:
        env_id = load_config(args.policy)["env_id"]
        teacher = expert_spec(parse_expert_options(args.expert_options))
    except (OSError, ValueError, KeyError) as exc:
        ap.error(f"{args.policy}: {exc}")
    torch.set_num_threads(1)
    policy, _ = load_policy(args.policy)
    out = Path(args.out or Path("runs") / "imitation-gap" / Path(args.policy).name)
    report = {"policy": str(args.policy), "env": env_id, "split": args.split}
    for name, driver in (("expert_states", teacher), ("learner_states", str(args.policy))):
        d = out / name
        collect(env_id, args.episodes, d, split=args.split, workers=args.workers, controller=driver,
                labeler=None if name == "expert_states" else teacher)
        report[name] = agreement(load_dataset(d, expect_env=env_id).episodes, policy)
    print(f"\n**{args.policy}** ({env_id}, {args.split} split, {args.episodes} episodes each)\n")
    dims = range(len(report["expert_states"]["mse"]))
    print("| states | success | " + " | ".join(f"mse a{k} | corr a{k}" for k in dims) + " |")
    print("|---|---|" + "---|---|" * len(dims))
    for name in ("expert_states", "learner_states"):
        r = report[name]
        cells = " | ".join(f"{m:.4f} | {c:.2f}" for m, c in zip(r["mse"], r["corr"], strict=True))
        print(f"| {name.split('_')[0]} driving | {r['success_rate']:.2f} | {cells} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
