"""PPO with the LTC policy: DroneHover from scratch, or DroneNav/RoverNav fine-tuned from a BC checkpoint.

    # issue-7 target 1: LTC from scratch, ctbr actions; >= 90% of test episodes must hold within 0.1 m
    # of the target for the last 2 s (the env's ``is_success`` at the episode end). Run of 2026-11-25:
    # val success 1.0 from 160k steps on, test 50/50 at 401k steps (~14 min on 2 shared cores)
    .venv/bin/python scripts/train_ppo.py hover --action-type ctbr --steps 400000 --eval-freq 40000 \
        --out runs/ppo-hover/ltc

    # issue-7 target 2: PPO fine-tuning of a BC checkpoint must not lose test success / SPL
    .venv/bin/python scripts/train_ppo.py nav --init runs/ppo-nav/init --steps 200000 --n-envs 8 \
        --vec-env dummy --critic-core gru --n-steps 256 --batch-size 512 --lr 3e-5 --clip-range 0.1 \
        --target-kl 0.02 --log-std-init -2.0 --critic-warmup 8 --eval-freq 25000 --out runs/ppo-nav/lr3e-5
    # ... and ship the val-selected policy like the zoo does (policies/NAME, results/NAME/<suite>.json)
    .venv/bin/python scripts/train_ppo.py ship --run runs/ppo-nav/lr3e-5 --name dronenav-ltc-ppo --workers 2
    # several training seeds (the same command with --seed 1, --seed 2): the val-best one is shipped, every
    # seed is tested after selection (README "Training seeds" table: test mean +- sd over seeds)
    ... ship --run runs/ppo-rover/lr3e-5 --run runs/ppo-rover/ltc-s1 --run runs/ppo-rover/ltc-s2 --name ...
    # RoverNav the same way (the env is the BC checkpoint's): run of 2026-12-01, 217k steps in 11 min,
    # test success 0.44 vs 0.34 for BC on the same episodes; shipped as rovernav-ltc-ppo
    ... nav --init runs/ppo-rover/init (a copy of policies/rovernav-ltc) ... --out runs/ppo-rover/lr3e-5

Both train with ``liquid_control.learn.ppo.train_ppo`` (the ``train ppo`` command's function), pick the
final or the best-on-val PPO policy on the val split, evaluate every candidate (and the BC policy) on the
SAME episodes of the env's ``test`` suite (seed 0, as the zoo), plot the val learning curve
(``OUT/curve.png``) and print one JSON summary (test metrics with 95% CIs, wall-clock; also
``OUT/summary.json``). The budget is the ``--steps`` PPO env steps + the critic warm-up rounds (nav,
``n_steps x n_envs`` each); its wall-clock is reported, not assumed. ``--resume`` continues a stopped run.
"""

from __future__ import annotations

import os

# numba's parallel LTC kernels pay a large per-call launch cost on a loaded 2-core machine even when
# told to use one thread (~8 ms vs ~1 ms per single-step call); PPO calls the core once per env step,
# so pin numba to one thread before it is imported (override by exporting NUMBA_NUM_THREADS). Only when run
# as a script: a process that imports this module (the tests) may have started numba's threads already.
if __name__ == "__main__":
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from liquid_control.evaluate.runner import evaluate  # noqa: E402
from liquid_control.evaluate.suites import resolve_condition  # noqa: E402
from liquid_control.learn.checkpoint import atomic_write_json  # noqa: E402
from liquid_control.learn.ppo import PPOConfig, train_ppo  # noqa: E402

METRICS = ("success_rate", "collision_rate", "timeout_rate", "spl")


def _metrics(spec: str, env: str, overrides: dict, where: str, episodes: int, seed: int, workers: int | None
             ) -> dict:
    """Closed-loop metrics of ``spec`` on the val split or the env's ``test`` suite (as the zoo evaluates)."""
    where_kw = {"suite": "test"} if where == "test" else {"split": where}
    res = evaluate(spec, env, overrides=overrides, episodes=episodes, seed=seed, workers=workers, **where_kw)
    return {k: res["metrics"][k] for k in METRICS if k in res["metrics"]}


def _env_of(checkpoint: str) -> str:
    """The env id a checkpoint was trained on (its config.json); nav fine-tuning stays on it."""
    path = Path(checkpoint) / "config.json"
    if not path.exists():
        raise SystemExit(f"--init {checkpoint}: not a checkpoint (no config.json)")
    env = json.loads(path.read_text())["env_id"]
    if env not in ("LiquidControl/DroneNav-v0", "LiquidControl/RoverNav-v0"):
        raise SystemExit(f"--init {checkpoint}: nav fine-tunes a DroneNav or RoverNav checkpoint, not {env}")
    return env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["hover", "nav", "ship"],
                   help="ship: copy a finished run's selected policy to policies/NAME (see ship_run)")
    p.add_argument("--run", action="append", default=None,
                   help="ship: the run dir (holding summary.json); repeat for several training seeds")
    p.add_argument("--name", default=None, help="ship: policies/ name, e.g. dronenav-ltc-ppo")
    p.add_argument("--seed-suites", default="",
                   help="ship, several runs: comma-separated OOD suites to evaluate every seed on as well "
                        "(results/NAME/seeds/<suite>-s<seed>.json), e.g. ood-family,ood-latency")
    p.add_argument("--action-type", default="ctbr", choices=["ctbr", "rpm", "velocity"], help="hover actions")
    p.add_argument("--init", default=None, help="nav: the BC checkpoint to fine-tune (required)")
    p.add_argument("--steps", type=int, default=None, help="PPO env steps (hover 2M, nav 300k by default)")
    p.add_argument("--n-envs", type=int, default=None,
                   help="parallel envs (default: hover 16 in one process, nav one per core)")
    p.add_argument("--vec-env", default=None, choices=["auto", "subproc", "batched", "dummy"],
                   help="default: hover dummy (the batched policy call, not the env, is the cost), nav auto")
    p.add_argument("--pin-workers", action="store_true", default=None,
                   help="pin each env worker process to a CPU of its own")
    p.add_argument("--critic", default="separate", choices=["separate", "shared"])
    p.add_argument("--critic-core", default=None,
                   help="core of the separate critic (default: hover gru, nav the actor's)")
    p.add_argument("--n-steps", type=int, default=None, help="rollout steps per env (hover 128, nav 256)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch steps (hover 512, nav 256)")
    p.add_argument("--epochs", type=int, default=None, help="PPO epochs per update (default 5)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (hover 3e-4, nav 1e-4)")
    p.add_argument("--clip-range", type=float, default=None, help="PPO clip (default 0.2)")
    p.add_argument("--target-kl", type=float, default=None, help="stop an update's epochs past this KL")
    p.add_argument("--ent-coef", type=float, default=None, help="entropy bonus (default 0)")
    p.add_argument("--gamma", type=float, default=None, help="discount (default 0.99)")
    p.add_argument("--log-std-init", type=float, default=None,
                   help="initial log std relative to the action half-range (hover -1.0, nav -1.5)")
    p.add_argument("--eval-freq", type=int, default=None, help="env steps between val evaluations")
    p.add_argument("--val-episodes", type=int, default=20, help="val episodes per evaluation")
    p.add_argument("--critic-warmup", type=int, default=4, help="nav: critic-only rounds before PPO")
    p.add_argument("--alive-bonus", type=float, default=None,
                   help="extra training reward per step alive (default 0: DroneHover's own reward already "
                        "pays for staying alive)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=50,
                   help="test-suite episodes per policy (seed 0, the zoo's test evaluation)")
    p.add_argument("--select-episodes", type=int, default=30,
                   help="val-split episodes (seed 1000 + seed) that choose between final and best-val PPO")
    p.add_argument("--workers", type=int, default=None, help="evaluation workers")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env option override")
    p.add_argument("--out", default=None, help="run dir (default runs/ppo-<task>-s<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT's run from its last checkpoint up to --steps (its saved options win)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.task == "ship":
        if not args.run or not args.name:
            p.error("ship needs --run RUN and --name NAME")
        suites = [s for s in args.seed_suites.split(",") if s]
        try:
            dest = ship_run([Path(r) for r in args.run], args.name, args.eval_episodes, args.workers, suites)
        except ValueError as exc:  # bad runs, name or suites: one line, exit code 2
            p.error(str(exc))
        print(json.dumps({"shipped": str(dest), **json.loads((dest / "card.json").read_text())["evaluation"]},
                         indent=2))
        return 0

    from liquid_control.sim.options import parse_overrides

    overrides = parse_overrides(args.set)
    out = Path(args.out or f"runs/ppo-{args.task}-s{args.seed}")
    command = "scripts/train_ppo.py " + json.dumps(vars(args))
    knobs = {"n_envs": args.n_envs, "vec_env": args.vec_env, "pin_workers": args.pin_workers,
             "critic_core": args.critic_core,
             "n_steps": args.n_steps, "batch_size": args.batch_size, "n_epochs": args.epochs, "lr": args.lr,
             "clip_range": args.clip_range, "ent_coef": args.ent_coef, "gamma": args.gamma,
             "log_std_init": args.log_std_init, "eval_freq": args.eval_freq, "target_kl": args.target_kl}
    given = {k: v for k, v in knobs.items() if v is not None}  # flags given on the command line win
    common = {"seed": args.seed, "critic": args.critic, "eval_episodes": args.val_episodes,
              "alive_bonus": args.alive_bonus or 0.0, "command": command}
    if args.task == "hover":
        env = "LiquidControl/DroneHover-v0"
        overrides = {"action_type": args.action_type, **overrides}
        hover = {"n_envs": 16, "vec_env": "dummy", "critic_core": "gru", "n_steps": 128, "batch_size": 512,
                 "log_std_init": -1.0, "eval_freq": 50_000}
        cfg = PPOConfig(env_id=env, out=str(out / "policy"), steps=args.steps or 2_000_000,
                        env_options=overrides, **common, **{**hover, **given})
    else:
        if not args.init:
            p.error("nav needs --init <BC checkpoint>")
        env = _env_of(args.init)  # DroneNav or RoverNav: the env the BC checkpoint was trained on
        cfg = PPOConfig(env_id=env, out=str(out / "policy"), steps=args.steps or 300_000, init=args.init,
                        env_options=overrides, critic_warmup=args.critic_warmup, **common,
                        **{"lr": 1e-4, "eval_freq": 25_000, **given})
    resume = None
    if args.resume:  # the run's own options (ppo_run.json) win over this command line, except --steps
        saved = json.loads((Path(cfg.out) / "ppo_run.json").read_text())
        saved.update(steps=cfg.steps, command=command, progress=True)
        cfg, resume = PPOConfig(**saved), cfg.out
        ev = Path(cfg.out) / "sb3" / "eval"
        if (ev / "evaluations.npz").exists():  # EvalCallback restarts its file: keep the earlier curve
            (ev / "evaluations.npz").rename(ev / f"evaluations_part{len(list(ev.glob('evaluations_*')))}.npz")
    t0 = time.monotonic()
    ckpt = train_ppo(cfg, resume=resume)
    train_s = time.monotonic() - t0
    card = json.loads((ckpt / "card.json").read_text())
    print(f"[train] {card['env_steps']} env steps in {train_s:.0f} s", flush=True)
    curve = plot_curve(ckpt / "sb3" / "eval", out / "curve.png",
                       f"PPO {cfg.policy.upper()} on {env.split('/')[-1]} ({args.task})")

    # the candidates: the final policy, the best-on-val one, and (nav) the BC policy it started from;
    # the PPO policy to report is chosen on the val split, then every candidate runs the SAME test episodes
    candidates = {"ppo": str(ckpt)}
    if (ckpt / "best" / "policy.pt").exists():
        candidates["ppo_best_val"] = str(ckpt / "best")
    if args.init:
        candidates["bc"] = args.init
    val = {name: _metrics(spec, env, overrides, "val", args.select_episodes, 1000 + args.seed, args.workers)
           for name, spec in candidates.items()}
    ppo_names = [n for n in candidates if n.startswith("ppo")]
    selected = max(ppo_names, key=lambda n: (val[n]["success_rate"]["mean"], val[n].get("spl", {}).get("mean")
                                             or 0.0))
    test = {name: _metrics(spec, env, overrides, "test", args.eval_episodes, 0, args.workers)
            for name, spec in candidates.items()}
    summary = {"task": args.task, "env": env, "env_options": overrides, "seed": args.seed,
               "env_steps": card["env_steps"], "train_wall_clock_s": round(train_s, 1),
               "params": card["params"], "val_curve": card.get("eval"), "curve_png": curve,
               "selection": {"split": "val", "episodes": args.select_episodes, "seed": 1000 + args.seed,
                             "by": "success_rate, then spl", "val": val, "selected": selected,
                             "checkpoint": candidates[selected]},
               "test": {"suite": "test", "episodes": args.eval_episodes, "seed": 0, **test},
               "checkpoint": str(ckpt), "command": command}
    if args.task == "hover":
        summary["target"] = "success_rate >= 0.9 (held within 0.1 m for the last 2 s)"
        summary["meets_target"] = test[selected]["success_rate"]["mean"] >= 0.9
    else:
        summary["target"] = "PPO test success and SPL >= BC's"
        summary["delta_vs_bc"] = {k: test[selected][k]["mean"] - test["bc"][k]["mean"]
                                  for k in ("success_rate", "spl") if k in test[selected] and k in test["bc"]}
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


def ship_run(runs: Path | list[Path], name: str, episodes: int, workers: int | None,
             seed_suites: list[str] | tuple[str, ...] = ()) -> Path:
    """Ship the val-selected PPO policy of one or several finished runs (training seeds) as ``policies/NAME``.

    Reuses ``scripts/train_zoo.py``'s ``ship`` (checkpoint copy, every suite of the env evaluated with
    ``episodes`` episodes at seed 0 into ``results/NAME/<suite>.json``, card with selection/evaluation),
    then adds the PPO config, the BC-vs-PPO test comparison of the run and the warm start's provenance.
    Several runs (one per ``--seed``, same env and warm start): each run's own val-selected policy is
    evaluated again on the SAME val episodes (seed 1000, the seed-0 run's), the best of them is shipped,
    and every seed is evaluated on the test suite after selection (``results/NAME/seeds/test-s<seed>``),
    as the zoo does for BC seeds, and on each of ``seed_suites`` (``seeds/<suite>-s<seed>``).
    """
    import argparse as _argparse
    import shutil
    import sys

    if str(Path(__file__).parent) not in sys.path:  # train_zoo lives next to this script
        sys.path.insert(0, str(Path(__file__).parent))
    from train_zoo import ROOT, ship, short_name, test_every_seed

    runs = [runs] if isinstance(runs, Path) else list(runs)
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    env = summaries[0]["env"]
    env_short = short_name(env)
    if not name.startswith(env_short + "-") or "/" in name:
        raise ValueError(f"--name must look like {env_short}-<policy>, got {name!r}")
    if any(s["env"] != env for s in summaries):
        raise ValueError(f"the runs were trained on different envs: {sorted({s['env'] for s in summaries})}")
    seeds = [s["seed"] for s in summaries]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"one run per training seed, got seeds {seeds}")
    if seed_suites and len(summaries) < 2:
        raise ValueError("--seed-suites needs several runs (training seeds)")
    for suite in seed_suites:  # unknown suites fail here, before any evaluation
        resolve_condition(env, suite=suite)
    records = []
    for s in summaries:
        sel = s["selection"]
        records.append({"core": name[len(env_short) + 1:], "seed": s["seed"], "checkpoint": sel["checkpoint"],
                        "val": sel["val"][sel["selected"]], "train_wall_clock_s": s["train_wall_clock_s"]})
    if len(records) > 1:  # compare the seeds on the same val episodes
        for rec, s in zip(records, summaries, strict=True):
            rec["val"] = _metrics(rec["checkpoint"], env, s.get("env_options") or {}, "val",
                                  s["selection"]["episodes"], 1000, workers)
    best_i = max(range(len(records)), key=lambda i: (records[i]["val"]["success_rate"]["mean"],
                                                     records[i]["val"].get("spl", {}).get("mean") or 0.0))
    record, summary = records[best_i], summaries[best_i]
    sel = summary["selection"]
    ckpt = Path(sel["checkpoint"])
    run_card = json.loads((ckpt / "card.json").read_text())
    init_card = {}
    if run_card.get("init"):
        init_path = Path(run_card["init"]) / "card.json"
        init_card = json.loads(init_path.read_text()) if init_path.exists() else {}
    zoo_args = _argparse.Namespace(env=env, eval_episodes=episodes, workers=workers)
    if len(records) > 1:
        for suite in ("test", *seed_suites):
            test_every_seed(records, zoo_args, ROOT / "results" / name / "seeds", suite)
    dest = ship(record, zoo_args, env_short, init_card.get("demonstrations") or {}, records)
    # a kept copy of an earlier warm start's test results (make_tables.init_results) is not this one's
    shutil.rmtree(ROOT / "results" / name / "init", ignore_errors=True)
    card = json.loads((dest / "card.json").read_text())
    card["selection"]["candidates"] = sel["val"]  # final / best-val PPO (and BC) on the same val episodes
    card["selection"]["selected"] = sel["selected"]
    card.update({
        "trainer": "ppo (sb3-contrib RecurrentPPO)" + (" fine-tuned from BC" if run_card.get("init") else ""),
        "config": run_card.get("ppo"),
        "wall_clock_s": run_card.get("wall_clock_s"),
        "metrics": {"env_steps": run_card.get("env_steps"), "val_curve": run_card.get("eval"),
                    "critic_warmup_value_loss": run_card.get("critic_warmup_value_loss"),
                    "comparison": summary["test"]},
        "init": {"checkpoint": run_card.get("init"), "name": init_card.get("name"),
                 "command": init_card.get("command"),
                 "train_wall_clock_s": init_card.get("train_wall_clock_s")},
    })
    atomic_write_json(dest / "card.json", card)
    return dest


def plot_curve(eval_dir: Path, png: Path, title: str) -> str | None:
    """Learning curve from EvalCallback's ``evaluations.npz``: val success rate and return vs env steps."""
    import numpy as np

    parts = [np.load(f) for f in sorted(eval_dir.glob("evaluations*.npz"))]  # resumed runs: several
    parts = sorted((d for d in parts if d["timesteps"].size), key=lambda d: int(d["timesteps"][0]))
    if not parts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = {k: np.concatenate([x[k] for x in parts]) for k in ("timesteps", "results", "successes")
         if all(k in x for x in parts)}
    steps = d["timesteps"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if "successes" in d and d["successes"].size:
        ax.plot(steps, d["successes"].mean(axis=1), "o-", label="val success rate")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax2 = ax.twinx()
    ax2.plot(steps, d["results"].mean(axis=1), "s--", color="tab:orange", label="val mean return")
    ax2.set_ylabel("mean return")
    fig.legend(loc="center right", bbox_to_anchor=(0.85, 0.5), fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return str(png)


if __name__ == "__main__":
    raise SystemExit(main())
