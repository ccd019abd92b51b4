#!/usr/bin/env python
"""The issue-6 targets: LTC, LSTM and CfC trained by one imitation recipe per env, measured on unseen layouts.

    .venv/bin/python scripts/imitation_targets.py run --env rover --core ltc --seed 0   # ~23 min, 2 cores
    .venv/bin/python scripts/imitation_targets.py record runs/targets/rover-ltc-s0     # -> results/
    .venv/bin/python scripts/imitation_targets.py bound --env drone --seed 0         # informed teacher
    .venv/bin/python scripts/imitation_targets.py table                                # Markdown
    .venv/bin/python scripts/imitation_targets.py ship --env rover --core ltc          # -> policies/

``run`` calls ``scripts/train_imitation.py`` (collect expert demos → sequence BC → gated DAgger →
evaluate learner and expert on the same 100 test episodes) with the env's recipe below, every core at
the same ~20k trainable-parameter budget and the same data and epochs, then ``record``\\ s it. ``record``
refuses a run whose training command differs from the recipe, and stores its summary plus the
per-family/detour breakdown (``scripts/failure_breakdown.py``) of learner and expert in
``results/imitation/<env>-<core>-s<seed>.json``; ``bound`` evaluates the teacher with the learner's
information (``INFORMED``) on the same test episodes (``results/imitation/bounds/``); ``table`` (and
``scripts/make_tables.py``) turn those files into the table of the README. ``ship`` puts one core's
recorded runs into the policy zoo the way ``scripts/train_zoo.py`` ships its own: the best seed on the
val split goes to ``policies/<env>-<core>/`` with its card and every test/OOD suite evaluated, and every
seed is evaluated on the test suite (``results/rovernav-ltc/`` etc., the README's zoo tables).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

ENVS = {"drone": "LiquidControl/DroneNav-v0", "rover": "LiquidControl/RoverNav-v0"}
# train_imitation.py arguments (argparse dest -> value) per env; JSON options are stored as dicts
RECIPES: dict[str, dict] = {
    "drone": {"expert_options": {"steering": "arcs"}, "head": "bins", "motors": 8, "log_rays": True,
              "episodes": 200, "dagger_rounds": 16, "dagger_episodes": 40, "dagger_epochs": 8,
              "dagger_gate": {"clearance": 0.1, "horizon": 0.5, "hold": 15, "patience": 4},
              "select_last": 8, "select_episodes": 100, "budget": 20000, "eval_episodes": 100},
    "rover": {"expert_options": {"steering": "arcs", "slow_clearance": 0.5, "arc_escape": 0.06},
              "head": "bins", "motors": 8, "log_rays": True,
              "episodes": 200, "dagger_rounds": 12, "dagger_episodes": 40, "dagger_epochs": 10,
              "dagger_gate": {"clearance": 0.03, "horizon": 0.3, "hold": 10, "patience": 5},
              "near_weight": 5.0, "near_range": 0.0375, "budget": 20000, "eval_episodes": 100},
}
JSON_ARGS = ("expert_options", "dagger_gate")
RESULTS = ROOT / "results" / "imitation"
# teachers with the learner's information (what its lidar has shown along the way, kept in a perfect map;
# DroneNav's arena edge is invisible to the learner, so the drone teacher does not know it either): their
# test success on the runs' episodes is what imitation can hope to reach, next to the privileged expert's
INFORMED: dict[str, dict] = {
    "drone": {"sensing_rays": 256, "knows_edge": False},
    "rover": {"steering": "arcs", "slow_clearance": 0.5, "arc_escape": 0.06, "sensing_rays": 256},
}


def recipe_argv(env: str, core: str, seed: int, out: Path) -> list[str]:
    """train_imitation.py's command line for one env's recipe."""
    argv = ["--env", ENVS[env], "--core", core, "--seed", str(seed), "--out", str(out)]
    for key, value in RECIPES[env].items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, json.dumps(value) if key in JSON_ARGS else str(value)]
    return argv


def env_key(env_id: str) -> str:
    """'drone' or 'rover' for an env id."""
    for key, full in ENVS.items():
        if full == env_id:
            return key
    raise ValueError(f"no imitation recipe for env {env_id!r} (known: {sorted(ENVS.values())})")


FREE_ARGS = ("env", "core", "seed", "out", "workers")  # what a run may choose; the rest is the recipe


def recipe_differences(args: dict) -> list[str]:
    """How a run's recorded train_imitation.py arguments differ from its env's current recipe (every
    argument but ``FREE_ARGS``: the recipe's value, else train_imitation.py's default); empty if not."""
    from train_imitation import parser

    recipe = RECIPES[env_key(args["env"])]
    wrong = []
    for key, default in sorted(vars(parser().parse_args([])).items()):
        if key in FREE_ARGS:
            continue
        want = recipe.get(key, default)
        got = args.get(key, default)  # runs recorded before an argument existed had its default
        if key in JSON_ARGS and isinstance(got, str):
            got = json.loads(got)
        if got != want:
            wrong.append(f"{key}: run {got!r}, recipe {want!r}")
    if args.get("demos") is not None or args.get("set"):
        wrong.append("the run reused demos or overrode env options")
    return wrong


def check_recipe(args: dict) -> None:
    """Raise ValueError if a run's recorded arguments differ from its env's recipe: ``recipe_differences``."""
    wrong = recipe_differences(args)
    if wrong:
        raise ValueError("run does not follow the recipe: " + "; ".join(wrong))


def family_success(eval_path: Path) -> list[dict]:
    """Per family and detour bin: episodes and success rate of one evaluation file."""
    from failure_breakdown import breakdown

    rows = breakdown(json.loads(eval_path.read_text()), 1.1)
    return [{k: r[k] for k in ("family", "detour", "episodes", "success_rate")} for r in rows]


def run_args(run: Path) -> dict:
    """The train_imitation.py arguments of the checkpoint in a run directory, after checking that it was
    trained by that script with its env's recipe (ValueError otherwise)."""
    command = json.loads((run / "policy" / "card.json").read_text())["command"]
    prefix = "scripts/train_imitation.py "
    if not command.startswith(prefix):
        raise ValueError(f"{run} was not trained by scripts/train_imitation.py: {command[:80]!r}")
    args = json.loads(command[len(prefix):])
    check_recipe(args)
    return args


def record(run: Path, results: Path = RESULTS) -> Path:
    """Copy a finished run's summary and breakdown into ``results`` (after checking it used the recipe)."""
    args = run_args(run)
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("checkpoint", None)
    summary["args"] = args
    selection = json.loads((run / "policy" / "card.json").read_text()).get("metrics", {}).get("selection")
    if selection is not None:  # the round kept (--select-last) and every candidate's val success
        summary["selection"] = selection
    summary["families"] = {who: family_success(run / f"eval-{who}.json") for who in ("learner", "expert")}
    name = f"{env_key(args['env'])}-{args['core']}-s{args['seed']}"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return path


def bound(env: str, seed: int, results: Path = RESULTS, workers: int | None = None,
          rays: int | None = None, memory: float | None = None) -> Path:
    """Evaluate ``INFORMED[env]`` on the test episodes of a run with this seed (same split, count and seed
    as train_imitation.py's evaluation); store its success and per-family breakdown in
    ``<results>/bounds/<env>-s<seed>.json`` (default ``results/imitation/bounds/``), the episodes next
    to it. ``rays`` replaces the teacher's lidar fan (e.g. the learner's own ray count), ``memory`` (s,
    rover) makes it forget what it has not seen for that long; either stores
    ``<env>-s<seed>[-rays<rays>][-mem<memory>].json`` instead."""
    import time

    from liquid_control.evaluate.runner import evaluate
    from liquid_control.learn.rollout import expert_spec

    if rays is not None and (isinstance(rays, bool) or not isinstance(rays, int) or rays < 1):
        raise ValueError(f"rays must be an int >= 1, got {rays!r}")
    if memory is not None and not (memory > 0 and env == "rover"):
        raise ValueError(f"memory must be > 0 s and is a rover teacher's option, got {memory!r} for {env}")
    teacher, name = dict(INFORMED[env]), f"{env}-s{seed}"
    if rays is not None:
        teacher["sensing_rays"], name = rays, name + f"-rays{rays}"
    if memory is not None:
        teacher["sensing_memory"], name = float(memory), name + f"-mem{memory:g}"
    out = results / "bounds"
    out.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    res = evaluate(expert_spec(teacher), ENVS[env], split="test",
                   episodes=RECIPES[env]["eval_episodes"], seed=seed, workers=workers)
    eval_path = out / f"{name}-eval.json"
    eval_path.write_text(json.dumps(res) + "\n")
    summary = {"env": ENVS[env], "seed": seed, "teacher": teacher,
               "success_rate": res["metrics"]["success_rate"], "families": family_success(eval_path),
               "episodes": len(res["per_episode"]), "wall_clock_s": round(time.monotonic() - t, 1)}
    path = out / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return path


def recorded_runs(env: str, core: str, results: Path = RESULTS, root: Path = ROOT) -> list[dict]:
    """One core's recorded runs as zoo run records (core, seed, checkpoint, demos, wall-clock of collect +
    BC + DAgger), after checking that each run directory still holds the recipe's checkpoint."""
    runs = []
    for path in sorted(results.glob(f"{env}-{core}-s*.json")):
        rec = json.loads(path.read_text())
        run = root / rec["args"]["out"]
        if not (run / "policy" / "card.json").exists():
            raise FileNotFoundError(f"{path.name}: its run {run} is not on this machine (rerun: imitation_"
                                    f"targets.py run --env {env} --core {core} --seed {rec['seed']})")
        args = run_args(run)  # the checkpoint there is still the recipe's, of this core and seed
        if (args["core"], args["seed"]) != (core, rec["seed"]):
            raise ValueError(f"{run} holds a {args['core']} seed {args['seed']} run, not {path.name}'s")
        runs.append({"core": core, "seed": rec["seed"], "checkpoint": str(run / "policy"),
                     "demos": str(run / "demos"), "train_wall_clock_s": rec["wall_clock_s"]["pipeline_s"]})
    if not runs:
        raise FileNotFoundError(f"no recorded {env} {core} run in {results}")
    return runs


def ship(env: str, core: str, val_episodes: int = 30, eval_episodes: int = 50,
         workers: int | None = None, results: Path = RESULTS) -> Path:
    """Ship one core's recorded recipe runs to the zoo (``train_zoo.select_and_ship``: best seed on val,
    every seed on the test suite, the shipped one on every suite); returns ``policies/<env>-<core>``."""
    import shutil

    import train_zoo

    runs = recorded_runs(env, core, results)
    env_id = ENVS[env]
    short = train_zoo.short_name(env_id)
    for run in runs:
        run["val"] = train_zoo.validate(run["checkpoint"], env_id, run["seed"], val_episodes, workers)
        print(f"[{core} s{run['seed']}] val success {run['val']['success_rate']['mean']:.2f}", flush=True)
    # the zoo entry is replaced as a whole: per-seed files of the seeds it had before would be stale
    shutil.rmtree(train_zoo.ROOT / "results" / f"{short}-{core}" / "seeds", ignore_errors=True)
    manifests = {r["seed"]: json.loads((Path(r["demos"]) / "manifest.json").read_text()) for r in runs}
    args = argparse.Namespace(env=env_id, eval_episodes=eval_episodes, workers=workers, no_ship=False,
                              no_seed_tests=False)
    return train_zoo.select_and_ship(args, core, runs, short, manifests)


def _rate(metric: dict) -> str:
    lo, hi = metric["ci95"]
    return f"{metric['mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def table(results: Path = RESULTS) -> list[str]:
    """Markdown lines: one row per recorded run, then the per-env mean over seeds of each core."""
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    if not runs:
        return []
    order = {"ltc": 0, "lstm": 1, "cfc": 2}
    runs.sort(key=lambda s: (s["env"], order.get(s["core"], 9), s["core"], s["seed"]))
    bounds = [json.loads(p.read_text()) for p in sorted((results / "bounds").glob("*.json"))
              if re.fullmatch(r"[a-z]+-s\d+\.json", p.name)]  # INFORMED's, not the --rays/--memory variants
    informed = {(b["env"], b["seed"]): b["success_rate"]["mean"] for b in bounds}
    lines = ["| env | core | seed | trainable (effective) | test success | expert | informed teacher "
             "| learner / expert | DAgger rounds (kept) | collect + BC + DAgger "
             "| success per family (detour < / ≥ 1.1) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    stale = [recipe_differences(s["args"]) for s in runs]  # rows recorded with an earlier recipe
    for s, diff in zip(runs, stale, strict=True):
        fam = ", ".join(f"{r['family']} {r['detour'].replace(' ', '')} {r['success_rate']:.2f} "
                        f"({r['episodes']})" for r in s["families"]["learner"])
        p = s["params"]
        mark = " †" if diff else ""
        lines.append(f"| {s['env'].split('/')[-1]} | {s['core']} | {s['seed']}{mark} | {p['trainable']} "
                     f"({p['effective']}) | {_rate(s['test']['learner']['success_rate'])} "
                     f"| {s['test']['expert']['success_rate']['mean']:.2f} "
                     f"| {_fmt(informed.get((s['env'], s['seed'])))} | {s['success_vs_expert']:.2f} "
                     f"| {_rounds(s)} | {s['wall_clock_s']['pipeline_s'] / 60:.1f} min | {fam} |")
    keys = [(s["env"].split("/")[-1], s["core"]) for s in runs]
    notes = [f"{env} {core} seed {s['seed']}: {'; '.join(diff)}"
             for (env, core), s, diff in zip(keys, runs, stale, strict=True) if diff]
    if notes:
        lines += ["", "† recorded with an earlier recipe, not rerun since it changed (run vs recipe): "
                  + "; ".join(notes) + "."]
    groups: dict[tuple[str, str], list[float]] = {}
    for key, s in zip(keys, runs, strict=True):
        groups.setdefault(key, []).append(s["success_vs_expert"])
    mixed = {key for key, diff in zip(keys, stale, strict=True) if diff}
    if any(len(v) > 1 for v in groups.values()):
        lines += ["", "| env | core | seeds | learner / expert, mean ± sd over seeds |", "|---|---|---|---|"]
        for (env, core), vals in groups.items():
            spread = f" ± {np.std(vals):.2f}" if len(vals) > 1 else " (one seed)"
            mark = " (†: mixes recipes)" if (env, core) in mixed else ""
            lines.append(f"| {env} | {core} | {len(vals)}{mark} | {np.mean(vals):.2f}{spread} |")
    return lines


def _rounds(summary: dict) -> str:
    """DAgger rounds run, and the round kept when the final policy was selected on val (``16 (13)``)."""
    done = len(summary.get("dagger", []))
    sel = summary.get("selection")
    return f"{done} ({sel['round']})" if sel else str(done)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train + evaluate one env/core/seed by the recipe, then record it")
    r.add_argument("--env", choices=sorted(ENVS), required=True)
    r.add_argument("--core", default="ltc", help="ltc|lstm|cfc|gru|mlp (same budget and recipe)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, default=None,
                   help="run dir (default runs/targets/<env>-<core>-s<seed>)")
    rec = sub.add_parser("record", help="store finished runs' summaries in results/imitation/")
    rec.add_argument("runs", nargs="+", type=Path)
    b = sub.add_parser("bound", help="evaluate the teacher with the learner's information (INFORMED) on "
                                     "the test episodes of runs with this seed")
    b.add_argument("--env", choices=sorted(ENVS), required=True)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=None)
    b.add_argument("--rays", type=int, default=None,
                   help="the teacher's lidar fan has this many rays (e.g. the learner's own count) "
                        "instead of INFORMED's; stored as <env>-s<seed>-rays<N>.json")
    b.add_argument("--memory", type=float, default=None,
                   help="rover: the teacher forgets the cells it has not seen for this many seconds; "
                        "stored as <env>-s<seed>[-rays<N>]-mem<S>.json")
    sh = sub.add_parser("ship", help="ship one core's recorded runs to policies/ (best seed on val; test "
                                     "and OOD suites evaluated as train_zoo.py does)")
    sh.add_argument("--env", choices=sorted(ENVS), required=True)
    sh.add_argument("--core", default="ltc")
    sh.add_argument("--val-episodes", type=int, default=30)
    sh.add_argument("--eval-episodes", type=int, default=50, help="per suite (the zoo tables' 50)")
    sh.add_argument("--workers", type=int, default=None)
    sub.add_parser("table", help="print the Markdown table of the recorded runs")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        out = args.out or ROOT / "runs" / "targets" / f"{args.env}-{args.core}-s{args.seed}"
        cmd = [sys.executable, str(ROOT / "scripts" / "train_imitation.py"),
               *recipe_argv(args.env, args.core, args.seed, out)]
        subprocess.run(cmd, check=True)
        print(f"recorded {record(out)}")
    elif args.cmd == "ship":
        print(f"shipped {ship(args.env, args.core, args.val_episodes, args.eval_episodes, args.workers)}")
    elif args.cmd == "bound":
        path = bound(args.env, args.seed, workers=args.workers, rays=args.rays, memory=args.memory)
        print(f"recorded {path}")
    elif args.cmd == "record":
        for run in args.runs:
            try:
                print(f"recorded {record(run)}")
            except (ValueError, FileNotFoundError) as e:
                print(f"{run}: {e}", file=sys.stderr)
                return 2
    else:
        print("\n".join(table()) or "no recorded runs in results/imitation/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
