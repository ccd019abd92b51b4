"""Shared navigation-task base (a ``gymnasium.Env``) for RoverNav and DroneNav.

How a subclass plugs in
-----------------------
Set the class attributes ``KIND`` ("rover"/"drone": picks the layout generators), ``FAMILIES``,
``TRAIN_FAMILIES``, ``GOAL_RADIUS`` (m), ``MAX_SPEED`` (m/s, for the automatic time limit),
``BODY_RADIUS`` (m, for clearance), ``DEFAULT_CONTROL_HZ`` and ``DEFAULT_RAYS`` / ``DEFAULT_RAY_RANGE``
/ ``DEFAULT_FOV``; add env-specific options by overriding ``extra_schema()`` (dotted name -> ``Opt``;
common options: ``split``, ``layout.*``, ``sensor``, ``rays.*``, ``disturbance.obs_noise|ray_dropout|
act_noise|latency_steps``, ``time_limit``, ``control_hz``, ``reward.*``). In ``__init__`` call
``super().__init__(render_mode, **options)`` and then set ``self.observation_space`` and
``self.action_space`` (actions are in [-1, 1]). Implement:

- ``_spawn(layout)``: create the body in ``self.world`` (the world was just reset and holds the
  obstacles); called on every reset.
- ``_apply(action)``: apply one (delayed, noisy, clipped) action and advance the physics one control
  period (``self.substeps`` physics steps of ``self.world.timestep``).
- ``_pose() -> (xyz ndarray, yaw)``: current body pose (called once per step after ``_apply``).
- ``_observe() -> ndarray``: the observation (use ``self._scan(position, rotation)`` for the
  noisy/dropped-out range readings; ``self.rng`` is the episode RNG).
- optional ``_collided()`` (default: body touches an obstacle), ``_failed()`` (e.g. left the arena or
  crashed: terminates as a collision), ``privileged_state()`` (-> ``self.state`` for experts),
  ``_extra_reward()``.
The base does everything else: options, layout choice per split/seed, latency and actuator noise,
termination (collision -> terminated, goal -> terminated, time limit -> truncated), shaped reward
(geodesic progress, collision penalty, effort penalty, success bonus), info bookkeeping
(docs/internals.md) and rendering (``rgb_array`` top-down raster in numpy; ``human`` = PyBullet GUI).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.sim import options as opts
from liquid_control.sim.layouts import (
    KIND_DEFAULTS,
    SPLITS,
    Layout,
    generate,
    layout_seed_for,
    occupancy_grid,
    route_ahead,
)
from liquid_control.sim.sensors import (
    ExactRangeSensor,
    PlanarRangeSensor,
    PlanarScene,
    corrupt,
    ring_directions,
)
from liquid_control.sim.world import World

# Bullet keeps contact points only within 0.02 m (its contact breaking threshold), so a body whose 2D
# clearance to every obstacle exceeds this (m, with room for parts outside BODY_RADIUS and one substep of
# motion) has no contact point with one: the contact query is skipped (same answer, much cheaper)
NO_CONTACT_CLEARANCE = 0.25


def observation_parts(parts: list[tuple[str, int, float, float]]) -> tuple[gym.spaces.Box, dict[str, slice]]:
    """The float32 Box of a flat observation made of named parts ``(name, size, low, high)``, in order,
    and each part's slice of it (a task's ``obs_slices``)."""
    slices, lows, highs, k = {}, [], [], 0
    for name, n, lo, hi in parts:
        slices[name] = slice(k, k + n)
        lows.append(np.full(n, lo))
        highs.append(np.full(n, hi))
        k += n
    box = gym.spaces.Box(np.concatenate(lows).astype(np.float32), np.concatenate(highs).astype(np.float32),
                         dtype=np.float32)  # fmt: skip
    return box, slices


class NavTask(gym.Env):
    """Start-to-goal navigation in a procedurally generated layout (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 20}

    KIND = "rover"
    FAMILIES: tuple[str, ...] = ()
    TRAIN_FAMILIES: tuple[str, ...] = ()
    GOAL_RADIUS = 0.3
    MAX_SPEED = 1.0
    BODY_RADIUS = 0.2
    LAYOUT_CLEARANCE: float | None = None  # start-goal connectivity clearance (m); None = BODY_RADIUS + 0.1
    DEFAULT_CONTROL_HZ = 20.0
    PHYSICS_HZ = 240.0
    DEFAULT_RAYS = 32
    DEFAULT_RAY_RANGE = 8.0
    DEFAULT_FOV = 360.0
    DEFAULT_DENSITY = 0.3
    SENSORS: tuple[str, ...] = ("rays",)
    RENDER_PX = 480

    # ------------------------------------------------------------------ options
    @classmethod
    def schema(cls) -> dict[str, opts.Opt]:
        """All options of this env (dotted name -> Opt)."""
        d = KIND_DEFAULTS[cls.KIND]
        Opt = opts.Opt
        base = {
            "split": Opt("train", "str", choices=tuple(SPLITS), help="layout seed range"),
            "layout.family": Opt(list(cls.TRAIN_FAMILIES), "str_or_list", choices=cls.FAMILIES),
            "layout.density": Opt(cls.DEFAULT_DENSITY, "float", 0.0, 3.0, help="clutter amount"),
            "layout.obstacle_scale": Opt(1.0, "float", 0.2, 3.0, help="obstacle size factor"),
            "layout.goal_distance": Opt(list(d["goal_distance"]), "range", 1.0, 60.0, help="start-goal m"),
            "layout.arena": Opt(d["arena"], "float", 8.0, 100.0, help="arena side (m)"),
            "sensor": Opt(cls.SENSORS[0], "str", choices=cls.SENSORS),
            "rays.count": Opt(cls.DEFAULT_RAYS, "int", 4, 512, help="horizontal range rays"),
            "rays.range": Opt(cls.DEFAULT_RAY_RANGE, "float", 0.5, 50.0, help="max range (m)"),
            "rays.fov": Opt(cls.DEFAULT_FOV, "float", 10.0, 360.0, help="horizontal field of view (deg)"),
            "disturbance.obs_noise": Opt(0.0, "float", 0.0, 1.0, help="range noise std (fraction of range)"),
            "disturbance.ray_dropout": Opt(0.0, "float", 0.0, 1.0, help="ray dropout probability"),
            "disturbance.act_noise": Opt(0.0, "float", 0.0, 2.0, help="actuator noise std (action units)"),
            "disturbance.latency_steps": Opt(0, "int", 0, 50, help="control delay (steps)"),
            "time_limit": Opt(0.0, "float", 0.0, 3600.0, help="s; 0 = automatic from the path length"),
            "control_hz": Opt(cls.DEFAULT_CONTROL_HZ, "float", 1.0, cls.PHYSICS_HZ),
            "reward.progress": Opt(1.0, "float", 0.0, 100.0, help="per metre of geodesic progress"),
            "reward.collision": Opt(10.0, "float", 0.0, 1000.0, help="collision penalty"),
            "reward.success": Opt(10.0, "float", 0.0, 1000.0, help="goal bonus"),
            "reward.effort": Opt(0.01, "float", 0.0, 10.0, help="penalty per unit ||a||^2"),
            "reward.time": Opt(0.0, "float", 0.0, 10.0, help="penalty per second"),
            "goal.lookahead": Opt(0.0, "float", 0.0, 50.0,
                                  help="m: the goal direction points this far along the planner's route "
                                       "(a route command from the map, privileged); 0 = at the goal"),
        }
        base.update(cls.extra_schema())
        return base

    @classmethod
    def extra_schema(cls) -> dict[str, opts.Opt]:
        """Env-specific options (override)."""
        return {}

    # ------------------------------------------------------------------ lifecycle
    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        self.options: dict[str, Any] = opts.resolve(self.schema(), options)
        self.render_mode = render_mode
        self.control_hz = float(self.options["control_hz"])
        self.substeps = max(1, int(round(self.PHYSICS_HZ / self.control_hz)))
        self.dt = self.substeps / self.PHYSICS_HZ
        self.families = opts.as_list(self.options["layout"]["family"])
        self.world = World(gui=render_mode == "human", timestep=1.0 / self.PHYSICS_HZ)
        r = self.options["rays"]
        self.ray_dirs = ring_directions(int(r["count"]), float(r["fov"]), **self.extra_ray_kwargs())
        self.sensor: ExactRangeSensor | PlanarRangeSensor | None = None
        self.layout: Layout | None = None
        self.rng = np.random.default_rng(0)
        self._bg: np.ndarray | None = None
        self._last_clearance = np.inf
        self._route: np.ndarray | None = None
        self._zero_bookkeeping()

    def extra_ray_kwargs(self) -> dict[str, Any]:
        """Extra ``ring_directions`` arguments (e.g. up/down rays for the drone)."""
        return {}

    def _zero_bookkeeping(self) -> None:
        self.t = 0.0
        self.steps = 0
        self.path_length = 0.0
        self.min_clearance = np.inf
        self.control_effort = 0.0
        self.collision = False
        self.success = False
        self.position = np.zeros(3)
        self.yaw = 0.0
        self.trace: list[np.ndarray] = []
        self.last_ranges = np.ones(len(getattr(self, "ray_dirs", [])))

    @property
    def time_limit(self) -> float:
        tl = float(self.options["time_limit"])
        if tl > 0 or self.layout is None:
            return tl if tl > 0 else 60.0
        return float(20.0 + 3.0 * self.layout.geodesic / self.MAX_SPEED)

    def choose_layout(self, episode_seed: int, family: str | None = None,
                      layout_seed: int | None = None) -> Layout:
        """The layout of an episode seed: family round-robin over ``layout.family``, seed in the split."""
        fam = family or self.families[int(episode_seed) % len(self.families)]
        if fam not in self.FAMILIES:
            raise ValueError(f"unknown family {fam!r}; choose from {list(self.FAMILIES)}")
        ls = layout_seed_for(self.options["split"], episode_seed) if layout_seed is None else int(layout_seed)
        lo = self.options["layout"]
        return generate(fam, ls, kind=self.KIND, density=lo["density"], obstacle_scale=lo["obstacle_scale"],
                        goal_distance=lo["goal_distance"], arena=lo["arena"],
                        fence=bool(lo.get("fence", False)),
                        clearance=(self.BODY_RADIUS + 0.1 if self.LAYOUT_CLEARANCE is None
                                   else self.LAYOUT_CLEARANCE))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options`` may force ``family`` and/or ``layout_seed`` (e.g. for replays)."""
        super().reset(seed=seed)
        extra = dict(options or {})
        unknown = set(extra) - {"family", "layout_seed"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: family, layout_seed")
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.rng = np.random.default_rng([episode_seed, 7])
        self.episode_seed = episode_seed
        self.layout = self.choose_layout(episode_seed, extra.get("family"), extra.get("layout_seed"))
        self.world.reset(self.layout)
        self.scene = PlanarScene(self.layout)
        self.sensor = self.make_sensor()
        ahead = float(self.options["goal"]["lookahead"])
        self._route = route_ahead(self.layout, ahead) if ahead > 0 else None
        self._spawn(self.layout)
        self._zero_bookkeeping()
        self._bg = None
        self.position, self.yaw = self._pose()
        self.trace = [self.position[:2].copy()]
        self.min_clearance = self._clearance()
        self._prev_geo = self.layout.geodesic_to_goal(self.position[:2])
        lat = int(self.options["disturbance"]["latency_steps"])
        self._queue: deque[np.ndarray] = deque([self.neutral_action()] * lat)
        obs = self._observe()
        return obs, self._info()

    def step(self, action):
        if self.layout is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape).clip(-1.0, 1.0)
        self.control_effort += float(a @ a) if a.ndim == 1 else float((a * a).sum())
        dist = self.options["disturbance"]
        self._queue.append(a)  # holds latency_steps older actions: this applies the one from k steps ago
        a = self._queue.popleft()
        if dist["act_noise"] > 0:
            a = np.clip(a + self.rng.normal(0.0, dist["act_noise"], size=a.shape), -1.0, 1.0)
        self._apply(a)
        self.steps += 1
        self.t = self.steps * self.dt
        prev = self.position
        self.position, self.yaw = self._pose()
        self.path_length += math.hypot(self.position[0] - prev[0], self.position[1] - prev[1])
        self.trace.append(self.position[:2].copy())
        self.min_clearance = min(self.min_clearance, self._clearance())
        self.collision = bool(self._collided() or self._failed())
        d_goal = self._distance_to_goal()
        self.success = (not self.collision) and d_goal <= self.GOAL_RADIUS
        geo = self.layout.geodesic_to_goal(self.position[:2])
        rw = self.options["reward"]
        reward = (rw["progress"] * (self._prev_geo - geo) - rw["effort"] * float((a * a).sum())
                  - rw["time"] * self.dt)
        self._prev_geo = geo
        reward += self._extra_reward()
        if self.collision:
            reward -= rw["collision"]
        if self.success:
            reward += rw["success"]
        terminated = self.collision or self.success
        truncated = (not terminated) and self.t >= self.time_limit - 1e-9
        obs = self._observe()
        info = self._info(d_goal)
        info["timeout"] = bool(truncated)
        if self.render_mode == "human":
            self.render()
        return obs, float(reward), terminated, truncated, info

    def close(self) -> None:
        self.world.close()

    # ------------------------------------------------------------------ shared helpers
    def _distance_to_goal(self) -> float:
        g = self.layout.goal
        return math.hypot(self.position[0] - g[0], self.position[1] - g[1])

    def _clearance(self) -> float:
        self._last_clearance = self.scene.clearance(self.position[:2]) - self.BODY_RADIUS
        return self._last_clearance

    def _scan(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Normalised range readings with the configured noise and dropout."""
        d = self.options["disturbance"]
        self.last_ranges = self.sensor.scan(position, rotation)
        return corrupt(self.last_ranges, self.rng, d["obs_noise"], d["ray_dropout"])

    def _info(self, distance_to_goal: float | None = None) -> dict[str, Any]:
        if distance_to_goal is None:
            distance_to_goal = self._distance_to_goal()
        return {
            "is_success": bool(self.success), "collision": bool(self.collision), "timeout": False,
            "distance_to_goal": distance_to_goal, "path_length": float(self.path_length),
            "min_clearance": float(self.min_clearance), "control_effort": float(self.control_effort),
            "layout_id": self.layout.layout_id, "layout_seed": int(self.layout.seed),
            "family": self.layout.family, "t": float(self.t),
        }

    @property
    def state(self) -> dict[str, Any]:
        """Privileged state for experts (pose, goal, layout, time)."""
        out = {"position": self.position.copy(), "yaw": float(self.yaw), "goal": np.asarray(self.layout.goal),
               "t": float(self.t), "layout": self.layout}
        out.update(self.privileged_state())
        return out

    # ------------------------------------------------------------------ subclass hooks
    def make_sensor(self) -> ExactRangeSensor | PlanarRangeSensor:
        """The range sensor for this episode, exact on the layout (its obstacles are vertical prisms on
        the ground): the planar fan cast when every ray is horizontal, else the prism cast of rays in any
        direction (both much cheaper than PyBullet's ``rayTestBatch``, which hits within a margin)."""
        rng = float(self.options["rays"]["range"])
        if np.all(np.abs(self.ray_dirs[:, 2]) < 1e-9):
            return PlanarRangeSensor(self.scene, self.ray_dirs, rng, offset=self.sensor_offset())
        return ExactRangeSensor(self.scene, self.ray_dirs, rng, offset=self.sensor_offset())

    def heading_target(self, xy: Sequence[float]) -> tuple[float, float]:
        """The point the observation's goal direction points at from ``xy``: the goal, or with
        ``goal.lookahead`` the point that far along the planner's route to it."""
        if self._route is None:
            return self.layout.goal
        iy, ix = self.layout.geo_grid.to_cell(xy)
        x, y = self._route[iy, ix]
        return float(x), float(y)

    def sensor_offset(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)

    def neutral_action(self) -> np.ndarray:
        return np.zeros(self.action_space.shape, dtype=np.float64)

    def privileged_state(self) -> dict[str, Any]:
        return {}

    def _collided(self) -> bool:
        """Touching an obstacle (uses the clearance computed this step by ``_clearance``)."""
        return self._last_clearance <= NO_CONTACT_CLEARANCE and self.world.contacts(self.body_id)

    def _failed(self) -> bool:
        return False

    def _extra_reward(self) -> float:
        return 0.0

    def _spawn(self, layout: Layout) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, action: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pose(self) -> tuple[np.ndarray, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _observe(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ rendering
    def render(self):
        """``rgb_array``: a top-down (H, W, 3) uint8 image; ``human``: the PyBullet GUI follows the body."""
        if self.render_mode == "human":
            if not self.world.gui:  # no display: nothing to show
                return None
            import pybullet as p
            p.resetDebugVisualizerCamera(6.0, np.degrees(self.yaw) - 90, -50, self.position.tolist(),
                                         physicsClientId=self.world.client)
            return None
        if self.render_mode != "rgb_array" or self.layout is None:
            return None
        return self.render_topdown()

    def render_topdown(self, px: int | None = None) -> np.ndarray:
        """Obstacles (grey), path so far (blue), goal (green), rays (orange), body (red) in numpy."""
        px = int(px or self.RENDER_PX)
        xmin, ymin, xmax, ymax = self.layout.bounds
        res = max(xmax - xmin, ymax - ymin) / px
        if self._bg is None or self._bg.shape[0] != px:
            grid = occupancy_grid(self.layout, res, inflate=0.0, border=False)
            img = np.full(grid.occ.shape + (3,), 245, dtype=np.uint8)
            img[grid.occ] = (90, 90, 100)
            self._bg = img[::-1].copy()  # row 0 = top = ymax
        img = self._bg.copy()
        h, w = img.shape[:2]

        def to_px(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            xy = np.atleast_2d(xy)
            cols = ((xy[:, 0] - xmin) / res).astype(int)
            rows = (h - 1 - (xy[:, 1] - ymin) / res).astype(int)
            return np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)

        def disc(center, radius, color):
            r, c = to_px(np.asarray(center)[None])
            rad = max(int(radius / res), 1)
            yy, xx = np.ogrid[-rad:rad + 1, -rad:rad + 1]
            m = yy * yy + xx * xx <= rad * rad
            rr, cc = np.nonzero(m)
            rr, cc = rr + r[0] - rad, cc + c[0] - rad
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            img[rr[ok], cc[ok]] = color

        def segments(p0: np.ndarray, p1: np.ndarray, color):
            n = int(np.ceil(np.max(np.hypot(*(p1 - p0).T)) / res)) + 2 if len(p0) else 0
            if n == 0:
                return
            t = np.linspace(0, 1, n)[None, :, None]
            pts = (p0[:, None, :] + t * (p1 - p0)[:, None, :]).reshape(-1, 2)
            img[to_px(pts)] = color

        disc(self.layout.goal, max(self.GOAL_RADIUS, 2 * res), (40, 170, 60))
        if self.sensor is not None and len(self.last_ranges):
            f, to = self.sensor.segments
            n = min(len(self.last_ranges), len(f))
            f, to = f[:n], to[:n]
            hit = f + (to - f) * self.last_ranges[:n, None]
            segments(f, hit, (255, 170, 60))
        if len(self.trace) > 1:
            tr = np.asarray(self.trace)
            segments(tr[:-1], tr[1:], (40, 80, 220))
        disc(self.position[:2], self.BODY_RADIUS, (210, 40, 40))
        head = self.position[:2] + 1.5 * self.BODY_RADIUS * np.array([np.cos(self.yaw), np.sin(self.yaw)])
        segments(self.position[None, :2], head[None], (0, 0, 0))
        return img
