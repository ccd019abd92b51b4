#!/usr/bin/env python
"""Evaluate one policy on several suites of an env in one worker pool (pipeline wrapper of `evaluate`).

    python scripts/evaluate.py --policy policies/ltc-rover --env LiquidControl/RoverNav-v0 \
        --suites all --episodes 200 --out results/ltc-rover

writes ``OUT/<suite>.json`` (+ .csv, .md) per suite and ``OUT/summary.md`` (the compare table).
``--suites`` takes ``all`` (every suite of the env in envs/*.yaml) or a comma-separated list.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liquid_control.evaluate.report import comparison_table
from liquid_control.evaluate.runner import DEFAULT_EPISODES, evaluate_many, write_results
from liquid_control.evaluate.suites import resolve_condition, suites_for
from liquid_control.sim.options import parse_overrides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True, help="checkpoint directory, 'expert' or 'random'")
    ap.add_argument("--env", required=True)
    ap.add_argument("--suites", default="all", help="'all' or comma-separated suite names")
    ap.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    try:
        names = sorted(suites_for(args.env)) if args.suites == "all" else args.suites.split(",")
        if not names:
            raise ValueError(f"no suites for {args.env} in envs/*.yaml")
        overrides = parse_overrides(args.overrides)
        conditions = [resolve_condition(args.env, suite=n, overrides=overrides) for n in names]
        results = evaluate_many([(args.policy, args.env, c) for c in conditions], args.episodes, args.seed,
                                args.workers)
    except (ValueError, FileNotFoundError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for name, res in zip(names, results, strict=True):
        write_results(res, out / f"{name}.json")
    (out / "summary.md").write_text("\n".join(comparison_table(results, m) for m in ("success_rate", "spl")))
    print(json.dumps({n: r["metrics"]["success_rate"]["mean"] for n, r in zip(names, results, strict=True)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
