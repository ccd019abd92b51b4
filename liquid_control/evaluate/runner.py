"""Closed-loop evaluation: run a policy for N episodes on a split or suite and write results.json.

``liquid-control evaluate --policy CKPT|expert|random --env ID [--suite NAME | --split test]
[--episodes N] [--seed S] [--set key=value]... [--workers K] --out results.json``

Episode ``i`` resets the env with the ``i``-th seed drawn from ``numpy.random.SeedSequence(--seed)``, and
every episode is a pure function of (env, options, policy, seed), so results.json is identical for any
worker count. Episodes run through the project's one executor (``learn.rollout.map_jobs``); an episode
that crashes twice becomes an error record in ``per_episode`` and is counted in ``error_rate``.
Next to results.json the runner writes ``<stem>.csv`` (one row per episode) and ``<stem>.md`` (a table).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.evaluate import metrics as M
from liquid_control.evaluate.suites import Condition, resolve_condition
from liquid_control.fileio import atomic_write_text
from liquid_control.learn.rollout import (
    Controller,
    ControllerSpec,
    cached_env,
    make_controller,
    map_jobs,
    run_episode,
    sub_specs,
)
from liquid_control.provenance import platform_info

DEFAULT_EPISODES = 100


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of a run: a prefix-stable stream from ``SeedSequence(seed)`` (31-bit ints)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    state = np.random.SeedSequence(seed).generate_state(episodes, dtype=np.uint32)
    return [int(s >> 1) for s in state]


def policy_label(spec: ControllerSpec) -> str | dict:
    """How a controller spec is written into results.json (a string, or the mix dict)."""
    return spec if isinstance(spec, dict) else str(spec)


def check_policy(spec: ControllerSpec) -> None:
    """Fail fast, in this process, on a missing or unloadable checkpoint (FileNotFoundError/ValueError)."""
    if isinstance(spec, dict):
        for sub in sub_specs(spec):
            check_policy(sub)
        make_controller(spec)  # a bad composite (mix beta, noise std, gate option, reset every) fails here
        return
    if spec in ("expert", "random"):
        return
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {spec!r} not found (want a checkpoint dir, expert or random)")
    try:
        make_controller(str(path))
    except (ValueError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - torch/pickle/json errors of a corrupt checkpoint
        raise ValueError(f"cannot load checkpoint {spec!r}: {type(exc).__name__}: {exc}") from None


# env options a checkpoint brings along: its interface (sensor, rays, action type, control rate, ...), not
# the conditions an evaluation chooses (layout split/family/knobs, disturbances) nor training-only ones
CONDITION_KEYS = ("split", "layout", "disturbance", "reward", "render_mode")


def checkpoint_dirs(spec: ControllerSpec) -> list[str]:
    """The checkpoint directories named by a controller spec (none for expert/random)."""
    if isinstance(spec, dict):
        return [d for sub in sub_specs(spec) for d in checkpoint_dirs(sub)]
    return [] if spec in ("expert", "random") else [str(spec)]


def interface_options(spec: ControllerSpec) -> dict[str, Any]:
    """Env options of a policy's checkpoint that define its observation/action interface.

    They are applied under the evaluation's condition (suite options and ``--set`` come on top), so a
    policy trained with e.g. ``rays.count=32`` is evaluated with the observation it was trained on.
    """
    from liquid_control.learn.checkpoint import load_config

    dirs = checkpoint_dirs(spec)
    if not dirs:
        return {}
    options = load_config(dirs[0]).get("env_options") or {}
    return {k: v for k, v in options.items() if k not in CONDITION_KEYS}


def check_policy_fits_env(spec: ControllerSpec, env_id: str, options: dict[str, Any]) -> None:
    """ValueError when a checkpoint's observation/action widths do not match the env it is run in."""
    from liquid_control.learn.checkpoint import load_config

    env = cached_env(env_id, options)
    for d in checkpoint_dirs(spec):
        pol = load_config(d)["policy"]
        obs, act = env.observation_space.shape, env.action_space.shape
        if (obs and obs[-1] != pol.get("obs_dim")) or (act and act[-1] != pol.get("act_dim")):
            widths = f"{pol.get('obs_dim')}/{pol.get('act_dim')}"
            raise ValueError(f"checkpoint {d} expects obs/act widths {widths}, "
                             f"but {env_id} with these options has {obs}/{act}")


def check_env(env_id: str, options: dict[str, Any]) -> None:
    """Fail fast on an unknown env id or bad options (builds the env once in this process)."""
    import gymnasium as gym

    try:
        cached_env(env_id, options)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make env {env_id!r}: {exc}") from None


# ---- the per-episode job (runs in worker processes) -----------------------------------------------

@lru_cache(maxsize=8)
def _controller(spec_json: str) -> Controller:
    """One controller per spec per process (checkpoints are loaded once, reset every episode)."""
    return make_controller(json.loads(spec_json))


def shortest_path(layout: Any) -> float | None:
    """ℓ for SPL: the planner's shortest collision-free start→goal path on the known layout (None if none)."""
    if layout is None:
        return None
    from liquid_control.experts.planning import shortest_path_length

    value = shortest_path_length(layout)
    return None if value is None or not np.isfinite(value) else float(value)


@lru_cache(maxsize=4)
def _adaptive(spec_json: str, adapt_json: str) -> Controller:
    """A reservoir policy whose readout adapts online (``--adapt rls``; restarts every episode)."""
    from liquid_control.learn.readout import make_adaptive_controller

    return make_adaptive_controller(json.loads(spec_json), json.loads(adapt_json))


def episode_job(item: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation episode and return its metrics record (module-level: picklable for workers)."""
    env = cached_env(item["env"], item["options"])
    spec = json.dumps(item["policy"], sort_keys=True)
    adapt = item.get("adapt")
    ctrl = _adaptive(spec, json.dumps(adapt, sort_keys=True)) if adapt else _controller(spec)
    ep = run_episode(env, ctrl, item["seed"])
    ell = shortest_path(ep.layout)
    return M.episode_record(item["index"], item["seed"], len(ep.actions), ep.info, ell)


# ---- planning, running and assembling evaluations --------------------------------------------------

def plan(policy: ControllerSpec, env_id: str, condition: Condition, episodes: int, seed: int,
         tag: Any = None) -> list[dict[str, Any]]:
    """The executor items of one evaluation (``tag`` tells evaluations apart when several share a pool)."""
    return [
        {"policy": policy, "env": env_id, "options": condition.options, "seed": s, "index": i, "tag": tag}
        for i, s in enumerate(episode_seeds(seed, episodes))
    ]


def assemble(policy: ControllerSpec, env_id: str, condition: Condition, seed: int,
             items: Sequence[dict[str, Any]], outputs: Sequence[Any]) -> dict[str, Any]:
    """results.json (DESIGN.md §2) from the executor's outputs (records or error records) of one run."""
    records = []
    for item, out in zip(items, outputs, strict=True):
        if isinstance(out, dict) and "error" in out and "index" not in out:
            msg = str(out["error"]).strip().splitlines()
            print(f"evaluate: episode {item['index']} (seed {item['seed']}) failed:\n{out['error']}",
                  file=sys.stderr)
            records.append(M.error_record(item["index"], item["seed"], msg[-1] if msg else "error"))
        else:
            records.append(out)
    return {
        "env": env_id,
        "condition": condition.name,
        "split": condition.split,
        "policy": policy_label(policy),
        "episodes": len(records),
        "seed": int(seed),
        "overrides": condition.overrides,
        "options": condition.options,
        "errors": sum(r.get("error") is not None for r in records),
        "metrics": M.aggregate(records, seed=seed),
        "platform": platform_info(),  # versions + CPU: results can differ by an episode across machines
        "per_episode": records,
    }


def evaluate_many(
    runs: Sequence[tuple[ControllerSpec, str, Condition]],
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "evaluate",
    adapt: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Several evaluations ``(policy, env_id, condition)`` through one worker pool; one results dict each."""
    from liquid_control.sim.options import merge

    checked = []
    for policy, env_id, condition in runs:
        check_policy(policy)
        iface = interface_options(policy)
        if iface:
            condition = Condition(condition.name, condition.split, merge(iface, condition.options),
                                  condition.overrides)
        check_env(env_id, condition.options)
        check_policy_fits_env(policy, env_id, condition.options)
        checked.append((policy, env_id, condition))
    runs = checked
    items: list[dict[str, Any]] = []
    bounds = []
    for k, (policy, env_id, condition) in enumerate(runs):
        start = len(items)
        items += plan(policy, env_id, condition, episodes, seed, tag=k)
        if adapt:  # online readout adaptation (learn/readout.py); fail fast on a non-reservoir policy
            from liquid_control.learn.readout import make_adaptive_controller

            make_adaptive_controller(policy, adapt)
            for it in items[start:]:
                it["adapt"] = adapt
        bounds.append((start, len(items)))
    outputs = map_jobs(episode_job, items, workers=workers, desc=desc, progress=progress)
    results = []
    for (policy, env_id, condition), (a, b) in zip(runs, bounds, strict=True):
        res = assemble(policy, env_id, condition, seed, items[a:b], outputs[a:b])
        resolved = getattr(cached_env(env_id, condition.options).unwrapped, "options", None)
        if isinstance(resolved, dict):  # every option the env ran with, defaults included
            res["resolved_options"] = json.loads(json.dumps(resolved, default=str))
            res["per_episode"] = res.pop("per_episode")  # keep the long list last in results.json
        if adapt:
            res["adapt"] = adapt
            res["per_episode"] = res.pop("per_episode")
        results.append(res)
    return results


def evaluate(
    policy: ControllerSpec,
    env_id: str,
    condition: Condition | None = None,
    *,
    suite: str | None = None,
    split: str | None = None,
    overrides: dict[str, Any] | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    adapt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` (checkpoint dir, "expert", "random" or a composite controller spec, see
    ``learn.rollout``) closed loop -> results.json.

    Give a resolved ``condition`` or ``suite``/``split`` (default: the test split) plus ``overrides``.
    ``adapt`` (``learn.readout.adapt_options``) adapts a reservoir policy's readout online by RLS.
    """
    if condition is None:
        condition = resolve_condition(env_id, suite=suite, split=split, overrides=overrides)
    elif suite is not None or split is not None or overrides:
        raise ValueError("give either a condition or suite/split/overrides, not both")
    return evaluate_many([(policy, env_id, condition)], episodes, seed, workers, progress,
                         desc=f"evaluate {condition.name}", adapt=adapt)[0]


# ---- output files ----------------------------------------------------------------------------------

def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def episodes_csv(results: dict[str, Any]) -> str:
    """The per-episode records as CSV text (columns ``metrics.EPISODE_FIELDS``)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=M.EPISODE_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rec in results["per_episode"]:
        writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in M.EPISODE_FIELDS})
    return buf.getvalue()


def write_results(results: dict[str, Any], out: str | Path) -> dict[str, str]:
    """Write results.json plus ``<stem>.csv`` and ``<stem>.md`` next to it; return the three paths."""
    from liquid_control.evaluate.report import results_markdown

    out = Path(out)
    if out.suffix != ".json":
        raise ValueError(f"--out must name a .json file, got {str(out)!r}")
    paths = {"json": out, "csv": out.with_suffix(".csv"), "md": out.with_suffix(".md")}
    _atomic_write(paths["json"], json.dumps(results, indent=1) + "\n")
    _atomic_write(paths["csv"], episodes_csv(results))
    _atomic_write(paths["md"], results_markdown(results))
    return {k: str(v) for k, v in paths.items()}


# ---- command line ----------------------------------------------------------------------------------

def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``evaluate`` and ``robustness``."""
    parser.add_argument("--env", required=True, help="env id, e.g. LiquidControl/RoverNav-v0")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--suite", help="named condition from envs/*.yaml (e.g. ood-family)")
    group.add_argument("--split", choices=["train", "val", "test"],
                       help="layout split (default: test; train only when asked)")
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="episodes per condition")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode seed stream")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an env option (repeatable), e.g. --set disturbance.obs_noise=0.1")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control evaluate``."""
    parser.add_argument("--policy", required=True, help="checkpoint directory, 'expert' or 'random'")
    add_common_arguments(parser)
    parser.add_argument("--out", required=True, help="results.json path (.csv and .md written next to it)")
    parser.add_argument("--adapt", choices=["none", "rls"], default="none",
                        help="reservoir policies: adapt the readout online by RLS towards the expert")
    parser.add_argument("--forgetting", type=float, default=None, help="RLS forgetting factor (0.995)")
    parser.add_argument("--teach-steps", type=int, default=None,
                        help="RLS: the teacher helps for the first N steps only (default: all episode)")
    parser.add_argument("--reset-every", type=int, default=0, metavar="K",
                        help="reset the policy's recurrent state every K steps (a memory probe; 0: never)")


def run(args: argparse.Namespace) -> int:
    """Run ``liquid-control evaluate``; prints a JSON summary line."""
    from liquid_control.sim.options import parse_overrides

    condition = resolve_condition(args.env, suite=args.suite, split=args.split,
                                  overrides=parse_overrides(args.overrides))
    if not str(args.out).endswith(".json"):
        raise ValueError(f"--out must name a .json file, got {args.out!r}")
    from liquid_control.learn.readout import adapt_options

    if args.reset_every < 0:
        raise ValueError(f"--reset-every must be >= 0 steps, got {args.reset_every}")
    if args.reset_every and args.adapt != "none":
        raise ValueError("--reset-every and --adapt cannot be combined")
    policy = {"reset": args.policy, "every": args.reset_every} if args.reset_every else args.policy
    results = evaluate(policy, args.env, condition, episodes=args.episodes, seed=args.seed,
                       workers=args.workers, adapt=adapt_options(args.adapt, forgetting=args.forgetting,
                                                               teach_steps=args.teach_steps))
    paths = write_results(results, args.out)
    summary = {k: v["mean"] for k, v in results["metrics"].items()}
    print(json.dumps({"out": paths, "condition": results["condition"], "episodes": results["episodes"],
                      "errors": results["errors"], "metrics": summary}))
    return 0
