"""Compiled (numba) per-substep math of :meth:`liquid_control.sim.flight_control.FlightController.run`.

One call per physics substep does what ``FlightController.substep`` and ``Quadrotor.apply`` do in Python
(rotation matrix and body rates from the last read-back, the cascade for the current mode, mixer, motor
lag, thrust and torque model, ground effect, drag) and returns the body-frame force and torque to push to
PyBullet. The float operations are the Python methods' own, in the same order, without fastmath (so no
fused multiply-adds): trajectories are bit-identical to the composed methods
(``tests/sim/test_quadrotor.py`` pins this). At 240 Hz the Python version of this math cost more than the
physics step itself. Import fails cleanly when numba is missing; ``run`` then calls the Python methods.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}

MODES = {"velocity": 0, "ctbr": 1, "rpm": 2}

# indices of the constants array (FlightController._kernel_constants)
(K_DT, K_BAND, K_LIM, K_KXY, K_KIXY, K_KVZ, K_KIZ, K_GZ_MIN, K_TAN_TILT, K_MASS, K_KA, K_MR, K_KP0, K_KP1,
 K_KP2, K_INV_LEV4, K_INV_C4, K_FMAX, K_IK, K_ALPHA, K_MAX_RPM, K_KF, K_KM, K_LEV, K_GROUND, K_PROP_R,
 K_DRAG, K_DRAG_XY, K_DRAG_Z, K_GRAVITY) = range(30)  # fmt: skip
N_CONSTANTS = 30
# indices of the per-call array (setpoints and disturbances in; integrators and motor speeds in and out)
(U_VX, U_VY, U_VZ, U_YAW_RATE, U_THRUST, U_P, U_Q, U_R, U_RPM0, U_RPM1, U_RPM2, U_RPM3, U_G0, U_G1, U_G2,
 U_G3, U_WIND_X, U_WIND_Y, U_WIND_Z, U_I0, U_I1, U_I2, U_W0, U_W1, U_W2, U_W3) = range(26)  # fmt: skip
N_UPDATES = 26


@numba.njit(**_OPTS)
def substep(mode: int, k: np.ndarray, u: np.ndarray, pos: tuple, quat: tuple, vel: tuple,
            omega: tuple) -> tuple:  # pragma: no cover - compiled (tested through FlightController.run)
    """One substep's (force, torque), body frame, from the state read back after the last physics step;
    updates the integrators and motor speeds in ``u``."""
    qx, qy, qz, qw = quat
    xx, yy, zz = qx * qx, qy * qy, qz * qz
    xy, xz, yz = qx * qy, qx * qz, qy * qz
    wx, wy, wz = qw * qx, qw * qy, qw * qz
    R0, R1, R2 = 1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy)
    R3, R4, R5 = 2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx)
    R6, R7, R8 = 2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy)
    ox, oy, oz = omega
    p_ = R0 * ox + R3 * oy + R6 * oz
    q_ = R1 * ox + R4 * oy + R7 * oz
    r_ = R2 * ox + R5 * oy + R8 * oz
    vx, vy, vz = vel
    if mode == 2:
        r0, r1, r2, r3 = u[U_RPM0], u[U_RPM1], u[U_RPM2], u[U_RPM3]
    else:
        if mode == 0:  # FlightController.velocity_to_ctbr
            ex, ey, ez = u[U_VX] - vx, u[U_VY] - vy, u[U_VZ] - vz
            i0, i1, i2 = u[U_I0], u[U_I1], u[U_I2]
            dt = k[K_DT]
            if dt > 0.0:
                band, lim = k[K_BAND], k[K_LIM]
                e = -band if ex < -band else (band if ex > band else ex)
                v = i0 + e * dt
                i0 = -lim if v < -lim else (lim if v > lim else v)
                e = -band if ey < -band else (band if ey > band else ey)
                v = i1 + e * dt
                i1 = -lim if v < -lim else (lim if v > lim else v)
                e = -band if ez < -band else (band if ez > band else ez)
                v = i2 + e * dt
                i2 = -lim if v < -lim else (lim if v > lim else v)
                u[U_I0], u[U_I1], u[U_I2] = i0, i1, i2
            ax = k[K_KXY] * ex + k[K_KIXY] * i0
            ay = k[K_KXY] * ey + k[K_KIXY] * i1
            gz = k[K_KVZ] * ez + k[K_KIZ] * i2 + k[K_GRAVITY]
            if gz < k[K_GZ_MIN]:
                gz = k[K_GZ_MIN]
            amax = gz * k[K_TAN_TILT]
            an2 = ax * ax + ay * ay
            if an2 > amax * amax:
                s = amax / math.sqrt(an2)
                ax *= s
                ay *= s
            thrust = k[K_MASS] * (ax * R2 + ay * R5 + gz * R8)
            if thrust < 0.0:
                thrust = 0.0
            nrm = 1.0 / math.sqrt(ax * ax + ay * ay + gz * gz)
            ux, uy, uz = ax * nrm, ay * nrm, gz * nrm
            cx = R5 * uz - R8 * uy
            cy = R8 * ux - R2 * uz
            cz = R2 * uy - R5 * ux
            ka, mr = k[K_KA], k[K_MR]
            pd = ka * (R0 * cx + R3 * cy + R6 * cz)
            qd = ka * (R1 * cx + R4 * cy + R7 * cz)
            if R2 * ux + R5 * uy + R8 * uz < 0.0:  # more than 90 degrees off: turn at full rate
                nn = math.sqrt(pd * pd + qd * qd)
                if nn == 0.0:
                    nn = 1.0
                pd, qd = pd / nn * mr, qd / nn * mr
            pd = -mr if pd < -mr else (mr if pd > mr else pd)
            qd = -mr if qd < -mr else (mr if qd > mr else qd)
            rd = u[U_YAW_RATE]
        else:
            thrust, pd, qd, rd = u[U_THRUST], u[U_P], u[U_Q], u[U_R]
        # FlightController.ctbr_to_rpm
        a = k[K_KP0] * (pd - p_) * k[K_INV_LEV4]
        b = k[K_KP1] * (qd - q_) * k[K_INV_LEV4]
        c = k[K_KP2] * (rd - r_) * k[K_INV_C4]
        t4 = 0.25 * thrust
        f0 = t4 - a - b - c
        f1 = t4 - a + b + c
        f2 = t4 + a + b - c
        f3 = t4 + a - b + c
        hi = max(f0, f1, f2, f3)
        if hi > k[K_FMAX]:  # keep the attitude torques, give up collective thrust
            d = hi - k[K_FMAX]
            f0, f1, f2, f3 = f0 - d, f1 - d, f2 - d, f3 - d
        ik = k[K_IK]
        r0 = math.sqrt(f0 * ik) if f0 > 0.0 else 0.0
        r1 = math.sqrt(f1 * ik) if f1 > 0.0 else 0.0
        r2 = math.sqrt(f2 * ik) if f2 > 0.0 else 0.0
        r3 = math.sqrt(f3 * ik) if f3 > 0.0 else 0.0
    # Quadrotor.apply
    mx, alpha = k[K_MAX_RPM], k[K_ALPHA]
    c0 = r0 * u[U_G0]
    c1 = r1 * u[U_G1]
    c2 = r2 * u[U_G2]
    c3 = r3 * u[U_G3]
    c0 = 0.0 if c0 < 0.0 else (mx if c0 > mx else c0)
    c1 = 0.0 if c1 < 0.0 else (mx if c1 > mx else c1)
    c2 = 0.0 if c2 < 0.0 else (mx if c2 > mx else c2)
    c3 = 0.0 if c3 < 0.0 else (mx if c3 > mx else c3)
    w0 = u[U_W0] + alpha * (c0 - u[U_W0])
    w1 = u[U_W1] + alpha * (c1 - u[U_W1])
    w2 = u[U_W2] + alpha * (c2 - u[U_W2])
    w3 = u[U_W3] + alpha * (c3 - u[U_W3])
    u[U_W0], u[U_W1], u[U_W2], u[U_W3] = w0, w1, w2, w3
    s0, s1, s2, s3 = w0 * w0, w1 * w1, w2 * w2, w3 * w3
    yaw_t = k[K_KM] * (s1 + s3 - s0 - s2)
    thrust = k[K_KF] * (s0 + s1 + s2 + s3)
    lev = k[K_LEV]
    tx = lev * (s2 + s3 - s0 - s1)
    ty = lev * (s1 + s2 - s0 - s3)
    if k[K_GROUND] != 0.0:
        h = pos[2]
        pr = k[K_PROP_R]
        h = pr if h < pr else h
        ratio = pr / (4.0 * h)
        thrust = thrust / (1.0 - ratio * ratio)
    fx = fy = 0.0
    fz = thrust
    if k[K_DRAG] != 0.0:
        ax = vx - u[U_WIND_X]
        ay = vy - u[U_WIND_Y]
        az = vz - u[U_WIND_Z]
        kxy, kz = k[K_DRAG_XY], k[K_DRAG_Z]
        dx, dy, dz = -kxy * ax, -kxy * ay, -kz * az
        fx = R0 * dx + R3 * dy + R6 * dz
        fy = R1 * dx + R4 * dy + R7 * dz
        fz += R2 * dx + R5 * dy + R8 * dz
    return (fx, fy, fz), (tx, ty, yaw_t)
