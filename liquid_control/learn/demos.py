"""Demonstration datasets: run a controller (the expert by default) on a split and store its episodes.

A dataset is a directory: ``manifest.json`` (env id and options, controller, seeds, counts, format
version, action range) and ``episodes/ep-<seed>.npz`` (compressed: ``observations`` (T, F),
``actions`` (T, A) — the *target* actions, i.e. the expert's, ``executed`` (T, A) what was actually
executed (differs from ``actions`` in DAgger rollouts), ``rewards``, ``terminations``, ``truncations``
(T,), ``layout_id``, ``seed``). Each finished episode is written at once, so an interrupted
collection keeps everything it finished; re-running into the same directory skips the done seeds.
Also serves the ``collect`` command.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from liquid_control.fileio import read_json_object
from liquid_control.learn.rollout import (
    ControllerSpec,
    cached_env,
    echo_labeler,
    expert_spec,
    make_controller,
    map_jobs,
    run_episode,
    sub_specs,
)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


# ---- one episode in a worker ---------------------------------------------------------------------

_CONTROLLERS: dict[str, Any] = {}


def _spec_key(spec: ControllerSpec) -> str:
    """Cache key of a spec; includes checkpoint file times so a rewritten checkpoint is reloaded."""
    stamps = []
    for s in _leaf_specs(spec):
        p = Path(str(s)) / "policy.pt"
        if s not in ("expert", "random") and p.exists():
            stamps.append(p.stat().st_mtime_ns)
    return json.dumps(spec, sort_keys=True) + str(stamps)


def _leaf_specs(spec: ControllerSpec, keep_experts: bool = False) -> list[ControllerSpec]:
    """The leaf specs inside a possibly nested spec: names and checkpoint dirs (and, with
    ``keep_experts``, ``{"expert": options}`` specs)."""
    if not isinstance(spec, dict):
        return [spec]
    if "expert" in spec:
        return [spec] if keep_experts else []
    return [leaf for s in sub_specs(spec) for leaf in _leaf_specs(s, keep_experts)]


def check_expert_options(env_id: str, options: dict, *specs: ControllerSpec | None) -> None:
    """Fail fast (ValueError, in this process) on expert options the env's expert does not take."""
    from liquid_control.experts import make_expert

    for spec in specs:
        for leaf in ([] if spec is None else _leaf_specs(spec, keep_experts=True)):
            if isinstance(leaf, dict):
                make_expert(cached_env(env_id, options), leaf["expert"])


def _controller(spec: ControllerSpec) -> Any:
    key = _spec_key(spec)
    if key not in _CONTROLLERS:
        if len(_CONTROLLERS) > 8:
            _CONTROLLERS.clear()
        _CONTROLLERS[key] = make_controller(spec)
    return _CONTROLLERS[key]


def episode_job(seed: int, env_id: str, options: dict, spec: ControllerSpec,
                labeler: ControllerSpec | None = None) -> dict[str, Any]:
    """Run one episode (in a worker) and return it as plain arrays; ``labeler`` relabels every step."""
    env = cached_env(env_id, options)
    controller = _controller(spec)
    labels = None if labeler is None else echo_labeler(controller, spec, labeler) or _controller(labeler)
    ep = run_episode(env, controller, int(seed), labeler=labels)
    steps = len(ep.actions)
    term, trunc = np.zeros(steps, bool), np.zeros(steps, bool)
    term[-1], trunc[-1] = ep.terminated, ep.truncated
    space = env.action_space
    return {
        "seed": int(seed),
        "observations": ep.observations.astype(np.float32),
        "actions": (ep.labels if ep.labels is not None else ep.actions).astype(np.float32),
        "executed": ep.actions.astype(np.float32),
        "rewards": ep.rewards.astype(np.float32),
        "terminations": term,
        "truncations": trunc,
        "layout_id": str(ep.info.get("layout_id", "")),
        "success": bool(ep.info.get("is_success", False)),
        "info": ep.info,
        "obs_dim": int(ep.observations.shape[1]),
        "act_dim": int(ep.actions.shape[1]),
        "action_low": np.asarray(space.low, np.float64).tolist(),
        "action_high": np.asarray(space.high, np.float64).tolist(),
        "resolved_options": getattr(env.unwrapped, "options", options),
    }


# ---- writing -------------------------------------------------------------------------------------

ARRAYS = ("observations", "actions", "executed", "rewards", "terminations", "truncations")


class DatasetWriter:
    """Appends finished episodes to a dataset directory (atomic files, manifest rewritten each time)."""

    def __init__(self, out: str | os.PathLike, env_id: str, options: dict, controller: ControllerSpec,
                 labeler: ControllerSpec | None = None) -> None:
        from liquid_control.learn.checkpoint import atomic_write_json

        self._write_json = atomic_write_json
        self.out = Path(out)
        (self.out / "episodes").mkdir(parents=True, exist_ok=True)
        path = self.out / MANIFEST
        if path.exists():
            self.manifest = _read_manifest(self.out)
            if self.manifest["env_id"] != env_id or self.manifest.get("options") != options:
                raise ValueError(
                    f"{self.out} holds a dataset of {self.manifest['env_id']} with options "
                    f"{self.manifest.get('options')}; refusing to add {env_id} with options {options}")
        else:
            self.manifest = {
                "format_version": FORMAT_VERSION, "env_id": env_id, "options": options,
                "controller": controller, "labeler": labeler, "episodes": [], "failed": [],
            }
        self.manifest["complete"] = False
        self._flush()

    @property
    def done_seeds(self) -> set[int]:
        return {int(e["seed"]) for e in self.manifest["episodes"]}

    def add(self, result: dict[str, Any]) -> None:
        """Store one ``episode_job`` result, or record a failed one (an ``{"error": ...}`` record)."""
        if "error" in result:
            seed = result.get("item")
            self.manifest["failed"].append({"seed": seed, "error": str(result["error"])[-2000:]})
            print(f"collect: episode seed={seed} failed: {str(result['error']).strip().splitlines()[-1]}",
                  file=sys.stderr)
            self._flush()
            return
        m = self.manifest
        for key in ("obs_dim", "act_dim", "action_low", "action_high", "resolved_options"):
            if key not in m:
                m[key] = result[key]
            elif key in ("obs_dim", "act_dim") and m[key] != result[key]:
                raise ValueError(f"episode seed={result['seed']} has {key}={result[key]}, "
                                 f"the dataset has {m[key]}")
        name = f"episodes/ep-{result['seed']:09d}.npz"
        buf = io.BytesIO()
        np.savez_compressed(buf, layout_id=np.array(result["layout_id"]), seed=np.array(result["seed"]),
                            **{k: result[k] for k in ARRAYS})
        from liquid_control.learn.checkpoint import atomic_write_bytes

        atomic_write_bytes(self.out / name, buf.getvalue())
        m["failed"] = [f for f in m["failed"] if f.get("seed") != result["seed"]]
        m["episodes"] = [e for e in m["episodes"] if e["seed"] != result["seed"]]
        m["episodes"].append({
            "seed": result["seed"], "file": name, "steps": len(result["actions"]),
            "success": result["success"], "layout_id": result["layout_id"],
            "return": float(np.sum(result["rewards"])),
            "collision": bool(result["info"].get("collision", False)),
        })
        self._flush()

    def close(self) -> dict[str, Any]:
        """Mark the dataset complete; returns the manifest."""
        self.manifest["complete"] = True
        self._flush()
        return self.manifest

    def _flush(self) -> None:
        m = self.manifest
        m["episodes"].sort(key=lambda e: e["seed"])
        m["seeds"] = [e["seed"] for e in m["episodes"]]
        eps = m["episodes"]
        m["counts"] = {"episodes": len(eps), "steps": sum(e["steps"] for e in eps),
                       "successes": sum(bool(e["success"]) for e in eps), "failed": len(m["failed"])}
        self._write_json(self.out / MANIFEST, m)


def check_env_id(env_id: str) -> None:
    """ValueError unless ``env_id`` is registered (``module:Id`` ids import their module first)."""
    import importlib

    import gymnasium as gym

    import liquid_control  # noqa: F401  (registers the project's ids)

    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"env id {env_id!r}: cannot import module {module!r}: {exc}") from None
    if name not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; known: {sorted(k for k in gym.registry if '/' in k)}")


def collect(env_id: str, episodes: int, out: str | os.PathLike, *, split: str = "train",
            overrides: dict | None = None, seed: int = 0, workers: int | None = None,
            controller: ControllerSpec = "expert", labeler: ControllerSpec | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Collect episodes with seeds ``seed .. seed+episodes-1`` into ``out``; returns the manifest.

    Seeds already in ``out`` are skipped (resume). Failed episodes are listed in ``manifest["failed"]``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    check_env_id(env_id)
    options = {**(overrides or {}), "split": split}
    check_expert_options(env_id, options, controller, labeler)
    writer = DatasetWriter(out, env_id, options, controller, labeler)
    todo = [s for s in range(seed, seed + episodes) if s not in writer.done_seeds]
    job = partial(episode_job, env_id=env_id, options=options, spec=controller, labeler=labeler)
    if todo:
        map_jobs(job, todo, workers=workers, desc=f"collect {env_id}", progress=progress,
                 on_result=writer.add)
    return writer.close()


# ---- reading -------------------------------------------------------------------------------------

def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    m = read_json_object(path, f"{directory} is not a dataset: missing {MANIFEST}")
    if m.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported dataset format {m.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION}")
    return m


@dataclass
class Dataset:
    """A loaded dataset: its manifest and per-episode dicts of arrays."""

    manifest: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def obs_dim(self) -> int:
        return int(self.manifest["obs_dim"])

    @property
    def act_dim(self) -> int:
        return int(self.manifest["act_dim"])


def load_dataset(directory: str | os.PathLike, expect_env: str | None = None,
                 expect_obs_dim: int | None = None, expect_act_dim: int | None = None) -> Dataset:
    """Load a dataset directory; ValueError if it is not for ``expect_env`` / the expected shapes."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"dataset directory {directory} does not exist")
    m = _read_manifest(directory)
    m["dir"] = str(directory)
    if expect_env is not None and m["env_id"] != expect_env:
        raise ValueError(f"dataset {directory} was collected on {m['env_id']}, not {expect_env}")
    if not m["episodes"]:
        raise ValueError(f"dataset {directory} has no episodes")
    for key, want in (("obs_dim", expect_obs_dim), ("act_dim", expect_act_dim)):
        if want is not None and int(m[key]) != int(want):
            raise ValueError(f"dataset {directory} has {key}={m[key]}, expected {want}")
    episodes = []
    for entry in m["episodes"]:
        path = directory / entry["file"]
        try:
            with np.load(path, allow_pickle=False) as z:
                ep = {k: z[k] for k in ARRAYS}
                ep["layout_id"], ep["seed"] = str(z["layout_id"]), int(z["seed"])
        except FileNotFoundError:
            raise FileNotFoundError(f"dataset {directory}: episode file {entry['file']} is missing") from None
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"dataset {directory}: corrupt episode file {entry['file']}: {exc}") from None
        if ep["observations"].shape[1] != int(m["obs_dim"]):
            raise ValueError(f"{path}: observation width {ep['observations'].shape[1]} != {m['obs_dim']}")
        ep["success"] = bool(entry["success"])
        episodes.append(ep)
    return Dataset(manifest=m, episodes=episodes)


# ---- CLI -----------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control collect``."""
    parser.add_argument("--env", required=True, help="env id, e.g. LiquidControl/RoverNav-v0")
    parser.add_argument("--episodes", type=int, required=True, help="number of expert episodes")
    parser.add_argument("--split", default="train", help="layout split (train/val/test)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed (seeds S..S+N-1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env option override")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted collection (re-running into OUT does the same)")
    parser.add_argument("--expert-options", default=None, metavar="JSON",
                        help='expert options, e.g. \'{"clearance_weight": 2.0}\' (clearance-aware planner)')
    parser.add_argument("--noise", type=float, default=0.0, metavar="STD",
                        help="DART-style: execute the expert's action plus Gaussian noise (STD x half the "
                             "action range), record the clean expert action as the label")
    parser.add_argument("--out", required=True, help="dataset directory")


def parse_json_object(text: str | None, flag: str, keys: set[str] | None = None) -> dict | None:
    """A command-line option's JSON text -> dict (None when absent); ValueError naming ``flag`` if it is
    not a JSON object, or (given ``keys``) has a key outside them."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or (keys is not None and not set(value) <= keys):
        allowed = "" if keys is None else f" with keys from {sorted(keys)}"
        raise ValueError(f"{flag} must be a JSON object{allowed}, got {text!r}")
    return value


def parse_expert_options(text: str | None) -> dict | None:
    """``--expert-options`` JSON text -> dict (None when absent); ValueError if it is not a JSON object."""
    return parse_json_object(text, "--expert-options")


def teacher_specs(expert_options: dict | None = None, noise: float = 0.0
                  ) -> tuple[ControllerSpec, ControllerSpec | None]:
    """(controller, labeler) specs of a demonstration run: the expert (with options) acting, or with
    ``noise`` > 0 the expert's noisy actions executed and its clean actions recorded as labels."""
    expert = expert_spec(expert_options)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if noise == 0:
        return expert, None
    return {"noise": expert, "std": float(noise)}, expert


def run(args: argparse.Namespace) -> int:
    """``liquid-control collect``: print a JSON summary (counts, failures)."""
    from liquid_control.sim.options import parse_overrides

    if args.resume and not (Path(args.out) / MANIFEST).exists():
        raise FileNotFoundError(f"--resume: no dataset at {args.out}")
    controller, labeler = teacher_specs(parse_expert_options(args.expert_options), args.noise)
    m = collect(args.env, args.episodes, args.out, split=args.split, overrides=parse_overrides(args.set),
                seed=args.seed, workers=args.workers, controller=controller, labeler=labeler)
    print(json.dumps({"out": str(args.out), "env_id": m["env_id"], "options": m["options"],
                      "controller": m["controller"], "labeler": m["labeler"],
                      "counts": m["counts"],
                      "failed": [f["seed"] for f in m["failed"]]}, indent=2))
    return 0 if not m["failed"] else 1
