"""Imitation pipeline from nothing: collect expert demos → sequence BC → DAgger → evaluate on the test split.

    .venv/bin/python scripts/train_imitation.py --env LiquidControl/RoverNav-v0 --core ltc --minutes 30
    # a clearance-aware teacher (demos, DAgger labels and the reference evaluation), DART-style noise:
    ... --expert-options '{"clearance_weight": 2.0}' --demo-noise 0.1
    # the memoryless teacher (labels depend on the state alone), many learner-driven DAgger rounds:
    ... --expert-options '{"steering": "arcs"}' --dagger-rounds 14 --dagger-epochs 8
    # keep the best of the last 8 rounds by closed-loop success on 100 val episodes, not the last one:
    ... --dagger-rounds 16 --select-last 8 --select-episodes 100

``--minutes`` is the wall-clock budget of collection + BC + DAgger (the issue-6 target: ≤ 30 min on
2 cores); evaluation of the learner and of the expert (the reference) on the same unseen test layouts
comes after and is timed separately. Prints one JSON summary: success rates, learner/expert ratio and
wall-clock and CPU time per stage (also written to ``OUT/summary.json``; CPU time counts this process
and its finished worker processes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from liquid_control.evaluate.runner import evaluate
from liquid_control.learn.bc import (
    BCConfig,
    add_head_arguments,
    add_loss_arguments,
    add_rollout_arguments,
    head_options,
    loss_options,
    parse_drop_obs,
    rollout_options,
    train_bc,
)
from liquid_control.learn.checkpoint import atomic_write_json
from liquid_control.learn.demos import collect, parse_expert_options, teacher_specs
from liquid_control.learn.rollout import expert_spec


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped child processes (the executor's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="LiquidControl/RoverNav-v0")
    p.add_argument("--core", default="ltc", help="ltc|cfc|lstm|gru|mlp|euler")
    p.add_argument("--budget", type=int, default=20000, help="trainable parameters of the whole policy")
    p.add_argument("--encoder", default="mlp", choices=["mlp", "conv"],
                   help="observation encoder: an MLP, or a 1-D conv over the ray block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget: collect + BC + DAgger")
    p.add_argument("--episodes", type=int, default=200, help="expert demonstration episodes")
    p.add_argument("--dagger-rounds", type=int, default=3)
    p.add_argument("--dagger-episodes", type=int, default=40)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--dagger-epochs", type=int, default=15)
    p.add_argument("--dagger-beta", type=float, default=0.5, help="expert share in DAgger round r = beta**r")
    add_rollout_arguments(p)
    p.add_argument("--chunk-len", type=int, default=32, help="BPTT window: trained steps per chunk")
    p.add_argument("--burn-in", type=int, default=16, help="steps that only warm up the state per chunk")
    p.add_argument("--expert-options", default=None, metavar="JSON",
                   help='teacher options, e.g. \'{"clearance_weight": 2.0}\' (demos, DAgger, reference)')
    p.add_argument("--demo-noise", type=float, default=0.0, metavar="STD",
                   help="DART-style demos: execute expert action + noise (STD x half range), label clean")
    p.add_argument("--log-rays", action="store_true", help="feed the ray ranges as log(range)")
    p.add_argument("--drop-obs", default="", metavar="PART,...",
                   help="observation parts (e.g. wheels, velocity) or indices the policy ignores")
    add_loss_arguments(p)
    add_head_arguments(p)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env option override")
    p.add_argument("--demos", default=None, help="reuse a demo dir (default OUT/demos; resumes if partial)")
    p.add_argument("--out", default=None, help="output dir (default runs/imitation-<env>-<core>-s<seed>)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)

    from liquid_control.sim.options import parse_overrides

    overrides = parse_overrides(args.set)
    options = parse_expert_options(args.expert_options)
    controller, labeler = teacher_specs(options, args.demo_noise)
    short = args.env.split("/")[-1]
    out = Path(args.out or f"runs/imitation-{short}-{args.core}-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    demos = Path(args.demos) if args.demos else out / "demos"
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.monotonic(), cpu_seconds()

    t, c = time.monotonic(), cpu_seconds()
    manifest = collect(args.env, args.episodes, demos, overrides=overrides, seed=args.seed * 10_000,
                       workers=args.workers, controller=controller, labeler=labeler)
    stages["collect_s"], cpu["collect_s"] = time.monotonic() - t, cpu_seconds() - c
    print(f"[collect] {manifest['counts']} in {stages['collect_s']:.0f} s", flush=True)

    t, c = time.monotonic(), cpu_seconds()
    left = max(args.minutes - (time.monotonic() - t0) / 60.0, 0.5)
    cfg = BCConfig(env_id=args.env, demos=[str(demos)], out=str(out / "policy"), policy=args.core,
                   budget=args.budget, encoder=args.encoder, epochs=args.epochs, minutes=left, seed=args.seed,
                   dagger_rounds=args.dagger_rounds, dagger_episodes=args.dagger_episodes,
                   dagger_epochs=args.dagger_epochs, dagger_beta=args.dagger_beta, workers=args.workers,
                   expert_options=options,
                   drop_obs=parse_drop_obs(args.drop_obs),
                   log_rays=args.log_rays, chunk_len=args.chunk_len, burn_in=args.burn_in,
                   **loss_options(args), **head_options(args), **rollout_options(args),
                   command="scripts/train_imitation.py " + json.dumps(vars(args)))
    ckpt = train_bc(cfg)
    stages["train_s"], cpu["train_s"] = time.monotonic() - t, cpu_seconds() - c
    card = json.loads((ckpt / "card.json").read_text())
    print(f"[train] {card['metrics']['epochs']} epochs, best val {card['metrics']['best_val_loss']}, "
          f"DAgger {[(r['round'], round(r['success_rate'], 2)) for r in card['metrics']['dagger']]} "
          f"in {stages['train_s']:.0f} s", flush=True)
    selection = card["metrics"].get("selection")
    if selection is not None:
        print(f"[select] round {selection['round']} of "
              f"{[(r['round'], r['success_rate']) for r in selection['rounds']]} (val success)", flush=True)
    stages["pipeline_s"], cpu["pipeline_s"] = time.monotonic() - t0, cpu_seconds() - c0

    results = {}
    for name, spec in (("learner", str(ckpt)), ("expert", expert_spec(options))):
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
               "teacher": {"controller": controller, "labeler": labeler},
               "params": card["params"], "demos": manifest["counts"], "dagger": card["metrics"]["dagger"],
               **({"selection": selection} if selection is not None else {}),
               "test": results, "success_vs_expert": le / ex if ex > 0 else None,
               "wall_clock_s": {k: round(v, 1) for k, v in stages.items()},
               "cpu_s": {k: round(v, 1) for k, v in cpu.items()}, "checkpoint": str(ckpt)}
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
