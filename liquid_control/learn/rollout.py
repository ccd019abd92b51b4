"""Closed-loop episodes and the executor that runs many of them (shared by collect, DAgger, evaluate).

A *controller spec* names who acts, so it can cross a process boundary: ``"expert"``, ``"random"``,
a checkpoint directory, ``{"expert": {option: value}}`` (the expert built with options, e.g.
``{"expert": {"clearance_weight": 2.0}}``; :func:`expert_spec`), ``{"mix": [spec_a, spec_b], "beta": b}``
(each step acts with ``spec_a``'s action with probability ``b``, else ``spec_b``'s: the DAgger β-mixture),
or ``{"noise": spec, "std": s}`` (``spec``'s action plus Gaussian noise of ``s`` × the half-range of the
action space, clipped to it: DART-style perturbed demonstrations, labelled by the clean expert),
or ``{"reset": spec, "every": k}`` (``spec`` with its state reset every ``k`` steps: how much a recurrent
policy relies on memory older than ``k`` steps; ``k`` = 1 makes it memoryless).
Episodes are pure functions of (env id, options, controller spec, seed), so results do not depend on the
number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

ControllerSpec = str | dict


class Controller(Protocol):
    """Anything that acts in an env episode: learned policies, experts, random (docs/internals.md)."""

    def reset(self, env: gym.Env, obs: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def neuron_state(self) -> np.ndarray | None: ...


class RandomController:
    """Uniform random actions, seeded per episode from the env's reset seed."""

    def __init__(self) -> None:
        self._space: gym.Space | None = None

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        self._space = env.action_space
        self._space.seed(int(env.unwrapped.np_random.integers(2**31)))

    def act(self, obs: np.ndarray) -> np.ndarray:
        assert self._space is not None, "reset() first"
        return np.asarray(self._space.sample(), dtype=np.float32)

    def neuron_state(self) -> np.ndarray | None:
        return None


class MixController:
    """DAgger β-mixture: each step takes ``first``'s action with probability ``beta``, else ``second``'s.

    Both controllers see every observation (so recurrent learners keep their state in step).
    """

    def __init__(self, first: Controller, second: Controller, beta: float) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.first, self.second, self.beta = first, second, beta
        self._rng = np.random.default_rng(0)

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        self.first.reset(env, obs)
        self.second.reset(env, obs)
        self._rng = np.random.default_rng(int(env.unwrapped.np_random.integers(2**31)))

    def act(self, obs: np.ndarray) -> np.ndarray:
        a, b = self.first.act(obs), self.second.act(obs)
        self.first_action = a  # read by a labeler that is ``first`` (echo_labeler)
        return a if self._rng.random() < self.beta else b

    def neuron_state(self) -> np.ndarray | None:
        return self.second.neuron_state()


GATE_PARAMS = {"clearance", "horizon", "hold", "patience", "progress"}


class GateController:
    """Learner drives; the teacher takes over where the learner is about to fail.

    The gate reads the navigation env's privileged state. It opens for ``hold`` steps when the body's
    clearance to the obstacles and to the arena's bounds, now or ``horizon`` seconds ahead at the
    current velocity, falls below ``clearance`` (m). With ``patience`` > 0 it also opens when the
    geodesic distance to the goal has not come ``progress`` m below its best for ``patience`` seconds
    (lost or stuck); the teacher then drives until it has (at least ``hold`` steps, at most
    2 x ``patience`` seconds), turning the learner around. Both controllers see every observation, so a
    recurrent learner keeps its state in step and the teacher its plan. DAgger rounds roll it out: the
    episode goes on past the learner's mistakes, and every state is labelled by the teacher.
    """

    def __init__(self, teacher: Controller, learner: Controller, clearance: float = 0.1,
                 horizon: float = 0.5, hold: int = 10, patience: float = 0.0, progress: float = 0.5) -> None:
        if not clearance >= 0.0 or not horizon >= 0.0 or not patience >= 0.0 or not progress > 0.0:
            raise ValueError(f"gate: clearance, horizon, patience must be >= 0 and progress > 0, got "
                             f"{clearance}, {horizon}, {patience}, {progress}")
        if int(hold) < 1:
            raise ValueError(f"gate: hold must be >= 1 step, got {hold}")
        self.teacher, self.learner = teacher, learner
        self.clearance, self.horizon, self.hold = float(clearance), float(horizon), int(hold)
        self.patience, self.progress = float(patience), float(progress)
        self.env: Any = None
        self.takeovers = 0
        self.teacher_steps = 0

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        u = env.unwrapped
        for name in ("scene", "layout", "position", "BODY_RADIUS", "dt"):
            if not hasattr(u, name):
                raise ValueError(f"gate: {type(u).__name__} is not a navigation env (no {name!r})")
        self.env = u
        self.teacher.reset(env, obs)
        self.learner.reset(env, obs)
        self._mode: str | None = None  # None: the learner drives; "near" / "lost": the teacher does
        self._taken = 0  # steps of the current takeover so far
        self._until = 0.0  # "lost": the geodesic distance that ends it
        self._prev = np.asarray(u.position[:2], float).copy()
        self._best = u.layout.geodesic_to_goal(self._prev)
        self._since = 0.0
        self.takeovers = self.teacher_steps = 0

    def _clearance(self, xy: np.ndarray) -> float:
        """Clearance (m) of the body now and ``horizon`` seconds ahead: obstacles and arena bounds."""
        u = self.env
        ahead = xy + self.horizon * (xy - self._prev) / u.dt
        pts = np.stack([xy, ahead])
        xmin, ymin, xmax, ymax = u.layout.bounds
        edge = np.min([pts[:, 0] - xmin, xmax - pts[:, 0], pts[:, 1] - ymin, ymax - pts[:, 1]])
        return min(float(np.min(u.scene.clearance_many(pts))), float(edge)) - u.BODY_RADIUS

    def act(self, obs: np.ndarray) -> np.ndarray:
        a, b = self.teacher.act(obs), self.learner.act(obs)
        self.teacher_action = a  # read by a labeler that is the teacher (echo_labeler)
        u = self.env
        xy = np.asarray(u.position[:2], float)
        clear = self._clearance(xy)
        self._prev = xy.copy()
        geo = u.layout.geodesic_to_goal(xy)
        if geo < self._best - self.progress:
            self._best, self._since = geo, 0.0
        else:
            self._since += u.dt
        if self._mode == "near" and self._taken >= self.hold:
            self._mode = None
        elif self._mode == "lost" and self._taken >= self.hold and (
                geo <= self._until or self._taken * u.dt >= 2.0 * self.patience):
            self._mode, self._since = None, 0.0  # back on track (or out of time)
        if self._mode is None:
            if self.patience > 0.0 and self._since >= self.patience:
                self._mode, self._until = "lost", self._best - self.progress
            elif clear < self.clearance:
                self._mode = "near"
            if self._mode is not None:
                self._taken = 0
                self.takeovers += 1
        if self._mode is None:
            return b
        self._taken += 1
        self.teacher_steps += 1
        return a

    def neuron_state(self) -> np.ndarray | None:
        return self.learner.neuron_state()


class NoiseController:
    """Acts with ``inner``'s action plus Gaussian noise (``std`` × half the action range), clipped to the
    action space; the noise is seeded per episode from the env's reset seed."""

    def __init__(self, inner: Controller, std: float) -> None:
        if not 0.0 <= std:
            raise ValueError(f"noise std must be >= 0, got {std}")
        self.inner, self.std = inner, float(std)
        self._rng = np.random.default_rng(0)
        self._low = self._high = np.zeros(0)

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        self.inner.reset(env, obs)
        self._low = np.asarray(env.action_space.low, np.float64)
        self._high = np.asarray(env.action_space.high, np.float64)
        self._rng = np.random.default_rng(int(env.unwrapped.np_random.integers(2**31)))

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.clean_action = self.inner.act(obs)  # read by a labeler that is ``inner`` (echo_labeler)
        a = np.asarray(self.clean_action, np.float64)
        half = 0.5 * (self._high - self._low)
        noisy = a + self.std * half * self._rng.standard_normal(a.shape)
        return np.clip(noisy, self._low, self._high).astype(np.float32)

    def neuron_state(self) -> np.ndarray | None:
        return self.inner.neuron_state()


class ResetController:
    """Acts with ``inner``, resetting its state every ``every`` steps (with the current observation)."""

    def __init__(self, inner: Controller, every: int) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"reset every must be an int >= 1 (steps), got {every!r}")
        self.inner, self.every = inner, every
        self._env: gym.Env | None = None
        self._steps = 0

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        self.inner.reset(env, obs)
        self._env, self._steps = env, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._steps and self._steps % self.every == 0:
            self.inner.reset(self._env, obs)
        self._steps += 1
        return self.inner.act(obs)

    def neuron_state(self) -> np.ndarray | None:
        return self.inner.neuron_state()


def sub_specs(spec: ControllerSpec) -> list[ControllerSpec]:
    """The controller specs a composite spec (mix, gate, noise, reset) is built from; none for a leaf."""
    if not isinstance(spec, dict):
        return []
    return (list(spec.get("mix", [])) + list(spec.get("gate", []))
            + [spec[k] for k in ("noise", "reset") if k in spec])


def expert_spec(options: dict | None = None) -> ControllerSpec:
    """The spec of the expert with ``options`` (keyword arguments of its class): plain ``"expert"`` when
    there are none, so default datasets and checkpoints record exactly what they always did."""
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"expert options must be a dict, got {options!r}")
    return {"expert": dict(options)} if options else "expert"


def is_expert_spec(spec: ControllerSpec) -> bool:
    """True for ``"expert"`` and ``{"expert": options}`` (experts have no randomness of their own)."""
    return spec == "expert" or (isinstance(spec, dict) and set(spec) == {"expert"})


def make_controller(spec: ControllerSpec) -> Controller:
    """Build a controller from its spec (see module docstring)."""
    if isinstance(spec, dict):
        if set(spec) == {"expert"} and isinstance(spec["expert"], dict):
            return _ExpertController(spec["expert"])
        if set(spec) == {"noise", "std"}:
            return NoiseController(make_controller(spec["noise"]), spec["std"])
        if set(spec) == {"reset", "every"}:
            return ResetController(make_controller(spec["reset"]), spec["every"])
        if "gate" in spec:
            params = {k: v for k, v in spec.items() if k != "gate"}
            if len(spec["gate"]) != 2 or not set(params) <= GATE_PARAMS:
                raise ValueError(f"bad controller spec {spec!r}: expected {{'gate': [teacher, learner], "
                                 f"option: value}} with options from {sorted(GATE_PARAMS)}")
            teacher, learner = (make_controller(s) for s in spec["gate"])
            return GateController(teacher, learner, **params)
        if set(spec) != {"mix", "beta"} or len(spec["mix"]) != 2:
            raise ValueError(f"bad controller spec {spec!r}: expected {{'mix': [a, b], 'beta': b}}, "
                             "{'expert': {option: value}}, {'noise': spec, 'std': s} or "
                             "{'reset': spec, 'every': k}")
        return MixController(make_controller(spec["mix"][0]), make_controller(spec["mix"][1]), spec["beta"])
    if spec == "expert":
        return _ExpertController()
    if spec == "random":
        return RandomController()
    from liquid_control.learn.checkpoint import load_controller  # torch only where a checkpoint is used

    return load_controller(spec)


class _Echo:
    """A labeler that returns an action the acting controller already computed on this step's observation
    (run_episode asks the controller first), instead of running a second copy of the same expert."""

    def __init__(self, read: Callable[[], np.ndarray]) -> None:
        self._read = read

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self._read()

    def neuron_state(self) -> np.ndarray | None:
        return None


def echo_labeler(controller: Controller, spec: ControllerSpec, labeler: ControllerSpec) -> Controller | None:
    """``labeler`` as an echo of ``controller``'s own work when ``controller`` (built from ``spec``) already
    runs that very expert spec every step: a gate's teacher, a mixture's first controller, a noisy
    controller's clean one. Experts are deterministic functions of the episode, so the labels equal a
    second copy's at half the expert's cost. None when that does not apply."""
    if not is_expert_spec(labeler):  # checkpoints and random are not echoed
        return None
    if isinstance(controller, GateController):
        inner, attr = spec["gate"][0], "teacher_action"
    elif isinstance(controller, MixController):
        inner, attr = spec["mix"][0], "first_action"
    elif isinstance(controller, NoiseController):
        inner, attr = spec["noise"], "clean_action"
    else:
        return None
    return _Echo(lambda: getattr(controller, attr)) if inner == labeler else None


class _ExpertController:
    """Defers the choice of expert to the env seen at reset (an expert is env-specific)."""

    def __init__(self, options: dict | None = None) -> None:
        self._options = dict(options or {})
        self._expert: Any = None
        self._for: type | None = None

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        from liquid_control.experts import make_expert

        if self._for is not type(env.unwrapped):
            self._expert, self._for = make_expert(env, self._options), type(env.unwrapped)
        self._expert.reset(env, obs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self._expert.act(obs)

    def neuron_state(self) -> np.ndarray | None:
        return None


@dataclass
class Episode:
    """One closed-loop episode: arrays over its T steps and the final info."""

    seed: int
    observations: np.ndarray  # (T, obs_dim) observations the controller acted on
    actions: np.ndarray  # (T, act_dim) actions executed
    rewards: np.ndarray  # (T,)
    terminated: bool
    truncated: bool
    info: dict  # the last step's info (metrics live here, see docs/internals.md)
    labels: np.ndarray | None = None  # (T, act_dim) a labeler's actions on the same states (DAgger)
    neuron_states: np.ndarray | None = None  # (T, state_size) if recorded
    positions: np.ndarray | None = None  # (T+1, 3) body positions, if the env exposes them
    layout: Any = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


def run_episode(
    env: gym.Env,
    controller: Controller,
    seed: int,
    *,
    labeler: Controller | None = None,
    record_neurons: bool = False,
    max_steps: int | None = None,
    on_step: Callable[[gym.Env, np.ndarray, np.ndarray, dict], None] | None = None,
) -> Episode:
    """Run one episode of ``controller`` in ``env`` from ``reset(seed=seed)``.

    ``labeler`` (e.g. the expert) is asked for its action on every visited state without acting.
    ``on_step(env, obs, action, info)`` is called after every step (rendering hooks in here).
    """
    obs, info = env.reset(seed=seed)
    controller.reset(env, obs)
    if labeler is not None:
        labeler.reset(env, obs)
    obs_l, act_l, rew_l, lab_l, neu_l = [], [], [], [], []
    pos_l = [_position(env)]
    terminated = truncated = False
    steps = 0
    while not (terminated or truncated):
        action = np.asarray(controller.act(obs), dtype=np.float32)
        if labeler is not None:
            lab_l.append(np.asarray(labeler.act(obs), dtype=np.float32))
        if record_neurons:
            ns = controller.neuron_state()
            neu_l.append(np.zeros(0, np.float32) if ns is None else np.asarray(ns, np.float32).ravel())
        obs_l.append(np.asarray(obs, dtype=np.float32))
        act_l.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        rew_l.append(float(reward))
        pos_l.append(_position(env))
        if on_step is not None:
            on_step(env, obs, action, info)
        steps += 1
        if max_steps is not None and steps >= max_steps:
            truncated = True
    return Episode(
        seed=seed,
        observations=np.stack(obs_l),
        actions=np.stack(act_l),
        rewards=np.asarray(rew_l, dtype=np.float32),
        terminated=bool(terminated),
        truncated=bool(truncated),
        info=_plain(info),
        labels=np.stack(lab_l) if labeler is not None else None,
        neuron_states=np.stack(neu_l) if record_neurons else None,
        positions=None if pos_l[0] is None else np.stack(pos_l),
        layout=getattr(env.unwrapped, "layout", None),
    )


def _position(env: gym.Env) -> np.ndarray | None:
    pos = getattr(env.unwrapped, "position", None)
    return None if pos is None else np.asarray(pos, dtype=np.float64).copy()


def _plain(info: dict) -> dict:
    """Info as JSON-friendly Python values."""
    out = {}
    for k, v in info.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


# ---- executor -------------------------------------------------------------------------------------

_ENV_CACHE: dict[str, gym.Env] = {}


def cached_env(env_id: str, options: dict) -> gym.Env:
    """One env per (id, options) per process: PyBullet worlds are reused across episodes."""
    key = env_id + json.dumps(options, sort_keys=True)
    if key not in _ENV_CACHE:
        import liquid_control  # noqa: F401  (registers ids in fresh worker processes)

        _ENV_CACHE[key] = gym.make(env_id, **options)
    return _ENV_CACHE[key]


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but sim-only workers need not load it
        pass


def _guarded(job: Callable[[Any], Any], item: Any) -> Any:
    """Run ``job(item)``; retry once; then return an error record instead of raising."""
    for attempt in (1, 2):
        try:
            return job(item)
        except Exception:  # noqa: BLE001 - a worker episode must not take the whole run down
            if attempt == 2:
                return {"error": traceback.format_exc(limit=5), "item": item}
    raise AssertionError("unreachable")


def default_workers() -> int:
    """All cores by default."""
    return max(1, os.cpu_count() or 1)


def map_jobs(
    job: Callable[[Any], Any],
    items: Sequence[Any] | Iterable[Any],
    workers: int | None = None,
    desc: str = "episodes",
    progress: bool = True,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Run ``job(item)`` for every item in worker processes (in order of ``items``), with a progress bar.

    ``job`` must be picklable (a module-level function or a ``functools.partial`` of one). A failing
    item is retried once, then returned as ``{"error": ..., "item": ...}``. ``on_result`` sees each
    result as it completes (e.g. to save finished work at once, so an interruption loses nothing).
    This is the one executor interface of the project: a distributed engine can take its place.
    """
    items = list(items)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[Any] = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    if workers == 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = _guarded(job, item)
            if on_result is not None:
                on_result(results[i])
            bar.update()
    else:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx,
                                 initializer=_worker_init) as pool:
            futures = {pool.submit(_guarded, job, item): i for i, item in enumerate(items)}
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker process
                    results[i] = {"error": f"worker crashed: {exc!r}", "item": items[i]}
                if on_result is not None:
                    on_result(results[i])
                bar.update()
    bar.close()
    return results
