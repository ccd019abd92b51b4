"""``LiquidControl/DroneNav-v0``: fly a Crazyflie-class quadrotor from start to goal through obstacles.

The drone starts hovering at the flight altitude (``flight.altitude``, 1.5 m) above the layout's start
and must reach the goal (within 0.5 m horizontally) without touching an obstacle or the ground,
leaving the arena (horizontally, or above ``layout.ceiling - 0.3`` m, where it could pass over the
obstacles) or flipping over.  Families ``forest`` and ``walls`` train; ``city`` is held out.

Observation (float32, flat; ``env.unwrapped.obs_slices`` names the parts):
- ``rays``: range readings in [0, 1] (1 = nothing within ``rays.range``, 6 m): ``rays.count`` (32)
  horizontal rays of a gravity-aligned ring following the heading, plus ``rays.up`` / ``rays.down``
  (2 + 2) rays tilted 45 degrees (sensor ``rays`` or ``rays+depth``);
- ``depth``: a body-fixed forward depth image of ``depth.width`` x ``depth.height`` rays over
  ``depth.fov`` degrees, row-major, in [0, 1] (sensor ``depth`` or ``rays+depth``);
- ``goal``: distance / 10 m (clipped to 3) and the unit goal direction in the body frame (3);
- ``velocity``: body-frame velocity / 2 m/s (3); ``attitude``: gravity direction in the body frame (3)
  and body rates / 5 rad/s (3).  Velocity and rates are clipped to [-3, 3].

Actions: the drone interfaces of :mod:`liquid_control.sim.flight_control` (``action_type``; velocity
by default).  Control at ``control_hz`` (30 Hz) over 240 Hz physics.  Wind + gusts and mass scale are
applied by the drone rig; observation noise, ray dropout, actuator noise and latency by the base.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybullet as p

from liquid_control.sim.camera import chase_camera
from liquid_control.sim.layouts import DRONE_FAMILIES, Layout
from liquid_control.sim.options import Opt
from liquid_control.sim.quadrotor import CF2X
from liquid_control.sim.sensors import ExactRangeSensor, corrupt
from liquid_control.sim.tasks.base import NO_CONTACT_CLEARANCE, NavTask, observation_parts
from liquid_control.sim.tasks.drone_common import DRONE_SCHEMA, NO_GROUND_CONTACT_Z, DroneRig

TRAIN_FAMILIES = ("forest", "walls")
HELDOUT_FAMILIES = ("city",)
GOAL_SCALE = 10.0  # m per unit of the goal-distance feature
VEL_SCALE = 2.0  # m/s per unit of the velocity features
RATE_SCALE = 5.0  # rad/s per unit of the body-rate features
CEILING_MARGIN = 0.3  # m below the obstacle ceiling where the flight volume ends


def depth_directions(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Body-frame unit directions of a pinhole depth image (row-major, top row first), (H*W, 3)."""
    if width < 1 or height < 1:
        raise ValueError(f"depth image must be at least 1x1, got {width}x{height}")
    f = 1.0 / math.tan(math.radians(fov_deg) / 2.0)  # focal length in units of half-width
    u = (np.arange(width) + 0.5) / width * 2.0 - 1.0  # -1 (left of image) .. 1
    v = ((np.arange(height) + 0.5) / height * 2.0 - 1.0) * height / width
    vv, uu = np.meshgrid(v, u, indexing="ij")
    d = np.stack([np.full_like(uu, f), -uu, -vv], axis=-1).reshape(-1, 3)  # x fwd, y left, z up
    return d / np.linalg.norm(d, axis=1, keepdims=True)


class DroneNavEnv(NavTask):
    """Quadrotor point-goal navigation with range sensing (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    KIND = "drone"
    FAMILIES = DRONE_FAMILIES
    TRAIN_FAMILIES = TRAIN_FAMILIES
    GOAL_RADIUS = 0.5
    MAX_SPEED = 2.0
    BODY_RADIUS = CF2X.collision_radius
    # start and goal are connected with 0.35 m clearance (the planner's and the expert's margin), so
    # SPL's shortest path and the expert never need a passage narrower than a drone can safely take
    LAYOUT_CLEARANCE = 0.35
    DEFAULT_CONTROL_HZ = 30.0
    DEFAULT_RAYS = 32
    DEFAULT_RAY_RANGE = 6.0
    DEFAULT_FOV = 360.0
    SENSORS = ("rays", "depth", "rays+depth")

    @classmethod
    def extra_schema(cls) -> dict[str, Opt]:
        return {
            **DRONE_SCHEMA,
            "rays.up": Opt(2, "int", 0, 16, help="rays tilted 45 deg up (1 = straight up)"),
            "rays.down": Opt(2, "int", 0, 16, help="rays tilted 45 deg down (1 = straight down)"),
            "depth.width": Opt(16, "int", 2, 128, help="depth image width (px)"),
            "depth.height": Opt(8, "int", 2, 96, help="depth image height (px)"),
            "depth.fov": Opt(90.0, "float", 10.0, 150.0, help="depth horizontal field of view (deg)"),
            "layout.fence": Opt(False, "bool", help="the arena edge as walls the sensors see"),
            "flight.altitude": Opt(1.5, "float", 0.3, 3.5, help="start and cruise altitude (m)"),
            "reward.altitude": Opt(0.5, "float", 0.0, 10.0, help="penalty per m of altitude error per s"),
        }

    def extra_ray_kwargs(self) -> dict[str, Any]:
        r = self.options["rays"]
        return {"up": int(r["up"]), "down": int(r["down"])}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        super().__init__(render_mode, **options)
        self.metadata = {**self.metadata, "render_fps": int(round(self.control_hz))}
        self.flight_altitude = float(self.options["flight"]["altitude"])
        sensor = self.options["sensor"]
        self.use_rays = "rays" in sensor
        self.use_depth = "depth" in sensor
        dp = self.options["depth"]
        self.depth_shape = (int(dp["height"]), int(dp["width"]))
        self.depth_dirs = depth_directions(int(dp["width"]), int(dp["height"]), float(dp["fov"]))
        self.depth_sensor: ExactRangeSensor | None = None
        self.rig = DroneRig(self.world.client, self.options, self.substeps)  # rebuilt on every reset
        self.action_space = self.rig.actions.space
        parts = []
        if self.use_rays:
            parts.append(("rays", len(self.ray_dirs), 0.0, 1.0))
        if self.use_depth:
            parts.append(("depth", len(self.depth_dirs), 0.0, 1.0))
        parts += [("goal_distance", 1, 0.0, 3.0), ("goal_direction", 3, -1.0, 1.0),
                  ("velocity", 3, -3.0, 3.0), ("gravity", 3, -1.0, 1.0), ("rates", 3, -3.0, 3.0)]
        self.observation_space, self.obs_slices = observation_parts(parts)
        self._low, self._high = self.observation_space.low, self.observation_space.high
        self._last_clearance = np.inf

    # ------------------------------------------------------------------ hooks
    def _spawn(self, layout: Layout) -> None:
        c = self.world.client
        self.rig = DroneRig(c, self.options, self.substeps)  # the world was wiped: a fresh body
        self.body_id = self.rig.quad.body
        x, y, yaw = layout.start
        self.rig.reset(self.rng, (x, y, self.flight_altitude), (0.0, 0.0, yaw))
        rng = float(self.options["rays"]["range"])
        self.depth_sensor = ExactRangeSensor(self.scene, self.depth_dirs, rng) if self.use_depth else None
        self._top = layout.ceiling - CEILING_MARGIN
        self._last_clearance = np.inf

    def _apply(self, action: np.ndarray) -> None:
        self.rig.step(action, self.rng)

    def _pose(self) -> tuple[np.ndarray, float]:
        q = self.rig.quad
        return np.array(q.pos), q.yaw

    def _collided(self) -> bool:
        # obstacles are vertical extrusions taller than the flight volume: 2D overlap == 3D overlap
        c = self._last_clearance
        return c < 0.0 or (c <= NO_CONTACT_CLEARANCE and self.world.contacts(self.body_id))

    def _failed(self) -> bool:
        """Crashed into the ground, flipped over, or left the flight volume."""
        x, y, z = self.rig.quad.pos
        xmin, ymin, xmax, ymax = self.layout.bounds
        if not (xmin < x < xmax and ymin < y < ymax) or z > self._top or z < 0.05:
            return True
        if self.rig.quad.R[8] < 0.0:
            return True
        if z > NO_GROUND_CONTACT_Z:  # too high for a contact point with the ground plane (same answer)
            return False
        return bool(p.getContactPoints(bodyA=self.body_id, bodyB=self.world.ground,
                                       physicsClientId=self.world.client))

    def _extra_reward(self) -> float:
        err = abs(self.rig.quad.pos[2] - self.flight_altitude)
        return -self.options["reward"]["altitude"] * err * self.dt

    def _observe(self) -> np.ndarray:
        rig = self.rig
        q = rig.quad
        pos = np.asarray(q.pos)
        parts = []
        if self.use_rays:
            c, s = math.cos(q.yaw), math.sin(q.yaw)
            heading = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            parts.append(self._scan(pos, heading))
        if self.use_depth:
            d = self.options["disturbance"]
            depth = self.depth_sensor.scan(pos, np.asarray(q.R).reshape(3, 3))
            parts.append(corrupt(depth, self.rng, d["obs_noise"], d["ray_dropout"]))
        gx, gy = self.layout.goal
        dx, dy, dz = gx - pos[0], gy - pos[1], self.flight_altitude - pos[2]
        dist = norm = math.sqrt(dx * dx + dy * dy + dz * dz)
        if self._route is not None:  # the direction points along the route (goal.lookahead)
            tx, ty = self.heading_target(pos)
            dx, dy = tx - pos[0], ty - pos[1]
            norm = math.sqrt(dx * dx + dy * dy + dz * dz)
        u = rig.to_body(dx, dy, dz)
        inv = 1.0 / norm if norm > 1e-9 else 0.0
        v = rig.body_velocity()
        R = q.R
        rates = q.rates
        tail = (min(dist / GOAL_SCALE, 3.0), u[0] * inv, u[1] * inv, u[2] * inv,
                v[0] / VEL_SCALE, v[1] / VEL_SCALE, v[2] / VEL_SCALE, R[6], R[7], R[8],
                rates[0] / RATE_SCALE, rates[1] / RATE_SCALE, rates[2] / RATE_SCALE)
        parts.append(np.asarray(tail))
        obs = np.concatenate(parts).astype(np.float32)
        return obs.clip(self._low, self._high, out=obs)

    def privileged_state(self) -> dict[str, Any]:
        q = self.rig.quad
        return {"pos": np.asarray(q.pos), "vel": np.asarray(q.vel), "quat": np.asarray(q.quat),
                "rates": np.asarray(q.rates), "wind": np.asarray(q.wind),
                "flight_altitude": self.flight_altitude}

    # ------------------------------------------------------------------ rendering
    def render_chase(self, width: int = 160, height: int = 120) -> np.ndarray:
        """Chase-camera RGB image (H, W, 3) behind and above the drone (TinyRenderer)."""
        return chase_camera(self.world.client, self.rig.quad.pos, self.rig.quad.yaw, width, height)
