"""What the drone tasks share: the drone options schema, the flying rig and drone observations.

:class:`DroneRig` bundles a :class:`~liquid_control.sim.quadrotor.Quadrotor`, its
:class:`~liquid_control.sim.flight_control.FlightController`, the action interface and the physical
disturbances (steady wind + Ornstein-Uhlenbeck gusts, mass scale, motor noise).  One
:meth:`DroneRig.step` = one control step = ``substeps`` physics steps, with the lean per-substep loop
(controller, two force calls, ``stepSimulation``, two state reads: :meth:`FlightController.run`).
"""

from __future__ import annotations

import math

import numpy as np
import pybullet as p

from liquid_control.sim.flight_control import ACTION_TYPES, ActionInterface, FlightController
from liquid_control.sim.options import Opt
from liquid_control.sim.quadrotor import CF2X, Quadrotor

PHYSICS_HZ = 240
GUST_TAU = 1.0  # s, correlation time of the gust process
# above this height (m) the body (half-extent 0.062 m) is far beyond Bullet's 0.02 m contact breaking
# threshold from the ground plane, so it has no ground contact point: the query can be skipped
NO_GROUND_CONTACT_Z = 0.25

# drone-specific options (both drone tasks merge these into their schemas)
DRONE_SCHEMA: dict[str, Opt] = {
    "action_type": Opt("velocity", "str", choices=ACTION_TYPES,
                       help="velocity (heading-frame vx, vy, vz, yaw rate) / ctbr / rpm"),
    "physics.drag": Opt(1.0, "float", low=0.0, high=10.0, help="scale of the linear air drag"),
    "physics.ground_effect": Opt(True, "bool", help="extra thrust near the ground"),
    "physics.motor_lag": Opt(True, "bool", help="first-order motor lag (tau 0.01 s)"),
    "disturbance.wind": Opt(0.0, "float", low=0.0, high=5.0, help="mean horizontal wind speed (m/s)"),
    "disturbance.gust": Opt(0.0, "float", low=0.0, high=3.0, help="gust std (m/s), OU process, tau 1 s"),
    "disturbance.mass_scale": Opt(1.0, "float", low=0.5, high=1.5, help="body mass and inertia x"),
    "disturbance.motor_noise": Opt(0.0, "float", low=0.0, high=0.5,
                                   help="per-motor multiplicative rpm noise std, redrawn every control step"),
}


class DroneRig:
    """A quadrotor, its controller and action interface in one PyBullet client."""

    def __init__(self, client: int, options: dict, substeps: int) -> None:
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.client = client
        self.substeps = int(substeps)
        self.dt = self.substeps / PHYSICS_HZ
        phys = options["physics"]
        self.quad = Quadrotor(client, CF2X, dt=1.0 / PHYSICS_HZ, drag=phys["drag"],
                              ground_effect=phys["ground_effect"], motor_lag=phys["motor_lag"])
        self.ctrl = FlightController(self.quad)
        self.actions = ActionInterface(options["action_type"], self.quad)
        dist = options["disturbance"]
        self.wind_speed = float(dist["wind"])
        self.gust_std = float(dist["gust"])
        self.mass_scale = float(dist["mass_scale"])
        self.motor_noise = float(dist["motor_noise"])
        self.mean_wind = (0.0, 0.0, 0.0)
        self.gust = [0.0, 0.0, 0.0]
        self._gust_a = math.exp(-self.dt / GUST_TAU)
        self._gust_b = math.sqrt(1.0 - self._gust_a**2)
        self._step_fn = p.stepSimulation

    def reset(self, rng: np.random.Generator, pos, rpy=(0.0, 0.0, 0.0), vel=(0.0, 0.0, 0.0),
              omega=(0.0, 0.0, 0.0)) -> None:
        """Place the drone and draw this episode's wind direction and initial gust."""
        self.quad.set_mass_scale(self.mass_scale)
        self.quad.reset(pos, rpy, vel, omega)
        self.ctrl.reset()
        heading = rng.uniform(-math.pi, math.pi)
        self.mean_wind = (self.wind_speed * math.cos(heading), self.wind_speed * math.sin(heading), 0.0)
        if self.gust_std > 0:
            g = rng.normal(0.0, self.gust_std, size=3)
            self.gust = [float(g[0]), float(g[1]), 0.3 * float(g[2])]
        else:
            self.gust = [0.0, 0.0, 0.0]
        self._set_wind()

    def _set_wind(self) -> None:
        m, g = self.mean_wind, self.gust
        self.quad.wind = (m[0] + g[0], m[1] + g[1], m[2] + g[2])

    def neutral_action(self) -> np.ndarray:
        """The action that asks for hover (all zeros in every interface)."""
        return np.zeros(4, dtype=np.float32)

    def step(self, action: np.ndarray, rng: np.random.Generator) -> None:
        """Apply one normalised action and advance ``substeps`` physics steps."""
        self.actions.apply(self.ctrl, action)
        if self.gust_std > 0:
            a, b, s = self._gust_a, self._gust_b * self.gust_std, self.gust
            n = rng.standard_normal(3)
            s[0] = a * s[0] + b * float(n[0])
            s[1] = a * s[1] + b * float(n[1])
            s[2] = a * s[2] + 0.3 * b * float(n[2])
            self._set_wind()
        if self.motor_noise > 0:
            n = 1.0 + self.motor_noise * rng.standard_normal(4)
            self.quad.motor_gain = (float(n[0]), float(n[1]), float(n[2]), float(n[3]))
        self.ctrl.run(self.substeps, self._step_fn)

    # ------------------------------------------------------------------ observation pieces
    def body_velocity(self) -> tuple[float, float, float]:
        """Velocity in the body frame (m/s)."""
        R, (vx, vy, vz) = self.quad.R, self.quad.vel
        return (R[0] * vx + R[3] * vy + R[6] * vz, R[1] * vx + R[4] * vy + R[7] * vz,
                R[2] * vx + R[5] * vy + R[8] * vz)

    def to_body(self, dx: float, dy: float, dz: float) -> tuple[float, float, float]:
        """A world-frame vector in the body frame."""
        R = self.quad.R
        return (R[0] * dx + R[3] * dy + R[6] * dz, R[1] * dx + R[4] * dy + R[7] * dz,
                R[2] * dx + R[5] * dy + R[8] * dz)

    def attitude(self) -> tuple[float, ...]:
        """Attitude features: gravity direction in the body frame (3) and body rates (3, rad/s)."""
        R = self.quad.R
        return (R[6], R[7], R[8], *self.quad.rates)
