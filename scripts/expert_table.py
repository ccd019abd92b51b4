#!/usr/bin/env python
"""Success rate of the privileged expert per layout family on test-split episodes (Markdown table).

    python scripts/expert_table.py --episodes 50            # RoverNav (+ DroneNav when it imports)
    python scripts/expert_table.py --env LiquidControl/RoverNav-v0 --episodes 20 --json out.json
    python scripts/expert_table.py --episodes 20 --expert-options '{"clearance_weight": 2.0}'

Episodes run through the project's executor (`learn.rollout.map_jobs`: one worker per core by
default, progress bar, failed episodes reported as errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

DEFAULT_ENVS = {"LiquidControl/RoverNav-v0": ("forest", "rooms", "maze"),
                "LiquidControl/DroneNav-v0": ("forest", "walls", "city")}


def expert_episode(job: tuple[str, str, int, dict, dict | None]) -> dict:
    """One expert episode on the test split; returns the final info plus the family and seed."""
    from liquid_control.learn.rollout import cached_env, expert_spec, make_controller, run_episode
    from liquid_control.sim.options import merge

    env_id, family, seed, overrides, options = job
    env = cached_env(env_id, merge(overrides, {"split": "test", "layout": {"family": family}}))
    ep = run_episode(env, make_controller(expert_spec(options)), seed)
    keep = ("is_success", "collision", "timeout", "path_length", "t", "layout_id", "min_clearance")
    return {"env": env_id, "family": family, "seed": seed, "steps": len(ep.actions),
            **{k: ep.info[k] for k in keep}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", help="env id (repeatable); default RoverNav and DroneNav")
    ap.add_argument("--episodes", type=int, default=50, help="episodes per family")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", default=None, help="also write per-episode results here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="env option override, e.g. disturbance.friction_scale=0.3 (repeatable)")
    ap.add_argument("--expert-options", default=None, metavar="JSON",
                    help='expert options, e.g. \'{"clearance_weight": 2.0}\'')
    args = ap.parse_args(argv)
    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    from liquid_control.learn.demos import parse_expert_options
    from liquid_control.sim.options import parse_overrides

    overrides = parse_overrides(args.set)
    options = parse_expert_options(args.expert_options)
    envs = args.env or list(DEFAULT_ENVS)
    jobs = []
    for env_id in envs:
        try:
            import gymnasium as gym

            import liquid_control  # noqa: F401
            gym.make(env_id, **overrides).close()
        except (ImportError, AttributeError) as exc:
            print(f"skipping {env_id}: {exc}", file=sys.stderr)
            continue
        fams = DEFAULT_ENVS.get(env_id)
        if fams is None:
            raise SystemExit(f"no family list for {env_id}")
        jobs += [(env_id, fam, seed, overrides, options) for fam in fams for seed in range(args.episodes)]
    from liquid_control.learn.rollout import map_jobs

    results = map_jobs(expert_episode, jobs, workers=args.workers, desc="expert episodes")
    for bad in [r for r in results if "error" in r]:
        print(f"error: {bad['item'][:3]}: {bad['error']}", file=sys.stderr)
    results = [r for r in results if "error" not in r]
    if overrides:
        print(f"options: {overrides}\n")
    if options:
        print(f"expert options: {options}\n")
    print("| env | family | episodes | success | collision | timeout | mean time (s) | min clearance (m): "
          "median [p10] of successes |")
    print("|---|---|---|---|---|---|---|---|")
    for env_id in dict.fromkeys(r["env"] for r in results):
        for fam in DEFAULT_ENVS[env_id]:
            rs = [r for r in results if r["env"] == env_id and r["family"] == fam]
            if not rs:
                continue
            succ = np.mean([r["is_success"] for r in rs])
            col = np.mean([r["collision"] for r in rs])
            to = np.mean([r["timeout"] for r in rs])
            t = np.mean([r["t"] for r in rs if r["is_success"]]) if succ > 0 else float("nan")
            clear = [r["min_clearance"] for r in rs if r["is_success"]] or [float("nan")]
            print(f"| {env_id} | {fam} | {len(rs)} | {succ:.1%} | {col:.1%} | {to:.1%} | {t:.1f} | "
                  f"{np.median(clear):.3f} [{np.percentile(clear, 10):.3f}] |")
    failures = [r for r in results if not r["is_success"]]
    for r in failures:
        print(f"failed: {r['env']} {r['layout_id']} seed={r['seed']} collision={r['collision']} "
              f"timeout={r['timeout']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"expert_options": options, "overrides": overrides, "episodes": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
