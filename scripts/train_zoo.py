#!/usr/bin/env python
"""Policy zoo pipeline: demos → BC + DAgger for each core and seed → pick the best seed on the *val*
split → evaluate it on every suite (test + OOD) → ship it to ``policies/<env>-<core>/``.

    python scripts/train_zoo.py --env LiquidControl/RoverNav-v0 --cores ltc,lstm --seeds 0,1,2 \
        --episodes 200 --minutes 15 --eval-episodes 100

Everything lands under ``--out`` (default ``runs/zoo``) and is resumable: demos skip finished seeds,
a finished training run (its ``summary.json``) is reused. Shipping writes the checkpoint files, a card
with the evaluation results, and the per-suite ``results/<env>-<core>/<suite>.json`` that
``scripts/make_tables.py`` turns into the README tables. The expert is evaluated on the same suites
(``results/<env>-expert/``) as the reference. Model selection uses the val split only: test and OOD
suites are looked at once, after selection. After selection every seed (not only the shipped one) is also
evaluated on the ``test`` suite (``results/<env>-<core>/seeds/test-s<seed>.json``), so the README can
compare cores across training seeds rather than by one val-selected seed each (``--no-seed-tests`` skips
it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from liquid_control.evaluate.runner import evaluate, evaluate_many, write_results
from liquid_control.evaluate.suites import resolve_condition, suites_for
from liquid_control.learn.bc import BCConfig, train_bc
from liquid_control.learn.checkpoint import atomic_write_json
from liquid_control.learn.demos import collect

ROOT = Path(__file__).resolve().parents[1]


def short_name(env_id: str) -> str:
    """``LiquidControl/RoverNav-v0`` -> ``rovernav``."""
    return env_id.split("/")[-1].split("-")[0].lower()


def train_one(args: argparse.Namespace, core: str, seed: int, demos: Path, out: Path) -> dict:
    """One BC + DAgger run (reused when its summary exists); returns its summary."""
    summary_path = out / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    t0 = time.monotonic()
    cfg = BCConfig(env_id=args.env, demos=[str(demos)], out=str(out / "policy"), policy=core,
                   budget=args.budget, epochs=args.epochs, minutes=args.minutes, seed=seed,
                   dagger_rounds=args.dagger_rounds, dagger_episodes=args.dagger_episodes,
                   dagger_epochs=args.dagger_epochs, workers=args.workers,
                   resume=(out / "policy" / "train_state.pt").exists(),
                   command="scripts/train_zoo.py " + " ".join(sys.argv[1:]))
    ckpt = train_bc(cfg)
    train_s = time.monotonic() - t0
    summary = {"core": core, "seed": seed, "checkpoint": str(ckpt), "train_wall_clock_s": round(train_s, 1),
               "val": validate(str(ckpt), args.env, seed, args.val_episodes, args.workers)}
    atomic_write_json(summary_path, summary)
    print(f"[{core} s{seed}] val success {summary['val']['success_rate']['mean']:.2f} "
          f"(trained in {train_s / 60:.1f} min)", flush=True)
    return summary


def validate(checkpoint: str, env_id: str, seed: int, episodes: int, workers: int | None) -> dict:
    """Val-split metrics of a training seed's checkpoint: what selects the shipped seed (its own stream of
    val episodes per training seed, 1000 + seed, as every zoo run has used)."""
    val = evaluate(checkpoint, env_id, split="val", episodes=episodes, seed=1000 + seed, workers=workers,
                   progress=False)
    return {k: val["metrics"][k] for k in ("success_rate", "spl", "collision_rate")}


def select_and_ship(args: argparse.Namespace, core: str, runs: list[dict], env_short: str,
                    manifests: dict[int, dict]) -> Path | None:
    """Pick the best of one core's training seeds on val; unless ``args.no_ship``, test every seed (unless
    ``args.no_seed_tests``) and ship the best with the manifest of its demonstrations
    (``manifests[seed]``). Returns the shipped directory."""
    best = max(runs, key=lambda r: (r["val"]["success_rate"]["mean"], r["val"]["spl"]["mean"] or 0.0))
    if args.no_ship:
        return None
    if not args.no_seed_tests:  # after selection: test results never pick a seed
        test_every_seed(runs, args, ROOT / "results" / f"{env_short}-{core}" / "seeds")
    dest = ship(best, args, env_short, manifests[best["seed"]], runs)
    print(f"[ship] {dest.relative_to(ROOT)} (seed {best['seed']})", flush=True)
    return dest


def evaluate_suites(policy: str, args: argparse.Namespace, dest: Path) -> dict:
    """Evaluate ``policy`` on every suite of the env; writes ``dest/<suite>.json``; returns metrics."""
    names = sorted(suites_for(args.env))
    conditions = [resolve_condition(args.env, suite=n) for n in names]
    results = evaluate_many([(policy, args.env, c) for c in conditions], args.eval_episodes, seed=0,
                            workers=args.workers, desc=f"suites {Path(policy).name}")
    out = {}
    for name, res in zip(names, results, strict=True):
        write_results(res, dest / f"{name}.json")
        out[name] = _headline(res)
    return out


def test_every_seed(runs: list[dict], args: argparse.Namespace, dest: Path, suite: str = "test") -> None:
    """Evaluate every seed's checkpoint on ``suite`` (the test split by default, or an OOD suite of the
    env; after selection, never used to select).

    Writes ``dest/<suite>-s<seed>.json`` (reused when present for the same checkpoint path and episode
    count; another seed's or run's file of that name is replaced) and puts the
    metrics into each run record: ``run["test"]`` for the test suite, ``run["suites"][suite]`` otherwise.
    """
    def keep(run: dict, res: dict) -> None:
        if suite == "test":
            run["test"] = _headline(res)
        else:
            run.setdefault("suites", {})[suite] = _headline(res)

    condition = resolve_condition(args.env, suite=suite)  # an unknown suite fails before any work
    todo = []
    for run in runs:
        path = dest / f"{suite}-s{run['seed']}.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        if saved.get("episodes") == args.eval_episodes and saved.get("policy") == run["checkpoint"]:
            keep(run, saved)
        else:
            todo.append(run)
    if not todo:
        return
    results = evaluate_many([(r["checkpoint"], args.env, condition) for r in todo], args.eval_episodes,
                            seed=0, workers=args.workers, desc=f"{suite} every seed {dest.parent.name}")
    for run, res in zip(todo, results, strict=True):
        res["training_seed"] = run["seed"]
        write_results(res, dest / f"{suite}-s{run['seed']}.json")
        keep(run, res)


def _headline(res: dict) -> dict:
    """The metrics a card keeps of one evaluation."""
    return {k: res["metrics"][k] for k in ("success_rate", "spl", "collision_rate", "timeout_rate")}


def _same_bytes(a: Path, b: Path) -> bool:
    import filecmp

    return a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)


def ship(best: dict, args: argparse.Namespace, env_short: str, demos_manifest: dict, runs: list) -> Path:
    """Copy the selected checkpoint into policies/ and evaluate it on every suite.

    When the shipped checkpoint is already this one (same seed, same evaluation size, byte-identical
    weights), its suite results are kept and only the selection record (every seed's val result) is
    updated; a retrained or another run's policy of the same seed is evaluated afresh.
    """
    name = f"{env_short}-{best['core']}"
    dest = ROOT / "policies" / name
    old = json.loads((dest / "card.json").read_text()) if (dest / "card.json").exists() else {}
    same = (old.get("selection", {}).get("selected_seed") == best["seed"]
            and old.get("evaluation", {}).get("episodes") == args.eval_episodes
            and _same_bytes(dest / "policy.pt", Path(best["checkpoint"]) / "policy.pt"))
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("policy.pt", "config.json"):
        shutil.copy2(Path(best["checkpoint"]) / f, dest / f)
    card = json.loads((Path(best["checkpoint"]) / "card.json").read_text())
    if same:
        results = old["evaluation"]["suites"]
    else:
        results = evaluate_suites(str(dest), args, ROOT / "results" / name)
    card.update({
        "name": name,
        "selection": {"split": "val", "selected_seed": best["seed"], "val": best["val"],
                      "seeds": [{"seed": r["seed"], "val": r["val"],
                                 "train_wall_clock_s": r["train_wall_clock_s"],
                                 **({"test": r["test"]} if "test" in r else {}),
                                 **({"suites": r["suites"]} if r.get("suites") else {})} for r in runs]},
        "demonstrations": {k: demos_manifest.get(k) for k in ("env_id", "counts", "expert")},
        "train_wall_clock_s": best["train_wall_clock_s"],
        "evaluation": {"episodes": args.eval_episodes, "seed": 0, "suites": results},
    })
    atomic_write_json(dest / "card.json", card)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="LiquidControl/RoverNav-v0")
    p.add_argument("--cores", default="ltc,lstm,gru,cfc,mlp")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=int, default=20000)
    p.add_argument("--episodes", type=int, default=200, help="expert demonstration episodes")
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap of one BC + DAgger run")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--dagger-rounds", type=int, default=4)
    p.add_argument("--dagger-episodes", type=int, default=40)
    p.add_argument("--dagger-epochs", type=int, default=15)
    p.add_argument("--val-episodes", type=int, default=40)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-ship", action="store_true", help="train and select only")
    p.add_argument("--no-seed-tests", action="store_true",
                   help="do not evaluate every training seed on the test suite after selection")
    p.add_argument("--out", default=str(ROOT / "runs" / "zoo"))
    p.add_argument("--demos", default=None,
                   help="train on this existing demonstration dataset (read only, never collected into) "
                        "instead of collecting <out>/demos-<env>")
    args = p.parse_args()
    torch.set_num_threads(1)
    env_short = short_name(args.env)
    out = Path(args.out)
    demos = out / f"demos-{env_short}"
    t0 = time.monotonic()
    if args.demos is not None:  # someone else's demonstrations: read their manifest, do not touch them
        demos = Path(args.demos)
        manifest = json.loads((demos / "manifest.json").read_text())
        if manifest.get("env_id") != args.env:
            raise ValueError(f"{demos} holds demonstrations of {manifest.get('env_id')}, not {args.env}")
        print(f"[demos] {demos}: {manifest['counts']}", flush=True)
    else:
        manifest = collect(args.env, args.episodes, demos, seed=0, workers=args.workers)
        print(f"[collect] {manifest['counts']} in {time.monotonic() - t0:.0f} s", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    for core in args.cores.split(","):
        runs = [train_one(args, core, s, demos, out / f"{env_short}-{core}-s{s}") for s in seeds]
        select_and_ship(args, core, runs, env_short, {s: manifest for s in seeds})
    expert_dir = ROOT / "results" / f"{env_short}-expert"
    if not args.no_ship and not (expert_dir / "test.json").exists():
        evaluate_suites("expert", args, expert_dir)
    print(f"[done] {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
