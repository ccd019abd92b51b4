"""`liquid-control bench envs`: env steps/s of every registered env next to same-run references.

For each env id that imports: single-process env steps/s with random actions (drawn before timing); a
raw-PyBullet loop doing the same number of physics substeps (``stepSimulation`` only) on the same world in
the same run, as the physics-only ceiling; and ``SubprocVecEnv`` throughput with 2 workers vs 1, next to
the same measurement for Gymnasium's CartPole (``ipc_reference``: an env that costs ~nothing, so its
steps/s is the pipe round trip of SB3's worker protocol, the ceiling of any 1-worker figure and the reason
a fast env cannot scale: with 2 workers on 2 cores the main process's half of every round trip is
serial). Next to each env's 2-vs-1 ratio, ``busy_reference`` is the same measurement for a stand-in env
(:class:`BusyEnv`) that only busy-waits the env's own single-process step time: what SubprocVecEnv gives
any env of that cost on this machine. ``subproc_pinned_*`` repeats the 1- and 2-worker measurement with every
worker pinned to a CPU of its own (``train ppo --pin-workers``): a sleeping worker that the scheduler wakes
on another core steps with a cold cache. ``batched_*`` is the same 1- vs 2-worker measurement for
:class:`~liquid_control.learn.vec_env.BatchedSubprocVecEnv` (``train ppo --vec-env batched``) with
``--envs-per-worker`` envs in every worker process (default 8), so one round trip carries that many env
steps (timed over 4x the steps of the other figures, as each round trip carries more of them);
``batched_pinned_*`` with the workers pinned. Writes JSON and prints a table.

The raw loop starts from the env's reset state and applies nothing, so a drone falls and then rests on
the ground (a ground contact every step, which costs more than free flight) and the rover stands still.
For the drones a second, airborne reference is reported too (``airborne_*``): the body held in the air
by one ``applyExternalForce`` of its weight per substep, the least a flying body needs, i.e. the
physics workload the env actually has; it is the stricter ceiling. The rover gets the same kind of
reference (``driving_*``): its own actuation and physics for the same random actions (wheel-motor command
plus the control period's substeps, nothing else), since a driving multibody costs more per substep
than the standing one. Envs whose range sensor casts rays in
3D (DroneNav: a ring with tilted rays, cast exactly on the layout's prisms) also get a ray reference:
the same rays from the reset pose as one raw PyBullet ``rayTestBatch`` call of precomputed lists per
scan (``raw_ray_scans_per_cpu_s``), next to the env sensor's own scans (``exact_ray_scans_per_cpu_s``)
and their ratio (``ray_cast_speedup_vs_raytestbatch``). Per-CPU-second
figures (``time.process_time``) are given next to wall-clock ones because on a loaded machine only they
and same-run ratios are meaningful.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.provenance import platform_info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="bench_envs.json", help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="few steps (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per measurement")
    parser.add_argument("--env", action="append", default=None, help="only these env ids (repeatable)")
    parser.add_argument("--no-vec", action="store_true", help="skip the SubprocVecEnv measurement")
    parser.add_argument("--envs-per-worker", type=int, default=8,
                        help="envs in each BatchedSubprocVecEnv worker (the batched_* figures)")


def _substeps(env: Any) -> int:
    u = env.unwrapped
    for obj in (u, getattr(u, "rig", None)):
        if obj is not None and getattr(obj, "substeps", None):
            return int(obj.substeps)
    raise ValueError(f"{type(u).__name__} exposes no 'substeps'")


def env_steps_per_s(env_id: str, steps: int, seed: int = 0) -> dict[str, Any]:
    """Random-action steps/s of one env, and raw stepSimulation/s on the same PyBullet world."""
    import pybullet as p

    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(20):  # warm-up
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    episodes = 0
    # actions drawn before timing (as in the SubprocVecEnv measurement): Box.sample costs ~20 us, which
    # is the sampler's time, not the env's
    actions = [env.action_space.sample() for _ in range(steps)]
    t0, c0 = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset()
            episodes += 1
    env_time, env_cpu = time.perf_counter() - t0, time.process_time() - c0
    sub = _substeps(env)
    client = env.unwrapped.world.client
    env.reset(seed=seed)
    n_phys = steps * sub
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_phys):
        p.stepSimulation(physicsClientId=client)
    raw_time, raw_cpu = time.perf_counter() - t0, time.process_time() - c0
    airborne_cpu = _airborne_raw_cpu(env, seed, n_phys)
    driving_cpu = _driving_raw_cpu(env, seed, actions)
    rays_cpu = _raw_rays_cpu(env, seed, steps)
    env.close()
    sps = steps / env_time
    raw = n_phys / raw_time
    env_per_cpu = steps / max(env_cpu, 1e-9)
    raw_per_cpu = n_phys / max(raw_cpu, 1e-9) / sub
    # per CPU second too: on a shared machine wall-clock figures depend on the other load
    out = {"env_steps_per_s": sps, "episodes": episodes, "substeps": sub,
           "raw_physics_steps_per_s": raw, "raw_env_equivalent_steps_per_s": raw / sub,
           "fraction_of_raw_limit": sps * sub / raw,
           "env_steps_per_cpu_s": env_per_cpu,
           "raw_env_equivalent_steps_per_cpu_s": raw_per_cpu,
           "fraction_of_raw_limit_per_cpu": env_per_cpu / raw_per_cpu}
    if airborne_cpu is not None:
        air_per_cpu = n_phys / max(airborne_cpu, 1e-9) / sub
        out.update({"airborne_raw_env_equivalent_steps_per_cpu_s": air_per_cpu,
                    "fraction_of_airborne_raw_per_cpu": env_per_cpu / air_per_cpu})
    if driving_cpu is not None:
        drive_per_cpu = steps / max(driving_cpu, 1e-9)
        out.update({"driving_raw_env_equivalent_steps_per_cpu_s": drive_per_cpu,
                    "fraction_of_driving_raw_per_cpu": env_per_cpu / drive_per_cpu})
    if rays_cpu is not None:
        raw_cpu_s, exact_cpu_s = rays_cpu
        out.update({"raw_ray_scans_per_cpu_s": steps / max(raw_cpu_s, 1e-9),
                    "exact_ray_scans_per_cpu_s": steps / max(exact_cpu_s, 1e-9),
                    "ray_cast_speedup_vs_raytestbatch": raw_cpu_s / max(exact_cpu_s, 1e-9)})
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def _airborne_raw_cpu(env: Any, seed: int, n_phys: int) -> float | None:
    """CPU seconds of ``n_phys`` substeps of a flying body held up by its weight (drones only), else None."""
    import pybullet as p

    rig = getattr(env.unwrapped, "rig", None)
    if rig is None:
        return None
    env.reset(seed=seed)
    c, body = env.unwrapped.world.client, rig.quad.body
    p.resetBaseVelocity(body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), physicsClientId=c)
    lift = (0.0, 0.0, p.getDynamicsInfo(body, -1, physicsClientId=c)[0] * 9.81)
    origin, frame, force, step = (0.0, 0.0, 0.0), p.WORLD_FRAME, p.applyExternalForce, p.stepSimulation
    c0 = time.process_time()
    for _ in range(n_phys):
        force(body, -1, lift, origin, frame, c)
        step(c)
    return time.process_time() - c0


def _driving_raw_cpu(env: Any, seed: int, actions: list) -> float | None:
    """CPU seconds of the env's own actuation and physics for ``actions`` (the rover only, else None):
    per action one wheel-motor command and the control period's ``stepSimulation`` calls, nothing else
    (no sensing, observation, reward or bookkeeping). A driving multibody costs more per substep than the
    standing one of the raw loop, so this is the physics workload the env really has: its ceiling."""
    u = env.unwrapped
    if getattr(u, "KIND", None) != "rover":
        return None
    env.reset(seed=seed)
    c0 = time.process_time()
    for action in actions:
        u._apply(np.asarray(action, dtype=np.float64))
    return time.process_time() - c0


def _raw_rays_cpu(env: Any, seed: int, scans: int) -> tuple[float, float] | None:
    """CPU seconds of ``scans`` raw ``rayTestBatch`` calls of the env's 3D range-sensor rays from the reset
    pose (precomputed from/to lists) and of as many scans by the env's own sensor, or None when its sensor
    casts in the plane (the rover)."""
    import pybullet as p

    from liquid_control.sim.sensors import ExactRangeSensor

    env.reset(seed=seed)  # the reset observation cast the rays once: their from/to points are the sensor's
    sensor = getattr(env.unwrapped, "sensor", None)
    if not isinstance(sensor, ExactRangeSensor):
        return None
    c = env.unwrapped.world.client
    frm, to = np.asarray(sensor.last_from).tolist(), sensor.last_to.tolist()
    u = env.unwrapped
    cy, sy = np.cos(u.yaw), np.sin(u.yaw)
    position, heading = np.asarray(u.position), np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ray = p.rayTestBatch
    c0 = time.process_time()
    for _ in range(scans):
        ray(frm, to, physicsClientId=c)
    c1 = time.process_time()
    for _ in range(scans):
        sensor.scan(position, heading)
    return c1 - c0, time.process_time() - c1


IPC_REFERENCE = "CartPole-v1"  # a Gymnasium env whose step costs ~nothing next to a pipe round trip


class BusyEnv(gym.Env):
    """A stand-in env whose step busy-waits ``step_us`` microseconds (CPU work, like a simulator) and
    returns observations and actions of the given sizes: the SubprocVecEnv reference of an env of the
    same per-step cost (``busy_reference``), which separates what the worker protocol on this machine
    allows from what an env itself does."""

    def __init__(self, step_us: float, obs_dim: int, act_dim: int) -> None:
        self.step_s = float(step_us) * 1e-6
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
        self._obs = np.zeros(obs_dim, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._obs.copy(), {}

    def step(self, action):
        end = time.perf_counter() + self.step_s
        while time.perf_counter() < end:
            pass
        return self._obs.copy(), 0.0, False, False, {}


def _make(env_id: str, busy: tuple[float, int, int] | None = None):
    def thunk():
        if busy is not None:
            return BusyEnv(*busy)
        import liquid_control  # noqa: F401  (registers ids in the worker)

        return gym.make(env_id)
    return thunk


def vec_steps_per_s(env_id: str, n_envs: int, steps: int, seed: int = 0,
                    busy: tuple[float, int, int] | None = None, pin: bool = False,
                    envs_per_worker: int = 0) -> float:
    """Total env steps/s of a SubprocVecEnv with ``n_envs`` workers (random actions); with ``busy``
    (step_us, obs_dim, act_dim) of a :class:`BusyEnv` instead of ``env_id``; with ``pin`` each worker on
    a CPU of its own (``learn.ppo.pin_workers``, as ``train ppo --pin-workers``). With
    ``envs_per_worker`` k > 0 a BatchedSubprocVecEnv of ``n_envs`` workers holding k envs each instead."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from liquid_control.learn.ppo import pin_workers
    from liquid_control.learn.vec_env import BatchedSubprocVecEnv

    if envs_per_worker > 0:
        workers = n_envs
        n_envs = workers * envs_per_worker
        vec = BatchedSubprocVecEnv([_make(env_id, busy) for _ in range(n_envs)], n_workers=workers)
    else:
        vec = SubprocVecEnv([_make(env_id, busy) for _ in range(n_envs)])
    try:
        if pin:
            pin_workers(vec)
        vec.seed(seed)
        vec.reset()
        space = vec.action_space
        space.seed(seed)
        acts = np.array([[space.sample() for _ in range(n_envs)] for _ in range(steps // n_envs + 10)])
        for a in acts[:10]:
            vec.step(a)
        t0 = time.perf_counter()
        for a in acts[10:]:
            vec.step(a)
        return (len(acts) - 10) * n_envs / (time.perf_counter() - t0)
    finally:
        vec.close()


def run(args: argparse.Namespace) -> int:
    import liquid_control  # noqa: F401
    from liquid_control.sim.registration import ENV_IDS

    steps = args.steps or (300 if args.quick else 3000)
    if steps < 10:
        raise ValueError(f"--steps must be >= 10, got {steps}")
    k = args.envs_per_worker
    if k < 1:
        raise ValueError(f"--envs-per-worker must be >= 1, got {k}")
    ids = args.env or list(ENV_IDS)
    unknown = [i for i in ids if i not in ENV_IDS]
    if unknown:
        raise ValueError(f"unknown env ids {unknown}; known: {list(ENV_IDS)}")
    out: dict[str, Any] = {"benchmark": "envs", "steps": steps, "cpu_count": os.cpu_count(),
                           "python": platform.python_version(), "platform": platform_info(), "envs": {}}
    try:
        out["pybullet"] = importlib.metadata.version("pybullet")
    except importlib.metadata.PackageNotFoundError as exc:  # pragma: no cover
        raise ValueError(f"pybullet is required: {exc}") from None
    if not args.no_vec:  # the pipe round trip itself: a near-free env (CartPole) behind one worker
        floor = vec_steps_per_s(IPC_REFERENCE, 1, steps)
        out["ipc_reference"] = {"env": IPC_REFERENCE, "subproc_1_steps_per_s": floor,
                                "round_trip_us": 1e6 / floor}
    for env_id in ids:
        try:
            gym.make(env_id).close()
        except (ImportError, AttributeError, gym.error.Error) as exc:
            out["envs"][env_id] = {"skipped": f"{type(exc).__name__}: {exc}"}
            continue
        res = env_steps_per_s(env_id, steps)
        if not args.no_vec:
            one = vec_steps_per_s(env_id, 1, steps)
            two = vec_steps_per_s(env_id, 2, steps)
            res.update({"subproc_1_steps_per_s": one, "subproc_2_steps_per_s": two,
                        "subproc_speedup_2v1": two / one})
            if hasattr(os, "sched_setaffinity"):  # the same with each worker pinned to a CPU of its own
                one, two = (vec_steps_per_s(env_id, n, steps, pin=True) for n in (1, 2))
                res.update({"subproc_pinned_1_steps_per_s": one, "subproc_pinned_2_steps_per_s": two,
                            "subproc_pinned_speedup_2v1": two / one})
            for tag, pin in (("batched", False), ("batched_pinned", True)):  # k envs per worker process
                if pin and not hasattr(os, "sched_setaffinity"):
                    continue
                one, two = (vec_steps_per_s(env_id, n, 4 * steps, pin=pin, envs_per_worker=k) for n in (1, 2))
                res.update({f"{tag}_1_steps_per_s": one, f"{tag}_2_steps_per_s": two,
                            f"{tag}_speedup_2v1": two / one, "envs_per_worker": k})
            # the same protocol around a stand-in that only burns the env's own single-process step time
            space = gym.make(env_id)
            busy = (1e6 / res["env_steps_per_s"], int(np.prod(space.observation_space.shape)),
                    int(np.prod(space.action_space.shape)))
            space.close()
            b1, b2 = (vec_steps_per_s(env_id, n, steps, busy=busy) for n in (1, 2))
            res["busy_reference"] = {"step_us": busy[0], "subproc_1_steps_per_s": b1,
                                     "subproc_2_steps_per_s": b2, "subproc_speedup_2v1": b2 / b1}
        out["envs"][env_id] = res
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"{'env':32s} {'steps/s':>9s} {'/cpu-s':>8s} {'raw-phys eq.':>12s} {'of raw':>7s} "
          f"{'/cpu':>5s} {'air|drv':>7s} {'cast x':>6s} {'vec1':>8s} {'vec2':>8s} {'2v1':>5s} {'busy':>6s} "
          f"{'pinned':>6s} {'batch1':>8s} {'batch2':>8s} {'b2v1':>5s} {'b-pin':>5s}")
    for env_id, r in out["envs"].items():
        if "skipped" in r:
            print(f"{env_id:32s} skipped ({r['skipped'][:60]})")
            continue
        vec = ""
        if "subproc_1_steps_per_s" in r:
            vec = (f"{r['subproc_1_steps_per_s']:8.0f} {r['subproc_2_steps_per_s']:8.0f} "
                   f"{r['subproc_speedup_2v1']:5.2f} {r['busy_reference']['subproc_speedup_2v1']:6.2f} "
                   f"{r.get('subproc_pinned_speedup_2v1', float('nan')):6.2f} "
                   f"{r['batched_1_steps_per_s']:8.0f} {r['batched_2_steps_per_s']:8.0f} "
                   f"{r['batched_speedup_2v1']:5.2f} "
                   f"{r.get('batched_pinned_speedup_2v1', float('nan')):5.2f}")
        air = r.get("fraction_of_airborne_raw_per_cpu", r.get("fraction_of_driving_raw_per_cpu"))
        rays = r.get("ray_cast_speedup_vs_raytestbatch")
        print(f"{env_id:32s} {r['env_steps_per_s']:9.0f} {r['env_steps_per_cpu_s']:8.0f} "
              f"{r['raw_env_equivalent_steps_per_s']:12.0f} "
              f"{r['fraction_of_raw_limit']:7.2f} {r['fraction_of_raw_limit_per_cpu']:5.2f} "
              f"{'-' if air is None else format(air, '.2f'):>7s} "
              f"{'-' if rays is None else format(rays, '.1f'):>6s} {vec}")
    if "ipc_reference" in out:
        ipc = out["ipc_reference"]
        print(f"SubprocVecEnv round trip of {ipc['env']} (a near-free env): {ipc['round_trip_us']:.0f} us "
              f"per step ({ipc['subproc_1_steps_per_s']:.0f} steps/s): the floor of every vec figure; "
              "busy = 2v1 of a stand-in env that only burns the env's own step time; pinned = 2v1 with every "
              "worker on a CPU of its own (train ppo --pin-workers); batch1/batch2/b2v1 = "
              f"BatchedSubprocVecEnv with {k} envs per worker (train ppo --vec-env batched), b-pin = its 2v1 "
              "pinned; air|drv = of the "
              "airborne (drones) or driving (rover) physics-only reference, per CPU second")
    print(f"wrote {args.out}")
    return 0
