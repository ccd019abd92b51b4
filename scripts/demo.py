"""`make demo`: evaluate a shipped LTC pilot on unseen layouts, print the table, render one episode.

Uses the first policy found in policies/ for each env (LTC first). Writes everything under out/demo/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from liquid_control.evaluate.report import markdown_table
from liquid_control.evaluate.runner import evaluate
from liquid_control.render import render_episode

ROOT = Path(__file__).resolve().parents[1]


def shipped_policies() -> list[Path]:
    """Shipped checkpoints, LTC pilots first."""
    dirs = sorted(p.parent for p in (ROOT / "policies").glob("*/config.json"))
    return sorted(dirs, key=lambda p: (not p.name.endswith("-ltc"), p.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ltc = [p for p in shipped_policies() if p.name.endswith("-ltc")]
    if not ltc:
        print("no shipped LTC policy in policies/; run scripts/train_zoo.py first", file=sys.stderr)
        return 1
    results = []
    for ckpt in ltc:
        env_id = json.loads((ckpt / "config.json").read_text())["env_id"]
        t0 = time.time()
        print(f"\n== {ckpt.name}: {args.episodes} episodes on unseen test layouts of {env_id}")
        res = evaluate(str(ckpt), env_id, split="test", episodes=args.episodes, seed=0, workers=args.workers)
        (args.out / f"{ckpt.name}-test.json").write_text(json.dumps(res, indent=1))
        results.append(res)
        print(f"   ({time.time() - t0:.0f} s)")
    print("\n" + markdown_table(results))
    ckpt = ltc[0]
    env_id = json.loads((ckpt / "config.json").read_text())["env_id"]
    video = args.out / f"{ckpt.name}-episode.mp4"
    render_episode(str(ckpt), env_id, split="test", seed=0, out=video)
    print(f"\nrendered one unseen-layout episode of {ckpt.name} to {video}")
    print(f"results: {args.out}/*-test.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
