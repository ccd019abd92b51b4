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

try:
    from liquid_control.sim import _flight_numba
except ImportError:  # pragma: no cover - numba missing: FlightController.run calls the Python methods
    _flight_numba = None

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
        self._k: np.ndarray | None = None  # constants of the compiled substep, built on first use
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

    def _kernel_constants(self) -> np.ndarray:
        """The constants of the compiled substep (gains, limits, motor and body model), in its layout."""
        q, g, kc = self.quad, self.gains, _flight_numba
        k = np.zeros(kc.N_CONSTANTS)
        k[[kc.K_DT, kc.K_BAND, kc.K_LIM, kc.K_KXY, kc.K_KIXY, kc.K_KVZ, kc.K_KIZ]] = (
            q.dt, g.i_band, g.i_limit, g.k_vel_xy, g.ki_vel_xy, g.k_vel_z, g.ki_vel_z)
        k[[kc.K_GZ_MIN, kc.K_TAN_TILT, kc.K_MASS, kc.K_KA, kc.K_MR, kc.K_GRAVITY]] = (
            0.2 * GRAVITY, self._tan_tilt, self._mass, g.k_att, g.max_rate_pq, GRAVITY)
        k[[kc.K_KP0, kc.K_KP1, kc.K_KP2]] = self._kp
        k[[kc.K_INV_LEV4, kc.K_INV_C4, kc.K_FMAX, kc.K_IK]] = (
            self._inv_lev4, self._inv_c4, self._fmax, self._inv_kf)
        k[[kc.K_ALPHA, kc.K_MAX_RPM, kc.K_KF, kc.K_KM, kc.K_LEV]] = (
            q.motor_alpha, q._max_rpm, q._kf, q._km, q._lev_kf)
        k[[kc.K_GROUND, kc.K_PROP_R, kc.K_DRAG, kc.K_DRAG_XY, kc.K_DRAG_Z]] = (
            float(q.ground_effect), q._prop_r, float(q.drag > 0.0), q._drag_xy, q._drag_z)
        return k

    def run(self, n: int, step_fn: Callable[[int], Any]) -> None:
        """``n`` times: :meth:`substep`, ``step_fn(client)`` (``stepSimulation``), ``quad.read_state()``.

        The fast path of the per-substep loop: with numba, the controller and motor math of each substep
        is one compiled call (``sim/_flight_numba.py``: the same float operations in the same order as
        :meth:`substep` and ``Quadrotor.apply``, so trajectories are bit-identical to those methods;
        ``tests/sim/test_quadrotor.py`` pins this) around the four PyBullet calls, because at 240 Hz the
        Python version of that math costs more than the physics step itself. Without numba, the methods."""
        quad = self.quad
        c = quad.client
        if _flight_numba is None:
            for _ in range(n):
                self.substep()
                step_fn(c)
                quad.read_state()
            return
        if self._k is None:
            self._k = self._kernel_constants()
        k = self._k
        it, w = self.integ, quad.rpm
        u = np.array((*self.v_des, self.yaw_rate_des, *self.ctbr, *self.rpm_des, *quad.motor_gain, *quad.wind,
                      it[0], it[1], it[2], w[0], w[1], w[2], w[3]))  # fmt: skip
        kernel, mode = _flight_numba.substep, _flight_numba.MODES[self.mode]
        body = quad.body
        get_pose, get_vel, apply_force, apply_torque = _get_pose, _get_velocity, _apply_force, _apply_torque
        pos, quat, vel, omega = quad.pos, quad.quat, quad.vel, quad.omega
        force = torque = None
        for _ in range(n):
            force, torque = kernel(mode, k, u, pos, quat, vel, omega)
            apply_force(body, -1, force, _ORIGIN, _LINK_FRAME, c)
            apply_torque(body, -1, torque, _LINK_FRAME, c)
            step_fn(c)
            pos, quat = get_pose(body, c)
            vel, omega = get_vel(body, c)
        kc = _flight_numba
        w[0], w[1], w[2], w[3] = u[kc.U_W0:kc.U_W3 + 1].tolist()
        it[0], it[1], it[2] = u[kc.U_I0:kc.U_I2 + 1].tolist()
        quad.set_state(pos, quat, vel, omega)
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
