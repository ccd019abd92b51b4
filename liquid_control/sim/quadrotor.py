"""A Crazyflie-class quadrotor body in PyBullet: motors with lag, thrust/torque model, drag, ground effect.

The body is generated (no URDF file): a collision cylinder (r 0.06 m x h 0.025 m) with the cf2x mass and
inertia.  Every physics substep :meth:`Quadrotor.apply` turns four commanded motor speeds (rpm) into
one summed body-frame force and one body-frame torque (two PyBullet calls), after a first-order motor
lag.  State is read back with two calls per substep by :meth:`Quadrotor.read_state`.  All per-substep
math is plain-float Python: numpy per-call overhead would dominate at this size.

Motor layout (body frame x forward, y left, z up; "X" configuration, arm = centre-to-motor distance)::

    m3 (+x,+y) ccw-torque +   m0 (+x,-y) torque -
    m2 (-x,+y) torque -       m1 (-x,-y) torque +

Motor i produces thrust kf*w_i^2 along body +z and a yaw reaction torque SPIN[i]*km*w_i^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pybullet as p

GRAVITY = 9.81

# yaw reaction-torque sign of each motor (see module docstring)
SPIN = (-1.0, 1.0, -1.0, 1.0)
_LINK_FRAME = p.LINK_FRAME
_ORIGIN = (0.0, 0.0, 0.0)
_get_pose = p.getBasePositionAndOrientation
_get_velocity = p.getBaseVelocity
_apply_force = p.applyExternalForce
_apply_torque = p.applyExternalTorque


@dataclass(frozen=True)
class QuadParams:
    """Physical constants of a quadrotor (defaults: Crazyflie 2.x "cf2x", DESIGN.md section 5)."""

    mass: float = 0.027  # kg
    arm: float = 0.0397  # m, centre to motor
    ixx: float = 1.4e-5  # kg m^2
    iyy: float = 1.4e-5
    izz: float = 2.17e-5
    kf: float = 3.16e-10  # N / rpm^2
    km: float = 7.94e-12  # N m / rpm^2
    thrust_to_weight: float = 2.25
    prop_radius: float = 0.0231  # m
    collision_radius: float = 0.06  # m
    collision_height: float = 0.025  # m
    motor_tau: float = 0.01  # s, first-order motor lag
    drag_xy: float = 9.0e-3  # N per (m/s) of air-relative velocity, linear drag in the horizontal plane
    drag_z: float = 1.0e-2  # N per (m/s), vertical

    @property
    def weight(self) -> float:
        """m*g in newtons."""
        return self.mass * GRAVITY

    @property
    def hover_rpm(self) -> float:
        """Motor speed at which four motors carry the weight (about 14,468 rpm for cf2x)."""
        return math.sqrt(self.weight / (4.0 * self.kf))

    @property
    def max_rpm(self) -> float:
        """Motor speed limit from the thrust-to-weight ratio (about 21,703 rpm for cf2x)."""
        return math.sqrt(self.thrust_to_weight * self.weight / (4.0 * self.kf))

    @property
    def max_motor_thrust(self) -> float:
        """Thrust of one motor at max rpm, N."""
        return self.kf * self.max_rpm**2

    @property
    def lever(self) -> float:
        """Roll/pitch lever arm of each motor (arm / sqrt 2 in the X configuration), m."""
        return self.arm / math.sqrt(2.0)


CF2X = QuadParams()


def quat_to_matrix(qx: float, qy: float, qz: float, qw: float) -> tuple[float, ...]:
    """Row-major 3x3 rotation matrix (body -> world) of a PyBullet quaternion (x, y, z, w), as 9 floats."""
    xx, yy, zz = qx * qx, qy * qy, qz * qz
    xy, xz, yz = qx * qy, qx * qz, qy * qz
    wx, wy, wz = qw * qx, qw * qy, qw * qz
    return (
        1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy),
        2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx),
        2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy),
    )  # fmt: skip


class Quadrotor:
    """One quadrotor body in a PyBullet client, with its motor state and the latest read-back state.

    Attributes updated by :meth:`read_state` (plain floats/tuples, world frame unless said):
    ``pos`` (x, y, z), ``quat`` (x, y, z, w), ``R`` (row-major body->world matrix), ``vel``,
    ``omega`` (world-frame angular velocity), ``rates`` (body-frame angular velocity p, q, r).
    """

    def __init__(
        self,
        client: int,
        params: QuadParams = CF2X,
        dt: float = 1.0 / 240.0,
        drag: float = 1.0,
        ground_effect: bool = True,
        motor_lag: bool = True,
        color: tuple[float, float, float, float] = (0.15, 0.35, 0.9, 1.0),
    ) -> None:
        if dt <= 0:
            raise ValueError(f"physics dt must be > 0, got {dt}")
        if drag < 0:
            raise ValueError(f"drag scale must be >= 0, got {drag}")
        self.client = client
        self.params = params
        self.dt = dt
        self.drag = float(drag)
        self.ground_effect = bool(ground_effect)
        self.motor_alpha = 1.0 - math.exp(-dt / params.motor_tau) if motor_lag else 1.0
        # constants of the per-substep loop, cached as plain floats
        self._max_rpm = params.max_rpm
        self._kf, self._km = params.kf, params.km
        self._lev_kf = params.lever * params.kf
        self._prop_r = params.prop_radius
        self._drag_xy, self._drag_z = self.drag * params.drag_xy, self.drag * params.drag_z
        self.mass_scale = 1.0
        self.body = self._create_body(color)
        self.wind = (0.0, 0.0, 0.0)  # world-frame air velocity, m/s (set by the task each control step)
        self.motor_gain = (1.0, 1.0, 1.0, 1.0)  # multiplicative actuator noise, held per control step
        hover = params.hover_rpm
        self.rpm = [hover, hover, hover, hover]
        self.pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
        self.R: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        self.vel: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.omega: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.rates: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.last_force = (0.0, 0.0, 0.0)  # body frame, N (what the last apply() pushed)
        self.last_torque = (0.0, 0.0, 0.0)

    # ------------------------------------------------------------------ body
    def _create_body(self, color: tuple[float, float, float, float]) -> int:
        pr = self.params
        c = self.client
        col = p.createCollisionShape(
            p.GEOM_CYLINDER, radius=pr.collision_radius, height=pr.collision_height, physicsClientId=c
        )
        lev = pr.lever
        rotor = (0.9, 0.9, 0.9, 1.0)
        vis = p.createVisualShapeArray(
            shapeTypes=[p.GEOM_BOX, p.GEOM_BOX, p.GEOM_CYLINDER, p.GEOM_CYLINDER, p.GEOM_CYLINDER,
                        p.GEOM_CYLINDER, p.GEOM_BOX],
            halfExtents=[[pr.arm * 1.05, 0.004, 0.004], [0.004, pr.arm * 1.05, 0.004], [0, 0, 0], [0, 0, 0],
                         [0, 0, 0], [0, 0, 0], [0.015, 0.015, 0.008]],
            radii=[0, 0, pr.prop_radius, pr.prop_radius, pr.prop_radius, pr.prop_radius, 0],
            lengths=[0, 0, 0.004, 0.004, 0.004, 0.004, 0],
            rgbaColors=[color, color, rotor, rotor, rotor, (1.0, 0.3, 0.2, 1.0), color],
            visualFramePositions=[[0, 0, 0], [0, 0, 0], [-lev, -lev, 0.01], [lev, -lev, 0.01],
                                  [-lev, lev, 0.01], [lev, lev, 0.01], [0, 0, 0]],
            visualFrameOrientations=[p.getQuaternionFromEuler([0, 0, math.pi / 4]),
                                     p.getQuaternionFromEuler([0, 0, math.pi / 4])] + [[0, 0, 0, 1]] * 5,
            physicsClientId=c,
        )  # fmt: skip
        body = p.createMultiBody(
            baseMass=pr.mass,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=[0, 0, 1],
            physicsClientId=c,
        )
        # exact cf2x inertia; no Bullet damping (drag is modelled explicitly)
        p.changeDynamics(
            body, -1, localInertiaDiagonal=[pr.ixx, pr.iyy, pr.izz], linearDamping=0.0, angularDamping=0.0,
            physicsClientId=c,
        )  # fmt: skip
        return body

    def set_mass_scale(self, scale: float) -> None:
        """Scale the body's mass and inertia (the ``disturbance.mass_scale`` option); 1 = nominal."""
        if scale <= 0:
            raise ValueError(f"mass scale must be > 0, got {scale}")
        if scale == self.mass_scale:
            return
        pr = self.params
        p.changeDynamics(
            self.body, -1, mass=pr.mass * scale,
            localInertiaDiagonal=[pr.ixx * scale, pr.iyy * scale, pr.izz * scale],
            physicsClientId=self.client,
        )  # fmt: skip
        self.mass_scale = scale

    # ------------------------------------------------------------------ state
    def reset(
        self,
        pos: tuple[float, float, float],
        rpy: tuple[float, float, float] = (0.0, 0.0, 0.0),
        vel: tuple[float, float, float] = (0.0, 0.0, 0.0),
        omega: tuple[float, float, float] = (0.0, 0.0, 0.0),
        rpm: float | None = None,
    ) -> None:
        """Place the body (world pose, world-frame velocities), set all motors to ``rpm`` (default hover)."""
        quat = p.getQuaternionFromEuler(rpy)
        p.resetBasePositionAndOrientation(self.body, pos, quat, physicsClientId=self.client)
        p.resetBaseVelocity(self.body, vel, omega, physicsClientId=self.client)
        r = self.params.hover_rpm if rpm is None else float(rpm)
        self.rpm = [r, r, r, r]
        self.wind = (0.0, 0.0, 0.0)
        self.motor_gain = (1.0, 1.0, 1.0, 1.0)
        self.read_state()

    def read_state(self) -> None:
        """Read pose and velocities back from PyBullet (two calls) and derive R and body rates."""
        c = self.client
        pos, quat = _get_pose(self.body, c)  # positional arguments: keyword parsing costs ~0.3 us a call
        vel, omega = _get_velocity(self.body, c)
        self.set_state(pos, quat, vel, omega)

    def set_state(self, pos: tuple, quat: tuple, vel: tuple, omega: tuple) -> None:
        """Store a read-back state (as PyBullet returns it) and derive R and the body rates."""
        self.pos, self.quat, self.vel, self.omega = pos, quat, vel, omega
        R = quat_to_matrix(*quat)
        self.R = R
        wx, wy, wz = omega
        self.rates = (
            R[0] * wx + R[3] * wy + R[6] * wz,
            R[1] * wx + R[4] * wy + R[7] * wz,
            R[2] * wx + R[5] * wy + R[8] * wz,
        )

    @property
    def rpy(self) -> tuple[float, float, float]:
        """Roll, pitch, yaw (rad) of the current orientation."""
        R = self.R
        roll = math.atan2(R[7], R[8])
        pitch = math.asin(max(-1.0, min(1.0, -R[6])))
        yaw = math.atan2(R[3], R[0])
        return roll, pitch, yaw

    @property
    def yaw(self) -> float:
        """Heading (rad)."""
        return math.atan2(self.R[3], self.R[0])

    # ------------------------------------------------------------------ actuation
    def apply(self, rpm_cmd: tuple[float, float, float, float] | list[float]) -> None:
        """Advance the motor lag toward ``rpm_cmd`` and push this substep's force and torque to PyBullet.

        Call once per physics substep, right before ``stepSimulation`` (PyBullet clears external forces
        after every step).  Commands are clipped to [0, max_rpm].
        """
        a = self.motor_alpha
        mx = self._max_rpm
        w = self.rpm
        g = self.motor_gain
        kf, km = self._kf, self._km
        c0 = rpm_cmd[0] * g[0]
        c1 = rpm_cmd[1] * g[1]
        c2 = rpm_cmd[2] * g[2]
        c3 = rpm_cmd[3] * g[3]
        c0 = 0.0 if c0 < 0.0 else (mx if c0 > mx else c0)
        c1 = 0.0 if c1 < 0.0 else (mx if c1 > mx else c1)
        c2 = 0.0 if c2 < 0.0 else (mx if c2 > mx else c2)
        c3 = 0.0 if c3 < 0.0 else (mx if c3 > mx else c3)
        w0 = w[0] + a * (c0 - w[0])
        w1 = w[1] + a * (c1 - w[1])
        w2 = w[2] + a * (c2 - w[2])
        w3 = w[3] + a * (c3 - w[3])
        w[0], w[1], w[2], w[3] = w0, w1, w2, w3
        s0, s1, s2, s3 = w0 * w0, w1 * w1, w2 * w2, w3 * w3  # SPIN = (-1, 1, -1, 1)
        yaw_t = km * (s1 + s3 - s0 - s2)
        thrust = kf * (s0 + s1 + s2 + s3)
        lev = self._lev_kf
        tx = lev * (s2 + s3 - s0 - s1)
        ty = lev * (s1 + s2 - s0 - s3)
        if self.ground_effect:
            h = self.pos[2]
            r = self._prop_r
            h = r if h < r else h
            ratio = r / (4.0 * h)
            thrust = thrust / (1.0 - ratio * ratio)
        fx = fy = 0.0
        fz = thrust
        if self.drag > 0.0:
            R = self.R
            wind = self.wind
            ax = self.vel[0] - wind[0]
            ay = self.vel[1] - wind[1]
            az = self.vel[2] - wind[2]
            kxy, kz = self._drag_xy, self._drag_z
            dx, dy, dz = -kxy * ax, -kxy * ay, -kz * az
            # world -> body: R^T d
            fx = R[0] * dx + R[3] * dy + R[6] * dz
            fy = R[1] * dx + R[4] * dy + R[7] * dz
            fz += R[2] * dx + R[5] * dy + R[8] * dz
        force = (fx, fy, fz)
        torque = (tx, ty, yaw_t)
        self.last_force = force
        self.last_torque = torque
        c = self.client
        _apply_force(self.body, -1, force, _ORIGIN, _LINK_FRAME, c)
        _apply_torque(self.body, -1, torque, _LINK_FRAME, c)
