"""Robustness curves: success (and SPL) of one or more policies as one env option is swept.

``liquid-control robustness --policy CKPT|expert|random [--policy ...] --env ID --param disturbance.obs_noise
--levels 0,0.05,0.1,0.2 [--suite NAME | --split test] [--episodes N] [--seed S] [--set k=v]... --out DIR``

Every (policy, level) pair is an ordinary evaluation on the same episode seeds (so curves are paired
comparisons); all of them share one worker pool. Writes ``DIR/robustness.json`` (levels, metrics per
policy and level), ``DIR/robustness.png`` (success rate with 95% CIs vs level, one line per policy) and
each run's ``DIR/<policy>_<level>.json`` results (usable with ``liquid-control compare``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from liquid_control.evaluate.report import policy_name
from liquid_control.evaluate.runner import add_common_arguments, evaluate_many, write_results
from liquid_control.evaluate.suites import Condition, resolve_condition


def parse_levels(text: str) -> list[float]:
    """``"0,0.05,0.1"`` -> ``[0.0, 0.05, 0.1]`` (ValueError on anything else)."""
    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--levels must be comma-separated numbers, got {text!r}") from None
    if not levels:
        raise ValueError("--levels needs at least one value")
    return levels


def sweep(
    policies: list[Any],
    env_id: str,
    param: str,
    levels: list[float],
    base: Condition,
    episodes: int,
    seed: int = 0,
    workers: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate every policy at every level of ``param``; returns (summary, list of results dicts)."""
    from liquid_control.sim.options import merge, unflatten

    runs = []
    for policy in policies:
        for level in levels:
            override = unflatten({param: level})
            cond = Condition(name=base.name, split=base.split, options=merge(base.options, override),
                             overrides=merge(base.overrides, override))
            runs.append((policy, env_id, cond))
    results = evaluate_many(runs, episodes=episodes, seed=seed, workers=workers, desc=f"robustness {param}")
    curves: dict[str, Any] = {}
    for level, res in zip(levels * len(policies), results, strict=True):
        key = json.dumps(res["policy"], sort_keys=True)
        curve = curves.setdefault(key, {"policy": res["policy"], "name": policy_name(res), "levels": [],
                                        "metrics": []})
        curve["levels"].append(level)
        curve["metrics"].append({k: res["metrics"][k] for k in ("success_rate", "collision_rate", "spl",
                                                                 "timeout_rate", "error_rate")})
    summary = {"env": env_id, "condition": base.name, "split": base.split, "param": param,
               "levels": levels, "episodes": episodes, "seed": seed, "overrides": base.overrides,
               "curves": list(curves.values())}
    return summary, results


def plot_curves(summary: dict[str, Any], out: str | Path) -> Path:
    """Success rate (95% CI band) vs level, one line per policy; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for curve in summary["curves"]:
        xs = curve["levels"]
        m = [c["success_rate"] for c in curve["metrics"]]
        mean = [c["mean"] if c["mean"] is not None else float("nan") for c in m]
        lo = [c["ci95"][0] if c["ci95"] else float("nan") for c in m]
        hi = [c["ci95"][1] if c["ci95"] else float("nan") for c in m]
        (line,) = ax.plot(xs, mean, marker="o", label=curve["name"])
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(summary["param"])
    ax.set_ylabel("success rate (95% CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    env = summary["env"].split("/")[-1]
    ax.set_title(f"{env} · {summary['condition']} · {summary['episodes']} episodes per point")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control robustness``."""
    parser.add_argument("--policy", action="append", required=True,
                        help="checkpoint directory, 'expert' or 'random' (repeat to compare policies)")
    add_common_arguments(parser)
    parser.add_argument("--param", required=True, help="env option to sweep, e.g. disturbance.obs_noise")
    parser.add_argument("--levels", required=True, help="comma-separated values, e.g. 0,0.05,0.1,0.2")
    parser.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    """``liquid-control robustness``: sweep, write JSON + PNG + per-run results, print the summary path."""
    from liquid_control.sim.options import parse_overrides

    levels = parse_levels(args.levels)
    if not args.param or "=" in args.param:
        raise ValueError(f"--param must be an option name like disturbance.obs_noise, got {args.param!r}")
    base = resolve_condition(args.env, suite=args.suite, split=args.split,
                             overrides=parse_overrides(args.overrides))
    summary, results = sweep(args.policy, args.env, args.param, levels, base, args.episodes, args.seed,
                             args.workers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for res, level in zip(results, levels * len(args.policy), strict=True):
        stem = re.sub(r"[^\w.=-]+", "_", f"{policy_name(res)}_{args.param}={level:g}")
        write_results(res, out / f"{stem}.json")
    (out / "robustness.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_curves(summary, out / "robustness.png")
    success = {c["name"]: [m["success_rate"]["mean"] for m in c["metrics"]] for c in summary["curves"]}
    print(json.dumps({"out": str(out), "param": args.param, "levels": levels, "success_rate": success}))
    return 0
