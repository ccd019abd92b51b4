"""Imitation pipeline from nothing: collect expert demos → sequence BC → DAgger → evaluate on the test split.

    .venv/bin/python scripts/train_imitation.py --env LiquidControl/RoverNav-v0 --core ltc --minutes 30

``--minutes`` is the wall-clock budget of collection + BC + DAgger (the issue-6 target: ≤ 30 min on
2 cores); evaluation of the learner and of the expert (the reference) on the same unseen test layouts
comes after and is timed separately. Prints one JSON summary: success rates, learner/expert ratio and
wall-clock per stage (also written to ``OUT/summary.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from liquid_control.evaluate.runner import evaluate
from liquid_control.learn.bc import BCConfig, train_bc
from liquid_control.learn.checkpoint import atomic_write_json
from liquid_control.learn.demos import collect


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="LiquidControl/RoverNav-v0")
    p.add_argument("--core", default="ltc", help="ltc|cfc|lstm|gru|mlp|euler")
    p.add_argument("--budget", type=int, default=20000, help="trainable parameters of the whole policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget: collect + BC + DAgger")
    p.add_argument("--episodes", type=int, default=200, help="expert demonstration episodes")
    p.add_argument("--dagger-rounds", type=int, default=3)
    p.add_argument("--dagger-episodes", type=int, default=40)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--dagger-epochs", type=int, default=15)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env option override")
    p.add_argument("--demos", default=None, help="reuse a demo dir (default OUT/demos; resumes if partial)")
    p.add_argument("--out", default=None, help="output dir (default runs/imitation-<env>-<core>-s<seed>)")
    args = p.parse_args()
    torch.set_num_threads(1)

    from liquid_control.sim.options import parse_overrides

    overrides = parse_overrides(args.set)
    short = args.env.split("/")[-1]
    out = Path(args.out or f"runs/imitation-{short}-{args.core}-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    demos = Path(args.demos) if args.demos else out / "demos"
    stages: dict[str, float] = {}
    t0 = time.monotonic()

    t = time.monotonic()
    manifest = collect(args.env, args.episodes, demos, overrides=overrides, seed=args.seed * 10_000,
                       workers=args.workers)
    stages["collect_s"] = time.monotonic() - t
    print(f"[collect] {manifest['counts']} in {stages['collect_s']:.0f} s", flush=True)

    t = time.monotonic()
    left = max(args.minutes - (time.monotonic() - t0) / 60.0, 0.5)
    cfg = BCConfig(env_id=args.env, demos=[str(demos)], out=str(out / "policy"), policy=args.core,
                   budget=args.budget, epochs=args.epochs, minutes=left, seed=args.seed,
                   dagger_rounds=args.dagger_rounds, dagger_episodes=args.dagger_episodes,
                   dagger_epochs=args.dagger_epochs, workers=args.workers,
                   command="scripts/train_imitation.py " + json.dumps(vars(args)))
    ckpt = train_bc(cfg)
    stages["train_s"] = time.monotonic() - t
    card = json.loads((ckpt / "card.json").read_text())
    print(f"[train] {card['metrics']['epochs']} epochs, best val {card['metrics']['best_val_loss']}, "
          f"DAgger {[(r['round'], round(r['success_rate'], 2)) for r in card['metrics']['dagger']]} "
          f"in {stages['train_s']:.0f} s", flush=True)
    stages["pipeline_s"] = time.monotonic() - t0

    results = {}
    for name, spec in (("learner", str(ckpt)), ("expert", "expert")):
        t = time.monotonic()
        res = evaluate(spec, args.env, split="test", overrides=overrides, episodes=args.eval_episodes,
                       seed=args.seed, workers=args.workers)
        atomic_write_json(out / f"eval-{name}.json", res)
        stages[f"eval_{name}_s"] = time.monotonic() - t
        results[name] = {k: res["metrics"][k] for k in ("success_rate", "collision_rate", "spl")
                         if k in res["metrics"]}
        took = stages[f"eval_{name}_s"]
        print(f"[evaluate {name}] success {results[name]['success_rate']} in {took:.0f} s", flush=True)
    le, ex = results["learner"]["success_rate"]["mean"], results["expert"]["success_rate"]["mean"]
    summary = {"env": args.env, "core": args.core, "seed": args.seed, "budget_minutes": args.minutes,
               "params": card["params"], "demos": manifest["counts"], "dagger": card["metrics"]["dagger"],
               "test": results, "success_vs_expert": le / ex if ex > 0 else None,
               "wall_clock_s": {k: round(v, 1) for k, v in stages.items()}, "checkpoint": str(ckpt)}
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
