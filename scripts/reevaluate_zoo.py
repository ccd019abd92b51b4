#!/usr/bin/env python
"""Re-evaluate the shipped policies of one env on every suite after a change to the env, unchanged weights.

    python scripts/reevaluate_zoo.py --env LiquidControl/DroneNav-v0 \
        --why "exact prism ray cast replaces rayTestBatch" [--only dronenav-ltc,dronenav-gru] [--workers 2]

For each ``policies/<short>-*/`` card of the env (``expert`` is not a card: evaluate it with
``scripts/evaluate.py --policy expert``), evaluates every suite of ``envs/*.yaml`` with the card's episode
count at seed 0, as ``scripts/train_zoo.py`` ships them: rewrites ``results/<name>/<suite>.json`` and the
card's ``evaluation.suites``, and appends ``{why, commit, date}`` to ``evaluation.reevaluated``, so a card
says that its training (demonstrations, selection, PPO curves) ran on the env before the change and its
evaluation on the env after it. A card is rewritten only after all its suites are done (an interrupted run
loses at most the card in progress).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_zoo import ROOT, evaluate_suites, short_name  # noqa: E402

from liquid_control.fileio import atomic_write_json  # noqa: E402


def cards_of(env: str, only: list[str] | None) -> list[Path]:
    """The shipped policy directories of ``env`` (optionally only the named ones, which must exist)."""
    found = sorted(p.parent for p in (ROOT / "policies").glob(f"{short_name(env)}-*/card.json"))
    if only is None:
        return found
    names = {p.name: p for p in found}
    missing = [n for n in only if n not in names]
    if missing:
        raise ValueError(f"no shipped policy {missing} for {env}; have {sorted(names)}")
    return [names[n] for n in only]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", required=True)
    ap.add_argument("--why", required=True, help="what changed in the env (recorded in every card)")
    ap.add_argument("--only", default=None, help="comma-separated policy names (default: all of the env)")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        ckpts = cards_of(args.env, args.only.split(",") if args.only else None)
    except ValueError as exc:
        print(f"reevaluate_zoo.py: error: {exc}", file=sys.stderr)
        return 2
    if not ckpts:
        print(f"reevaluate_zoo.py: error: no shipped policies for {args.env}", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    for ckpt in ckpts:
        card = json.loads((ckpt / "card.json").read_text())
        ev = card.get("evaluation") or {}
        if ev.get("seed", 0) != 0:
            raise ValueError(f"{ckpt.name}: evaluation seed {ev.get('seed')} (the zoo evaluates at seed 0)")
        ns = argparse.Namespace(env=args.env, eval_episodes=int(ev.get("episodes", 50)), workers=args.workers)
        t0 = time.perf_counter()
        suites = evaluate_suites(str(ckpt), ns, ROOT / "results" / ckpt.name)
        ev.update({"episodes": ns.eval_episodes, "seed": 0, "suites": suites})
        ev.setdefault("reevaluated", []).append(
            {"why": args.why, "commit": commit, "date": time.strftime("%Y-%m-%d")})
        card["evaluation"] = ev
        atomic_write_json(ckpt / "card.json", card)
        print(json.dumps({"policy": ckpt.name, "minutes": round((time.perf_counter() - t0) / 60, 1),
                          **{s: r["success_rate"]["mean"] for s, r in suites.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
