"""`make demo`: evaluate the shipped LTC pilots on unseen (test-split) layouts, print the table, and
render one episode to a video. Runs the same `liquid-control` commands a user would type.

Writes everything under out/demo/ (results JSON/CSV/Markdown per pilot, and the MP4).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from liquid_control.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def shipped_ltc_pilots() -> list[Path]:
    """Shipped LTC checkpoints (policies/<env>-ltc/)."""
    return sorted(p.parent for p in (ROOT / "policies").glob("*-ltc/config.json"))


def run(*argv: str) -> None:
    """One `liquid-control` command; stop the demo if it fails."""
    print("$ liquid-control " + " ".join(argv), flush=True)
    code = cli(list(argv))
    if code:
        raise SystemExit(code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="test episodes per pilot")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pilots = shipped_ltc_pilots()
    if not pilots:
        print("no shipped LTC pilot in policies/: run scripts/train_zoo.py first", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    results = []
    for ckpt in pilots:
        env_id = json.loads((ckpt / "config.json").read_text())["env_id"]
        out = args.out / f"{ckpt.name}-test.json"
        run("info", str(ckpt))
        run("evaluate", "--policy", str(ckpt), "--env", env_id, "--split", "test",
            "--episodes", str(args.episodes), "--seed", "0", "--out", str(out))
        results.append(str(out))
    print()
    run("compare", *results)
    ckpt = pilots[0]
    env_id = json.loads((ckpt / "config.json").read_text())["env_id"]
    video = args.out / f"{ckpt.name}-episode.mp4"
    run("render", "--policy", str(ckpt), "--env", env_id, "--split", "test", "--seed", "0",
        "--out", str(video))
    print(f"\nDemo done in {time.monotonic() - t0:.0f} s.")
    print(f"  results (JSON, CSV, Markdown): {args.out}/")
    print(f"  one rendered unseen-layout episode: {video}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
