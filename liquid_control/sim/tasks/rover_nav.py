"""``LiquidControl/RoverNav-v0``: drive a differential-drive rover from start to goal through a layout.

Observation (float32; ``env.unwrapped.obs_slices`` names the parts): lidar ranges normalised to
[0, 1] (``rays.count`` beams over ``rays.fov`` degrees centred ahead, range ``rays.range``), goal
distance / 10 m (clipped to 3), cos and sin of the goal bearing in the body frame, and the two wheel
speeds / their maximum. Action: ``(v, w)`` in [-1, 1]^2 scaled to 1 m/s and 2 rad/s. Control at 20 Hz
over 240 Hz physics. Episodes end on a collision, on reaching the goal (0.3 m), or at the time limit.
Training families ``forest`` + ``rooms``; ``maze`` is held out.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.sim.camera import chase_camera
from liquid_control.sim.layouts import ROVER_FAMILIES, Layout
from liquid_control.sim.options import Opt
from liquid_control.sim.rover import RoverBody, RoverSpec
from liquid_control.sim.tasks.base import NavTask, observation_parts

TRAIN_FAMILIES = ("forest", "rooms")
HELDOUT_FAMILIES = ("maze",)


class RoverNavEnv(NavTask):
    """Differential-drive point-goal navigation with a 2D lidar."""

    KIND = "rover"
    FAMILIES = ROVER_FAMILIES
    TRAIN_FAMILIES = TRAIN_FAMILIES
    GOAL_RADIUS = 0.3
    BODY_RADIUS = RoverSpec().footprint  # the wheels, which reach past the chassis
    # start and goal connected at 0.28 m (the chassis radius + 0.1 m, as when the layouts were drawn:
    # the body radius used to leave the wheels out, and pinning it keeps every layout as it was)
    LAYOUT_CLEARANCE = 0.28
    MAX_SPEED = RoverSpec().max_speed
    DEFAULT_CONTROL_HZ = 20.0
    DEFAULT_RAYS = 64
    DEFAULT_RAY_RANGE = 8.0
    DEFAULT_FOV = 270.0
    GOAL_SCALE = 10.0  # m per unit of the goal-distance feature

    @classmethod
    def extra_schema(cls) -> dict[str, Opt]:
        return {
            "disturbance.friction_scale": Opt(1.0, "float", 0.05, 5.0, help="wheel friction x"),
            "disturbance.mass_scale": Opt(1.0, "float", 0.2, 5.0, help="chassis mass x"),
        }

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        super().__init__(render_mode, **options)
        self.spec_rover = RoverSpec()
        self.observation_space, self.obs_slices = observation_parts([
            ("rays", len(self.ray_dirs), 0.0, 1.0), ("goal_distance", 1, 0.0, 3.0),
            ("goal_bearing", 2, -1.0, 1.0), ("wheels", 2, -2.0, 2.0)])
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        s = self.spec_rover
        self._max_wheel = (s.max_speed + s.max_turn * s.half_track) / s.wheel_radius
        self.body: RoverBody | None = None

    # ------------------------------------------------------------------ hooks
    def sensor_offset(self) -> tuple[float, float, float]:
        return (0.0, 0.0, self.spec_rover.lidar_height - self.spec_rover.base_z)

    def _spawn(self, layout: Layout) -> None:
        d = self.options["disturbance"]
        self.body = RoverBody(self.world.client, self.spec_rover, layout.start,
                              friction_scale=d["friction_scale"], mass_scale=d["mass_scale"])
        self.body_id = self.body.body
        self._lin = np.zeros(3)
        self._ang = np.zeros(3)

    def _apply(self, action: np.ndarray) -> None:
        s = self.spec_rover
        self.body.drive(float(action[0]) * s.max_speed, float(action[1]) * s.max_turn)
        self.world.step(self.substeps)

    def _pose(self) -> tuple[np.ndarray, float]:
        pos, yaw, self._lin, self._ang = self.body.state()
        return pos, yaw

    def render_chase(self, width: int = 160, height: int = 120) -> np.ndarray:
        """Chase-camera RGB image (H, W, 3) behind and above the rover (TinyRenderer)."""
        return chase_camera(self.world.client, self.position, self.yaw, width, height, back=1.0, up=0.6)

    def _failed(self) -> bool:  # tipped over or pushed off the ground
        return not (0.02 < self.position[2] < 0.4)

    def _observe(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        ranges = self._scan(self.position, rot)
        gx, gy = self.layout.goal[0] - self.position[0], self.layout.goal[1] - self.position[1]
        dist = float(np.hypot(gx, gy))
        if self._route is not None:  # the bearing points along the route (goal.lookahead)
            tx, ty = self.heading_target(self.position)
            gx, gy = tx - self.position[0], ty - self.position[1]
        bearing = float(np.arctan2(gy, gx)) - self.yaw
        wheels = (self.body.wheel_speeds() / self._max_wheel).clip(-2.0, 2.0)
        self._wheels = wheels
        goal = [min(dist / self.GOAL_SCALE, 3.0), np.cos(bearing), np.sin(bearing)]
        return np.concatenate([ranges, goal, wheels]).astype(np.float32)

    def privileged_state(self) -> dict[str, Any]:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return {"v": float(c * self._lin[0] + s * self._lin[1]), "w": float(self._ang[2]),
                "spec": self.spec_rover}
