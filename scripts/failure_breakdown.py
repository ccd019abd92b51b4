#!/usr/bin/env python
"""Where a policy fails: outcomes of evaluated episodes per layout family and detour (Markdown table).

    python scripts/failure_breakdown.py results/dronenav-ltc/test.json results/dronenav-mlp/test.json
    python scripts/failure_breakdown.py results/rovernav-ltc/test.json --detour 1.1 --json out.json

Each episode's layout is rebuilt by the env itself (``choose_layout`` of the episode's family and layout
seed, the env made with the layout options the evaluation resolved), so it is the layout that was
flown; its *detour* is the planner's shortest path over the straight start-goal distance. Episodes are
binned by family and by detour below / at or above ``--detour`` (1.1: a path within 10% of the straight
line, e.g. a wall gap near that line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np


def detour(layout) -> float:
    """Shortest-path length over the straight start-goal distance of a layout (>= 1)."""
    straight = float(np.hypot(layout.goal[0] - layout.start[0], layout.goal[1] - layout.start[1]))
    return float(layout.geodesic) / max(straight, 1e-9)


def breakdown(results: dict, threshold: float) -> list[dict]:
    """Rows (family, bin, episodes, success, collision, timeout rates) of one evaluate results dict."""
    import liquid_control  # noqa: F401  (registers the env ids)

    env = gym.make(results["env"], layout=results.get("resolved_options", {}).get("layout", {}))
    try:
        choose = getattr(env.unwrapped, "choose_layout", None)
        if choose is None:
            raise ValueError(f"env {results['env']!r} has no layouts")
        groups: dict[tuple[str, str], list[dict]] = {}
        for ep in results["per_episode"]:
            if ep.get("error"):
                continue
            d = detour(choose(0, family=ep["family"], layout_seed=int(ep["layout_seed"])))
            key = (ep["family"], f"< {threshold:g}" if d < threshold else f">= {threshold:g}")
            groups.setdefault(key, []).append(ep)
    finally:
        env.close()
    rows = []
    for (family, bin_), eps in sorted(groups.items()):
        rows.append({"family": family, "detour": bin_, "episodes": len(eps),
                     **{f"{k}_rate": float(np.mean([bool(e[k]) for e in eps]))
                        for k in ("success", "collision", "timeout")}})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="results JSON files written by `liquid-control evaluate`")
    ap.add_argument("--detour", type=float, default=1.1, help="detour threshold between the two bins")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if not args.detour > 1.0:
        ap.error(f"--detour must be > 1, got {args.detour}")
    out = {}
    for path in args.results:
        try:
            results = json.loads(Path(path).read_text())
            rows = breakdown(results, args.detour)
        except (OSError, ValueError, KeyError, gym.error.Error) as exc:
            ap.error(f"{path}: {exc}")
        out[path] = rows
        print(f"\n**{path}** ({results['policy']}, {results['env']})\n")
        print("| family | detour | episodes | success | collision | timeout |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['family']} | {r['detour']} | {r['episodes']} | {r['success_rate']:.2f} | "
                  f"{r['collision_rate']:.2f} | {r['timeout_rate']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
