"""Cascaded flight controller and the three drone action interfaces (velocity, ctbr, rpm).

Cascade (all stages run every physics substep, plain-float math):
velocity setpoint -> desired acceleration (PI) -> desired thrust vector -> collective thrust + body-rate
setpoint (attitude P on the thrust-axis error) -> body torques (rate P) -> mixer -> motor rpm.

Action interfaces (normalised to [-1, 1], see :class:`ActionScale`):
- ``velocity``: (vx, vy, vz, yaw rate) in the heading frame (x forward, y left, z up, gravity-aligned),
  tracked by the full cascade; the default for navigation (as in Chahine et al. 2023);
- ``ctbr``: collective thrust (0 = hover thrust, +1 = twice hover) and body rates p, q, r, tracked by
  the rate loop;
- ``rpm``: the four motor speeds, rpm = hover_rpm * (1 + a / 2), so -1..1 spans 0.5..1.5 x hover
  (1.5 x hover is the cf2x motor limit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from liquid_control.sim.quadrotor import (
    _LINK_FRAME,
    _ORIGIN,
    GRAVITY,
    Quadrotor,
    _apply_force,
    _apply_torque,
    _get_pose,
    _get_velocity,
)

ACTION_TYPES = ("velocity", "ctbr", "rpm")


@dataclass(frozen=True)
class Gains:
    """Controller gains (per second) and limits of the cascade."""

    k_vel_xy: float = 4.0  # (m/s^2) per (m/s)
    k_vel_z: float = 4.0
    ki_vel_xy: float = 2.0  # integral, for wind and mass changes
    ki_vel_z: float = 3.0
    i_limit: float = 2.0  # |integrated velocity error| limit, m
    i_band: float = 0.2  # velocity error is clipped to +-i_band before integration, m/s
    k_att: float = 10.0  # body-rate setpoint per rad of thrust-axis error
    k_rate_pq: float = 50.0  # angular acceleration per rad/s of roll/pitch rate error
    k_rate_r: float = 15.0
    max_tilt: float = math.radians(35.0)
    max_rate_pq: float = 8.0  # rad/s, clip of attitude-loop rate setpoints


@dataclass(frozen=True)
class ActionScale:
    """Physical size of a normalised action of +1."""

    speed_xy: float = 2.0  # m/s (velocity interface)
    speed_z: float = 1.0  # m/s
    yaw_rate: float = 1.5  # rad/s (velocity and ctbr interfaces)
    rate_pq: float = 4.0  # rad/s (ctbr)
    rpm_span: float = 0.5  # rpm = hover * (1 + rpm_span * a)


class FlightController:
    """Turns a setpoint of the current mode into motor rpm commands for one :class:`Quadrotor`."""

    def __init__(self, quad: Quadrotor, gains: Gains = Gains()) -> None:
        self.quad = quad
        self.gains = gains
        pr = quad.params
        self._tan_tilt = math.tan(gains.max_tilt)
        self._kp = (pr.ixx * gains.k_rate_pq, pr.iyy * gains.k_rate_pq, pr.izz * gains.k_rate_r)
        self._inv_lev4 = 1.0 / (4.0 * pr.lever)
        self._inv_c4 = pr.kf / (4.0 * pr.km)  # yaw torque -> per-motor thrust
        self._fmax = pr.max_motor_thrust
        self._inv_kf = 1.0 / pr.kf
        self._mass = pr.mass
        self.mode = "velocity"
        self.reset()

    def reset(self) -> None:
        """Clear integrators and set a zero-velocity (hover) setpoint."""
        self.mode = "velocity"
        self.v_des = (0.0, 0.0, 0.0)  # world frame
        self.yaw_rate_des = 0.0
        self.integ = [0.0, 0.0, 0.0]
        self.ctbr = (self.quad.params.weight, 0.0, 0.0, 0.0)
        h = self.quad.params.hover_rpm
        self.rpm_des = (h, h, h, h)

    # ------------------------------------------------------------------ setpoints
    def set_velocity(self, vx: float, vy: float, vz: float, yaw_rate: float) -> None:
        """Heading-frame velocity (m/s) and yaw rate (rad/s); rotated to the world frame once, here."""
        yaw = self.quad.yaw
        c, s = math.cos(yaw), math.sin(yaw)
        self.v_des = (c * vx - s * vy, s * vx + c * vy, vz)
        self.yaw_rate_des = yaw_rate
        self.mode = "velocity"

    def set_world_velocity(self, vx: float, vy: float, vz: float, yaw_rate: float) -> None:
        """World-frame velocity (m/s) and yaw rate (rad/s)."""
        self.v_des = (vx, vy, vz)
        self.yaw_rate_des = yaw_rate
        self.mode = "velocity"

    def set_ctbr(self, thrust: float, p: float, q: float, r: float) -> None:
        """Collective thrust (N) and body rates (rad/s)."""
        self.ctbr = (thrust, p, q, r)
        self.mode = "ctbr"

    def set_rpm(self, rpm: tuple[float, float, float, float]) -> None:
        """Direct motor speeds (rpm)."""
        self.rpm_des = tuple(rpm)
        self.mode = "rpm"

    # ------------------------------------------------------------------ cascade
    def velocity_to_ctbr(self, dt: float) -> tuple[float, float, float, float]:
        """Outer loops: velocity error -> (collective thrust N, p, q, r rad/s); integrates over ``dt``."""
        g = self.gains
        q = self.quad
        R = q.R
        vx, vy, vz = q.vel
        dx, dy, dz = self.v_des
        ex, ey, ez = dx - vx, dy - vy, dz - vz
        it = self.integ
        if dt > 0.0:  # integrate the error clipped to +-i_band, so setpoint steps barely wind it up
            band, lim = g.i_band, g.i_limit
            e = -band if ex < -band else (band if ex > band else ex)
            v = it[0] + e * dt
            it[0] = -lim if v < -lim else (lim if v > lim else v)
            e = -band if ey < -band else (band if ey > band else ey)
            v = it[1] + e * dt
            it[1] = -lim if v < -lim else (lim if v > lim else v)
            e = -band if ez < -band else (band if ez > band else ez)
            v = it[2] + e * dt
            it[2] = -lim if v < -lim else (lim if v > lim else v)
        kxy, kixy = g.k_vel_xy, g.ki_vel_xy
        ax = kxy * ex + kixy * it[0]
        ay = kxy * ey + kixy * it[1]
        gz = g.k_vel_z * ez + g.ki_vel_z * it[2] + GRAVITY
        if gz < 0.2 * GRAVITY:
            gz = 0.2 * GRAVITY
        amax = gz * self._tan_tilt
        an2 = ax * ax + ay * ay
        if an2 > amax * amax:
            k = amax / math.sqrt(an2)
            ax *= k
            ay *= k
        b3x, b3y, b3z = R[2], R[5], R[8]
        m = self._mass
        thrust = m * (ax * b3x + ay * b3y + gz * b3z)
        if thrust < 0.0:
            thrust = 0.0
        n = 1.0 / math.sqrt(ax * ax + ay * ay + gz * gz)
        ux, uy, uz = ax * n, ay * n, gz * n
        # rotation axis taking the current thrust axis to the desired one (world), then to the body frame
        cx = b3y * uz - b3z * uy
        cy = b3z * ux - b3x * uz
        cz = b3x * uy - b3y * ux
        ka = g.k_att
        pd = ka * (R[0] * cx + R[3] * cy + R[6] * cz)
        qd = ka * (R[1] * cx + R[4] * cy + R[7] * cz)
        mr = g.max_rate_pq
        if b3x * ux + b3y * uy + b3z * uz < 0.0:  # more than 90 degrees off: turn at full rate
            nn = math.sqrt(pd * pd + qd * qd) or 1.0
            pd, qd = pd / nn * mr, qd / nn * mr
        pd = -mr if pd < -mr else (mr if pd > mr else pd)
        qd = -mr if qd < -mr else (mr if qd > mr else qd)
        return thrust, pd, qd, self.yaw_rate_des

    def ctbr_to_rpm(self, thrust: float, pd: float, qd: float, rd: float) -> tuple[float, ...]:
        """Rate loop + mixer: collective thrust (N) and body-rate setpoint -> four motor rpm commands."""
        p_, q_, r_ = self.quad.rates
        kp = self._kp
        a = kp[0] * (pd - p_) * self._inv_lev4
        b = kp[1] * (qd - q_) * self._inv_lev4
        c = kp[2] * (rd - r_) * self._inv_c4
        t4 = 0.25 * thrust
        f0 = t4 - a - b - c
        f1 = t4 - a + b + c
        f2 = t4 + a + b - c
        f3 = t4 + a - b + c
        fmax = self._fmax
        hi = max(f0, f1, f2, f3)
        if hi > fmax:  # keep the attitude torques, give up collective thrust
            d = hi - fmax
            f0, f1, f2, f3 = f0 - d, f1 - d, f2 - d, f3 - d
        ik = self._inv_kf
        sq = math.sqrt
        return (
            sq(f0 * ik) if f0 > 0.0 else 0.0,
            sq(f1 * ik) if f1 > 0.0 else 0.0,
            sq(f2 * ik) if f2 > 0.0 else 0.0,
            sq(f3 * ik) if f3 > 0.0 else 0.0,
        )

    def substep(self) -> None:
        """Compute this substep's motor command from the latest state and apply it to the body."""
        mode = self.mode
        if mode == "velocity":
            rpm = self.ctbr_to_rpm(*self.velocity_to_ctbr(self.quad.dt))
        elif mode == "ctbr":
            rpm = self.ctbr_to_rpm(*self.ctbr)
        else:
            rpm = self.rpm_des
        self.quad.apply(rpm)

    def run(self, n: int, step_fn: Callable[[int], Any]) -> None:
        """``n`` times: :meth:`substep`, ``step_fn(client)`` (``stepSimulation``), ``quad.read_state()``.

        The fast path of the per-substep loop: the same float operations in the same order as those
        three methods (so trajectories are bit-identical; ``tests/sim/test_quadrotor.py`` pins this), with
        the controller, motor, force and read-back math inlined into one loop over local variables,
        because at 240 Hz the Python call and attribute overhead of the composed methods costs more
        than the physics step itself."""
        quad = self.quad
        g = self.gains
        mode = self.mode
        c = quad.client
        body = quad.body
        get_pose, get_vel, apply_force, apply_torque = _get_pose, _get_velocity, _apply_force, _apply_torque
        sq = math.sqrt
        # motor / body constants (Quadrotor.apply)
        alpha, mx, kf, km, lev = quad.motor_alpha, quad._max_rpm, quad._kf, quad._km, quad._lev_kf
        g0, g1, g2, g3 = quad.motor_gain
        ground_effect, prop_r = quad.ground_effect, quad._prop_r
        drag = quad.drag > 0.0
        kdxy, kdz = quad._drag_xy, quad._drag_z
        wind0, wind1, wind2 = quad.wind
        w = quad.rpm
        w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
        # controller constants (velocity_to_ctbr, ctbr_to_rpm)
        dt = quad.dt
        band, lim = g.i_band, g.i_limit
        kxy, kixy, kvz, kiz = g.k_vel_xy, g.ki_vel_xy, g.k_vel_z, g.ki_vel_z
        gz_min = 0.2 * GRAVITY
        tan_tilt, m, ka, mr = self._tan_tilt, self._mass, g.k_att, g.max_rate_pq
        kp0, kp1, kp2 = self._kp
        inv_lev4, inv_c4, fmax, ik = self._inv_lev4, self._inv_c4, self._fmax, self._inv_kf
        dx_, dy_, dz_ = self.v_des
        yaw_rate_des = self.yaw_rate_des
        it = self.integ
        i0, i1, i2 = it[0], it[1], it[2]
        thrust_c, pd_c, qd_c, rd_c = self.ctbr
        rpm_des = self.rpm_des
        # latest state (Quadrotor.read_state)
        pos, quat, vel, omega = quad.pos, quad.quat, quad.vel, quad.omega
        R = quad.R
        rates = quad.rates
        force = torque = None
        for _ in range(n):
            # ---------------------------------------------------------- controller -> motor commands
            if mode == "rpm":
                r0, r1, r2, r3 = rpm_des
            else:
                if mode == "velocity":  # velocity_to_ctbr
                    vx, vy, vz = vel
                    ex, ey, ez = dx_ - vx, dy_ - vy, dz_ - vz
                    if dt > 0.0:
                        e = -band if ex < -band else (band if ex > band else ex)
                        v = i0 + e * dt
                        i0 = -lim if v < -lim else (lim if v > lim else v)
                        e = -band if ey < -band else (band if ey > band else ey)
                        v = i1 + e * dt
                        i1 = -lim if v < -lim else (lim if v > lim else v)
                        e = -band if ez < -band else (band if ez > band else ez)
                        v = i2 + e * dt
                        i2 = -lim if v < -lim else (lim if v > lim else v)
                    ax = kxy * ex + kixy * i0
                    ay = kxy * ey + kixy * i1
                    gz = kvz * ez + kiz * i2 + GRAVITY
                    if gz < gz_min:
                        gz = gz_min
                    amax = gz * tan_tilt
                    an2 = ax * ax + ay * ay
                    if an2 > amax * amax:
                        k = amax / sq(an2)
                        ax *= k
                        ay *= k
                    b3x, b3y, b3z = R[2], R[5], R[8]
                    thrust = m * (ax * b3x + ay * b3y + gz * b3z)
                    if thrust < 0.0:
                        thrust = 0.0
                    nrm = 1.0 / sq(ax * ax + ay * ay + gz * gz)
                    ux, uy, uz = ax * nrm, ay * nrm, gz * nrm
                    cx = b3y * uz - b3z * uy
                    cy = b3z * ux - b3x * uz
                    cz = b3x * uy - b3y * ux
                    pd = ka * (R[0] * cx + R[3] * cy + R[6] * cz)
                    qd = ka * (R[1] * cx + R[4] * cy + R[7] * cz)
                    if b3x * ux + b3y * uy + b3z * uz < 0.0:
                        nn = sq(pd * pd + qd * qd) or 1.0
                        pd, qd = pd / nn * mr, qd / nn * mr
                    pd = -mr if pd < -mr else (mr if pd > mr else pd)
                    qd = -mr if qd < -mr else (mr if qd > mr else qd)
                    rd = yaw_rate_des
                else:
                    thrust, pd, qd, rd = thrust_c, pd_c, qd_c, rd_c
                # ctbr_to_rpm
                p_, q_, r_ = rates
                a = kp0 * (pd - p_) * inv_lev4
                b = kp1 * (qd - q_) * inv_lev4
                cc = kp2 * (rd - r_) * inv_c4
                t4 = 0.25 * thrust
                f0 = t4 - a - b - cc
                f1 = t4 - a + b + cc
                f2 = t4 + a + b - cc
                f3 = t4 + a - b + cc
                hi = max(f0, f1, f2, f3)
                if hi > fmax:
                    d = hi - fmax
                    f0, f1, f2, f3 = f0 - d, f1 - d, f2 - d, f3 - d
                r0 = sq(f0 * ik) if f0 > 0.0 else 0.0
                r1 = sq(f1 * ik) if f1 > 0.0 else 0.0
                r2 = sq(f2 * ik) if f2 > 0.0 else 0.0
                r3 = sq(f3 * ik) if f3 > 0.0 else 0.0
            # ---------------------------------------------------------- motors -> force/torque (apply)
            c0 = r0 * g0
            c1 = r1 * g1
            c2 = r2 * g2
            c3 = r3 * g3
            c0 = 0.0 if c0 < 0.0 else (mx if c0 > mx else c0)
            c1 = 0.0 if c1 < 0.0 else (mx if c1 > mx else c1)
            c2 = 0.0 if c2 < 0.0 else (mx if c2 > mx else c2)
            c3 = 0.0 if c3 < 0.0 else (mx if c3 > mx else c3)
            w0 = w0 + alpha * (c0 - w0)
            w1 = w1 + alpha * (c1 - w1)
            w2 = w2 + alpha * (c2 - w2)
            w3 = w3 + alpha * (c3 - w3)
            s0, s1, s2, s3 = w0 * w0, w1 * w1, w2 * w2, w3 * w3
            yaw_t = km * (s1 + s3 - s0 - s2)
            thrust = kf * (s0 + s1 + s2 + s3)
            tx = lev * (s2 + s3 - s0 - s1)
            ty = lev * (s1 + s2 - s0 - s3)
            if ground_effect:
                h = pos[2]
                h = prop_r if h < prop_r else h
                ratio = prop_r / (4.0 * h)
                thrust = thrust / (1.0 - ratio * ratio)
            fx = fy = 0.0
            fz = thrust
            if drag:
                ax = vel[0] - wind0
                ay = vel[1] - wind1
                az = vel[2] - wind2
                dx, dy, dz = -kdxy * ax, -kdxy * ay, -kdz * az
                fx = R[0] * dx + R[3] * dy + R[6] * dz
                fy = R[1] * dx + R[4] * dy + R[7] * dz
                fz += R[2] * dx + R[5] * dy + R[8] * dz
            force = (fx, fy, fz)
            torque = (tx, ty, yaw_t)
            apply_force(body, -1, force, _ORIGIN, _LINK_FRAME, c)
            apply_torque(body, -1, torque, _LINK_FRAME, c)
            # ---------------------------------------------------------- physics, then read back (read_state)
            step_fn(c)
            pos, quat = get_pose(body, c)
            vel, omega = get_vel(body, c)
            qx, qy, qz, qw = quat
            xx, yy, zz = qx * qx, qy * qy, qz * qz
            xy, xz, yz = qx * qy, qx * qz, qy * qz
            wx, wy, wz = qw * qx, qw * qy, qw * qz
            R = (
                1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy),
                2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx),
                2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy),
            )  # fmt: skip
            ox, oy, oz = omega
            rates = (
                R[0] * ox + R[3] * oy + R[6] * oz,
                R[1] * ox + R[4] * oy + R[7] * oz,
                R[2] * ox + R[5] * oy + R[8] * oz,
            )
        w[0], w[1], w[2], w[3] = w0, w1, w2, w3
        it[0], it[1], it[2] = i0, i1, i2
        quad.pos, quad.quat, quad.vel, quad.omega, quad.R, quad.rates = pos, quat, vel, omega, R, rates
        if force is not None:
            quad.last_force, quad.last_torque = force, torque


class ActionInterface:
    """Maps a normalised action in [-1, 1]^4 onto a :class:`FlightController` setpoint, and back."""

    def __init__(self, action_type: str, quad: Quadrotor, scale: ActionScale = ActionScale()) -> None:
        if action_type not in ACTION_TYPES:
            raise ValueError(f"unknown action_type {action_type!r}; choose one of {list(ACTION_TYPES)}")
        self.action_type = action_type
        self.quad = quad
        self.scale = scale
        self.space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)

    def apply(self, ctrl: FlightController, action: np.ndarray) -> None:
        """Set the controller's setpoint from one (clipped) normalised action."""
        a0, a1, a2, a3 = (min(1.0, max(-1.0, v)) for v in np.asarray(action, dtype=np.float64).tolist())
        s = self.scale
        if self.action_type == "velocity":
            ctrl.set_velocity(a0 * s.speed_xy, a1 * s.speed_xy, a2 * s.speed_z, a3 * s.yaw_rate)
        elif self.action_type == "ctbr":
            w = self.quad.params.weight
            ctrl.set_ctbr(w * (1.0 + a0), a1 * s.rate_pq, a2 * s.rate_pq, a3 * s.yaw_rate)
        else:
            h = self.quad.params.hover_rpm
            k = s.rpm_span
            ctrl.set_rpm((h * (1.0 + k * a0), h * (1.0 + k * a1), h * (1.0 + k * a2), h * (1.0 + k * a3)))

    def from_velocity(self, vx: float, vy: float, vz: float, yaw_rate: float) -> np.ndarray:
        """Normalised ``velocity`` action for a heading-frame velocity setpoint (clipped to [-1, 1])."""
        s = self.scale
        a = np.array([vx / s.speed_xy, vy / s.speed_xy, vz / s.speed_z, yaw_rate / s.yaw_rate])
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def from_ctbr(self, thrust: float, p: float, q: float, r: float) -> np.ndarray:
        """Normalised ``ctbr`` action for a collective thrust (N) and body rates (rad/s)."""
        s = self.scale
        w = self.quad.params.weight
        a = np.array([thrust / w - 1.0, p / s.rate_pq, q / s.rate_pq, r / s.yaw_rate])
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def from_rpm(self, rpm: tuple[float, ...]) -> np.ndarray:
        """Normalised ``rpm`` action for four motor speeds."""
        h = self.quad.params.hover_rpm
        a = (np.asarray(rpm, dtype=np.float64) / h - 1.0) / self.scale.rpm_span
        return np.clip(a, -1.0, 1.0).astype(np.float32)
