#!/usr/bin/env python
"""Online readout adaptation ("learning on the job") of a reservoir policy vs its frozen readout.

    python scripts/reservoir_adapt.py --policy policies/dronenav-esn --suite ood-mass --episodes 50

Evaluates the same episodes (suite, evaluation seed) under each condition:

* ``frozen``: the shipped readout, no adaptation;
* ``rls-all``: ``evaluate --adapt rls`` with the privileged expert as the teacher at every step (the
  policy acts, then makes one RLS step towards the expert's action on that observation: the teacher
  never acts, but it is present for the whole episode);
* ``rls-first-K`` (for each K of ``--teach-steps``): the expert teaches only the first K steps, then
  the adapted readout flies alone.

The readout restarts from the checkpoint at every episode. Per condition it writes the ordinary
results files, and a summary with success / SPL / collision (95% bootstrap CIs) and the paired
difference of success against ``frozen`` (bootstrap CI over episodes) to
``results/adaptation/<policy name>/<suite>-summary.json``. That directory has no ``-`` in its first
level, so ``scripts/make_tables.py`` (which reads ``results/<env>-<policy>/``) never takes it for a
policy row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from liquid_control.evaluate.metrics import paired_difference
from liquid_control.evaluate.runner import evaluate, write_results
from liquid_control.evaluate.suites import resolve_condition
from liquid_control.learn.checkpoint import atomic_write_json
from liquid_control.learn.readout import adapt_options

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("success_rate", "spl", "collision_rate", "timeout_rate")


def conditions(teach_steps: list[int], forgetting: float | None) -> list[tuple[str, dict | None]]:
    """``(name, adapt spec)`` for frozen, RLS with the teacher all episode, and RLS for the first K steps."""
    out: list[tuple[str, dict | None]] = [("frozen", None),
                                          ("rls-all", adapt_options("rls", forgetting=forgetting))]
    for k in teach_steps:
        out.append((f"rls-first-{k}", adapt_options("rls", forgetting=forgetting, teach_steps=k)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, help="reservoir checkpoint directory (esn or lsm)")
    p.add_argument("--env", default=None, help="env id (default: the checkpoint's)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--suite", default=None, help="suite of envs/<env>.yaml (default ood-mass)")
    where.add_argument("--split", default=None, help="a plain split (train|val|test) instead of a suite")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (same episodes in every condition)")
    p.add_argument("--teach-steps", default="40,150",
                   help="comma-separated K: conditions where the expert teaches the first K steps only")
    p.add_argument("--forgetting", type=float, default=None, help="RLS forgetting factor (default 0.995)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "adaptation")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    policy = Path(args.policy)
    if not (policy / "config.json").exists():
        raise SystemExit(f"{policy} is not a checkpoint directory (no config.json)")
    env_id = args.env or json.loads((policy / "config.json").read_text())["env_id"]
    ks = [int(k) for k in args.teach_steps.split(",") if k.strip()]
    if args.suite is None and args.split is None:
        args.suite = "ood-mass"
    condition = resolve_condition(env_id, suite=args.suite, split=args.split)
    dest = args.out / policy.name
    rows, frozen_eps = [], None
    for name, adapt in conditions(ks, args.forgetting):
        t0 = time.monotonic()
        res = evaluate(str(policy), env_id, condition, episodes=args.episodes, seed=args.seed,
                       workers=args.workers, adapt=adapt, progress=True)
        write_results(res, dest / f"{condition.name}-{name}.json")
        row = {"condition": name, "adapt": adapt, "wall_clock_s": round(time.monotonic() - t0, 1),
               "errors": res["errors"], **{k: res["metrics"][k] for k in KEYS}}
        if frozen_eps is None:
            frozen_eps = res["per_episode"]
        else:
            row["success_minus_frozen"] = paired_difference(frozen_eps, res["per_episode"])
        rows.append(row)
        print(f"[{name}] success {row['success_rate']['mean']:.2f} {row['success_rate']['ci95']} "
              f"({row['wall_clock_s']:.0f} s)", flush=True)
    summary = {"policy": str(policy), "env_id": env_id, "suite": condition.name, "episodes": args.episodes,
               "seed": args.seed,
               "teacher": "privileged expert (its action on the same observation; it never acts)",
               "command": "scripts/reservoir_adapt.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "conditions": rows}
    atomic_write_json(dest / f"{condition.name}-summary.json", summary)
    print(json.dumps({"out": str(dest / f"{condition.name}-summary.json"),
                      "success": {r["condition"]: r["success_rate"]["mean"] for r in rows}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
