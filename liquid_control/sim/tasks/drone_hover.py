"""``LiquidControl/DroneHover-v0``: reach and hold a hover point from a random initial state.

Each episode draws (from its layout seed, so splits never share an episode) a target point and an initial
pose, velocity and body rate around it.  The drone must get within ``task.tolerance`` (0.1 m) of the
target and stay there: ``info["hold_time"]`` is the time (s) it has been inside continuously, and
``info["is_success"]`` is true while ``hold_time >= task.hold_s`` (2 s), so at the end of an episode it
says "held within 0.1 m for the last 2 s".  The episode is truncated at ``task.episode_s`` and
terminated early on a crash (ground contact, flipped over) or when the drone gets ``task.max_distance``
away from the target.

Observation (float32, 16): target vector in the body frame (3, m, clipped to +-5), body-frame velocity
/ 2 m/s (3), gravity direction in the body frame (3), body rates / 5 rad/s (3), previous action (4);
velocity and rates are clipped to +-3.

Reward per step: ``1 - d / max_distance + exp(-d / 0.3 m) + 0.5 [d < tolerance] + 10 (d_prev - d)``
(d = distance to the target) minus small speed, effort and action-change penalties; -20 on a crash, -10
when too far away: staying alive always pays, the precision term makes the last decimetres worth flying,
and the (potential-based) progress term credits every step that closes in.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from liquid_control.sim.camera import chase_camera
from liquid_control.sim.layouts import SPLITS, layout_seed_for
from liquid_control.sim.options import Opt, resolve
from liquid_control.sim.tasks.drone_common import DRONE_SCHEMA, NO_GROUND_CONTACT_Z, PHYSICS_HZ, DroneRig
from liquid_control.sim.world import World

FAMILY = "hover"
VEL_SCALE = 2.0  # m/s per unit of the velocity features (as in DroneNav)
RATE_SCALE = 5.0  # rad/s per unit of the body-rate features
PRECISION_M = 0.3  # length scale (m) of the reward's precision term exp(-distance / PRECISION_M)
PROGRESS_GAIN = 10.0  # reward per metre of distance closed in a step (potential-based shaping)

SCHEMA: dict[str, Opt] = {
    "split": Opt("train", "str", choices=tuple(SPLITS), help="seed range of the initial conditions"),
    "control_hz": Opt(30.0, "float", 1.0, float(PHYSICS_HZ), help="control rate (Hz), physics 240 Hz"),
    **DRONE_SCHEMA,
    "disturbance.obs_noise": Opt(0.0, "float", low=0.0, high=1.0, help="observation noise std (obs units)"),
    "disturbance.act_noise": Opt(0.0, "float", low=0.0, high=2.0, help="actuator noise std (action units)"),
    "disturbance.latency_steps": Opt(0, "int", low=0, high=50, help="control delay (steps)"),
    "task.episode_s": Opt(8.0, "float", low=1.0, high=120.0, help="episode length (s)"),
    "task.tolerance": Opt(0.1, "float", low=0.01, high=1.0, help="hold radius (m)"),
    "task.hold_s": Opt(2.0, "float", low=0.0, high=60.0, help="hold time for success (s)"),
    "task.init_offset": Opt(1.0, "float", low=0.0, high=3.0, help="max initial distance per axis (m)"),
    "task.init_tilt": Opt(0.3, "float", low=0.0, high=1.0, help="max initial roll/pitch (rad)"),
    "task.init_speed": Opt(0.5, "float", low=0.0, high=3.0, help="max initial speed per axis (m/s)"),
    "task.max_distance": Opt(4.0, "float", low=0.5, high=20.0, help="terminate when this far away (m)"),
}


class DroneHoverEnv(gym.Env):
    """Reach and hold a point with a Crazyflie-class quadrotor (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = self.metadata["render_modes"]
            raise ValueError(f"render_mode must be one of {modes}, got {render_mode!r}")
        self.options = resolve(SCHEMA, options)
        self.render_mode = render_mode
        substeps = max(1, int(round(PHYSICS_HZ / self.options["control_hz"])))
        self.metadata = {**self.metadata, "render_fps": int(round(PHYSICS_HZ / substeps))}
        self.world = World(gui=render_mode == "human", timestep=1.0 / PHYSICS_HZ)
        self.world.reset(None)
        self.rig = DroneRig(self.world.client, self.options, substeps)
        self.action_space = self.rig.actions.space
        self._high = np.array([5.0] * 3 + [3.0] * 3 + [1.0] * 3 + [3.0] * 3 + [1.0] * 4, dtype=np.float32)
        self._low = -self._high
        self.observation_space = spaces.Box(self._low, self._high, dtype=np.float32)
        t = self.options["task"]
        self.max_steps = int(round(t["episode_s"] / self.rig.dt))
        d = self.options["disturbance"]
        self._obs_noise = float(d["obs_noise"])
        self._act_noise = float(d["act_noise"])
        self._latency = int(d["latency_steps"])
        self.target = np.zeros(3)
        self.layout_seed = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.steps = 0
        self.hold_time = 0.0
        self.path_length = 0.0
        self.effort = 0.0
        self.min_height = math.inf
        self.prev_action = np.zeros(4, dtype=np.float32)
        self._prev_err = 0.0
        self._queue: deque[np.ndarray] = deque()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        extra = dict(options or {})
        unknown = set(extra) - {"layout_seed", "family"}
        if unknown or extra.get("family", FAMILY) != FAMILY:
            raise ValueError(f"DroneHoverEnv.reset options may only force layout_seed (family {FAMILY!r}); "
                             f"got {sorted(extra)}")
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.layout_seed = (int(extra["layout_seed"]) if "layout_seed" in extra
                            else layout_seed_for(self.options["split"], episode_seed))
        rng = np.random.default_rng([0x686F, self.layout_seed])
        t = self.options["task"]
        self.target = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(1.0, 2.0)])
        off = rng.uniform(-t["init_offset"], t["init_offset"], size=3)
        pos = self.target + off
        pos[2] = max(pos[2], 0.3)
        tilt = t["init_tilt"]
        rpy = (rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt), rng.uniform(-math.pi, math.pi))
        vel = rng.uniform(-t["init_speed"], t["init_speed"], size=3)
        omega = rng.uniform(-1.0, 1.0, size=3) * tilt
        self.rig.reset(self.np_random, tuple(pos), rpy, tuple(vel), tuple(omega))
        self._reset_counters()
        self._prev_err = math.dist(self.rig.quad.pos, self.target)
        self._queue.extend(self.rig.neutral_action() for _ in range(self._latency))
        return self._obs(), self._info(False, False)

    def step(self, action):
        # hot path (one call per control step): scalars are plain floats and every derived quantity is
        # computed once; the float operations are the same as in the straightforward formulation
        action = np.asarray(action, dtype=np.float32).reshape(4)
        if not np.isfinite(action).all():
            raise ValueError(f"action must be finite, got {action}")
        a = action.clip(-1.0, 1.0)
        applied = a
        if self._latency:
            self._queue.append(applied)
            applied = self._queue.popleft()
        if self._act_noise > 0:
            applied = np.clip(applied + self.np_random.normal(0.0, self._act_noise, size=4), -1.0, 1.0)
        rig = self.rig
        q = rig.quad
        before = q.pos
        rig.step(applied, self.np_random)
        pos = q.pos
        self.steps += 1
        self.path_length += math.dist(before, pos)
        aa = float(a @ a)
        self.effort += aa
        self.min_height = min(self.min_height, pos[2])
        d = np.asarray(pos) - self.target
        err = math.sqrt(d.dot(d))  # == np.linalg.norm(d)
        task = self.options["task"]
        tol = task["tolerance"]
        self.hold_time = self.hold_time + rig.dt if err < tol else 0.0
        crashed = pos[2] < 0.05 or q.R[8] < 0.0 or self.world.contacts(q.body) or self._ground_contact()
        max_dist = task["max_distance"]
        away = err > max_dist
        terminated = bool(crashed or away)
        truncated = bool(self.steps >= self.max_steps and not terminated)
        vx, vy, vz = q.vel
        speed = math.sqrt(vx * vx + vy * vy + vz * vz)
        da = action - self.prev_action
        # staying alive must pay (a per-step reward in [0, 1] before penalties): with a purely negative
        # per-step reward, crashing early is the best return and PPO learns to crash; the linear distance
        # term alone is too flat near the target (PPO settled ~0.6 m away), so a sharp precision term
        # exp(-err / PRECISION_M) makes the last decimetres worth flying; the progress term (potential-based,
        # it sums to PROGRESS_GAIN x the distance closed whatever the path) credits each step that closes in
        reward = (1.0 - min(err, max_dist) / max_dist + math.exp(-err / PRECISION_M) - 0.05 * speed
                  - 0.01 * aa - 0.02 * float(da @ da) + (0.5 if err < tol else 0.0)
                  + PROGRESS_GAIN * (self._prev_err - err))
        self._prev_err = err
        if crashed:
            reward -= 20.0
        elif away:
            reward -= 10.0
        self.prev_action = a
        obs = self._obs()
        info = self._info(bool(crashed), truncated, err)
        return obs, float(reward), terminated, truncated, info

    def _ground_contact(self) -> bool:
        if self.rig.quad.pos[2] > NO_GROUND_CONTACT_Z:  # too high for a ground contact point (same answer)
            return False
        g = self.world.ground
        return bool(p.getContactPoints(bodyA=self.rig.quad.body, bodyB=g, physicsClientId=self.world.client))

    @property
    def position(self) -> np.ndarray:
        """Current drone position (m, world frame)."""
        return np.asarray(self.rig.quad.pos)

    # ------------------------------------------------------------------ observation / info
    def _obs(self) -> np.ndarray:
        q = self.rig.quad
        p_, t = q.pos, self.target
        e = self.rig.to_body(t[0] - p_[0], t[1] - p_[1], t[2] - p_[2])
        v = self.rig.body_velocity()
        r = q.rates
        R = q.R
        obs = np.array((*e, v[0] / VEL_SCALE, v[1] / VEL_SCALE, v[2] / VEL_SCALE, R[6], R[7], R[8],
                        r[0] / RATE_SCALE, r[1] / RATE_SCALE, r[2] / RATE_SCALE, *self.prev_action.tolist()),
                       dtype=np.float32)
        if self._obs_noise > 0:
            obs[:12] += self.np_random.normal(0.0, self._obs_noise, size=12).astype(np.float32)
        return obs.clip(self._low, self._high, out=obs)

    @property
    def state(self) -> dict[str, Any]:
        """Privileged state for experts (built on demand)."""
        q = self.rig.quad
        return {"position": np.asarray(q.pos), "quat": np.asarray(q.quat), "vel": np.asarray(q.vel),
                "rates": np.asarray(q.rates), "rpy": np.asarray(q.rpy), "target": self.target.copy(),
                "wind": np.asarray(q.wind)}

    def _info(self, collision: bool, truncated: bool, distance: float | None = None) -> dict[str, Any]:
        q = self.rig.quad
        if distance is None:
            distance = float(np.linalg.norm(np.asarray(q.pos) - self.target))
        success = self.hold_time >= self.options["task"]["hold_s"] - 1e-9
        return {
            "is_success": bool(success),
            "collision": collision,
            "timeout": bool(truncated and not success),
            "distance_to_goal": distance,
            "hold_time": float(self.hold_time),
            "path_length": float(self.path_length),
            "min_clearance": float(self.min_height),
            "control_effort": float(self.effort),
            "layout_id": f"{FAMILY}:{self.layout_seed}",
            "layout_seed": int(self.layout_seed),
            "family": FAMILY,
            "t": self.steps * self.rig.dt,
        }

    # ------------------------------------------------------------------ rendering
    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_chase()
        return None

    def render_chase(self, width: int = 160, height: int = 120) -> np.ndarray:
        """Chase-camera RGB image (H, W, 3) behind and above the drone (TinyRenderer)."""
        return chase_camera(self.world.client, self.rig.quad.pos, self.rig.quad.yaw, width, height)

    def close(self) -> None:
        self.world.close()
