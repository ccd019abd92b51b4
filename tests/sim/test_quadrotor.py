"""Analytic physics checks of the quadrotor body and its cascaded flight controller."""

from __future__ import annotations

import math

import numpy as np
import pybullet as p
import pytest

from liquid_control.sim.flight_control import ActionInterface, FlightController
from liquid_control.sim.quadrotor import CF2X, GRAVITY, Quadrotor, quat_to_matrix

DT = 1.0 / 240.0


@pytest.fixture()
def client():
    c = p.connect(p.DIRECT)
    p.setGravity(0, 0, -GRAVITY, physicsClientId=c)
    p.setTimeStep(DT, physicsClientId=c)
    yield c
    p.disconnect(c)


def _quad(client: int, **kw) -> Quadrotor:
    kw.setdefault("drag", 0.0)
    kw.setdefault("ground_effect", False)
    return Quadrotor(client, dt=DT, **kw)


def _run(q: Quadrotor, n: int, rpm=None, ctrl: FlightController | None = None) -> None:
    for _ in range(n):
        if ctrl is not None:
            ctrl.substep()
        else:
            q.apply(rpm)
        p.stepSimulation(physicsClientId=q.client)
        q.read_state()


def test_cf2x_constants():
    assert CF2X.hover_rpm == pytest.approx(14468, rel=2e-3)
    assert CF2X.max_rpm == pytest.approx(21703, rel=2e-3)
    assert CF2X.max_rpm / CF2X.hover_rpm == pytest.approx(1.5)


def test_body_has_cf2x_mass_and_inertia(client):
    q = _quad(client)
    info = p.getDynamicsInfo(q.body, -1, physicsClientId=client)
    assert info[0] == pytest.approx(0.027)
    assert info[2] == pytest.approx((1.4e-5, 1.4e-5, 2.17e-5))
    q.set_mass_scale(1.5)
    assert p.getDynamicsInfo(q.body, -1, physicsClientId=client)[0] == pytest.approx(0.0405)


def test_hover_rpm_holds_altitude(client):
    q = _quad(client)
    q.reset((0.0, 0.0, 1.0))
    h = CF2X.hover_rpm
    _run(q, 480, rpm=(h, h, h, h))  # 2 s
    assert abs(q.pos[2] - 1.0) < 0.01
    assert math.hypot(q.pos[0], q.pos[1]) < 0.01


def test_ten_percent_over_hover_rpm_accelerates_at_021g(client):
    q = _quad(client)
    r = 1.1 * CF2X.hover_rpm
    q.reset((0.0, 0.0, 1.0), rpm=r)
    v0 = q.vel[2]
    n = 120
    _run(q, n, rpm=(r, r, r, r))
    acc = (q.vel[2] - v0) / (n * DT)
    assert acc == pytest.approx((1.21 - 1.0) * GRAVITY, rel=0.03)


def test_motor_lag_is_first_order(client):
    q = _quad(client)
    h = CF2X.hover_rpm
    q.reset((0.0, 0.0, 1.0), rpm=h)
    target = 1.2 * h
    n = round(CF2X.motor_tau / DT * 3)  # three time constants
    _run(q, n, rpm=(target,) * 4)
    frac = (q.rpm[0] - h) / (target - h)
    assert frac == pytest.approx(1.0 - math.exp(-n * DT / CF2X.motor_tau), abs=1e-9)


def test_free_fall_matches_g(client):
    q = _quad(client)
    q.reset((0.0, 0.0, 5.0), rpm=0.0)
    n = 120
    _run(q, n, rpm=(0.0,) * 4)
    assert q.vel[2] / (n * DT) == pytest.approx(-GRAVITY, rel=1e-3)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_yaw_torque_turns_at_predicted_rate(client, sign):
    q = _quad(client)
    h = CF2X.hover_rpm
    d = 0.05 * sign
    # equal total thrust, differential yaw torque: motors 1 and 3 (+ torque) faster when sign > 0
    rpm = (h * math.sqrt(1 - d), h * math.sqrt(1 + d), h * math.sqrt(1 - d), h * math.sqrt(1 + d))
    q.reset((0.0, 0.0, 1.0))
    q.rpm = list(rpm)  # motors already at speed
    n = 48
    _run(q, n, rpm=rpm)
    tau = CF2X.km * h * h * 4 * d
    expected = tau / CF2X.izz * n * DT
    assert q.rates[2] == pytest.approx(expected, rel=1e-3)
    assert np.sign(q.rates[2]) == np.sign(sign)
    assert abs(q.pos[2] - 1.0) < 1e-3  # no net thrust change


def test_ground_effect_adds_lift_near_ground(client):
    q = _quad(client, ground_effect=True)
    h = CF2X.hover_rpm
    q.reset((0.0, 0.0, 0.03))
    _run(q, 60, rpm=(h,) * 4)
    assert q.pos[2] > 0.03 + 1e-3


def test_drag_opposes_air_relative_velocity(client):
    q = _quad(client, drag=1.0)
    h = CF2X.hover_rpm
    q.reset((0.0, 0.0, 2.0), vel=(1.0, 0.0, 0.0))
    _run(q, 48, rpm=(h,) * 4)
    assert 0.0 < q.vel[0] < 1.0
    q.reset((0.0, 0.0, 2.0))
    q.wind = (1.0, 0.0, 0.0)
    _run(q, 48, rpm=(h,) * 4)
    assert q.vel[0] > 0.0


def test_quat_to_matrix_matches_pybullet():
    rng = np.random.default_rng(0)
    for _ in range(5):
        quat = p.getQuaternionFromEuler(rng.uniform(-1, 1, 3).tolist())
        ours = np.array(quat_to_matrix(*quat)).reshape(3, 3)
        ref = np.array(p.getMatrixFromQuaternion(quat)).reshape(3, 3)
        np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("yaw", [0.0, 1.2])
def test_velocity_controller_tracks_1mps_step(client, yaw):
    q = _quad(client)
    ctrl = FlightController(q)
    q.reset((0.0, 0.0, 1.0), rpy=(0.0, 0.0, yaw))
    ctrl.reset()
    ctrl.set_velocity(1.0, 0.0, 0.0, 0.0)  # heading frame: forward
    _run(q, 240, ctrl=ctrl)
    fwd = q.vel[0] * math.cos(yaw) + q.vel[1] * math.sin(yaw)
    side = -q.vel[0] * math.sin(yaw) + q.vel[1] * math.cos(yaw)
    assert fwd == pytest.approx(1.0, abs=0.1)
    assert abs(side) < 0.05 and abs(q.vel[2]) < 0.05
    _run(q, 120, ctrl=ctrl)  # stays on it
    fwd = q.vel[0] * math.cos(yaw) + q.vel[1] * math.sin(yaw)
    assert fwd == pytest.approx(1.0, abs=0.1)


def test_velocity_controller_climbs_and_yaws(client):
    q = _quad(client)
    ctrl = FlightController(q)
    q.reset((0.0, 0.0, 1.0))
    ctrl.set_velocity(0.0, 0.0, 0.5, 1.0)
    _run(q, 240, ctrl=ctrl)
    assert q.vel[2] == pytest.approx(0.5, abs=0.05)
    assert q.rates[2] == pytest.approx(1.0, abs=0.05)


def test_velocity_controller_rejects_wind_and_mass(client):
    q = _quad(client, drag=1.0)
    q.set_mass_scale(1.2)
    ctrl = FlightController(q)
    q.reset((0.0, 0.0, 1.0))
    q.wind = (1.5, 0.0, 0.0)
    ctrl.set_velocity(0.0, 0.0, 0.0, 0.0)
    _run(q, 240 * 4, ctrl=ctrl)
    assert math.sqrt(sum(v * v for v in q.vel)) < 0.05


def test_rate_controller_tracks_body_rates(client):
    q = _quad(client)
    ctrl = FlightController(q)
    q.reset((0.0, 0.0, 2.0))
    ctrl.set_ctbr(CF2X.weight, 1.0, -0.5, 0.5)
    _run(q, 48, ctrl=ctrl)
    np.testing.assert_allclose(q.rates, (1.0, -0.5, 0.5), atol=0.1)


def test_action_interfaces_round_trip(client):
    q = _quad(client)
    q.reset((0.0, 0.0, 1.0))
    ctrl = FlightController(q)
    vel = ActionInterface("velocity", q)
    vel.apply(ctrl, vel.from_velocity(1.0, -0.5, 0.2, 0.3))
    np.testing.assert_allclose(ctrl.v_des, (1.0, -0.5, 0.2), atol=1e-6)
    ctbr = ActionInterface("ctbr", q)
    ctbr.apply(ctrl, np.zeros(4))
    assert ctrl.ctbr[0] == pytest.approx(CF2X.weight)
    rpm = ActionInterface("rpm", q)
    rpm.apply(ctrl, np.zeros(4))
    np.testing.assert_allclose(ctrl.rpm_des, (CF2X.hover_rpm,) * 4)
    rpm.apply(ctrl, np.ones(4))
    np.testing.assert_allclose(ctrl.rpm_des, (CF2X.max_rpm,) * 4)
    with pytest.raises(ValueError, match="action_type"):
        ActionInterface("thrust", q)


def _state(q: Quadrotor, ctrl: FlightController) -> tuple:
    return (q.pos, q.quat, q.vel, q.omega, q.R, q.rates, tuple(q.rpm), q.last_force, q.last_torque,
            tuple(ctrl.integ))


@pytest.mark.parametrize("drag,ground_effect,motor_lag", [(1.0, True, True), (0.0, False, False)])
def test_fused_substep_loop_is_bit_identical_to_the_composed_methods(drag, ground_effect, motor_lag):
    """FlightController.run (the fast path) == substep + stepSimulation + read_state, bit for bit."""
    runs = []
    for fused in (False, True):
        rng = np.random.default_rng(0)
        c = p.connect(p.DIRECT)
        try:
            p.setGravity(0, 0, -GRAVITY, physicsClientId=c)
            p.setTimeStep(DT, physicsClientId=c)
            p.createMultiBody(0, p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c), physicsClientId=c)
            q = Quadrotor(c, dt=DT, drag=drag, ground_effect=ground_effect, motor_lag=motor_lag)
            ctrl = FlightController(q)
            q.reset((0.2, -0.1, 0.4), (0.3, -0.2, 1.0), (0.5, 0.1, -0.2), (0.5, -0.4, 0.3))
            trace = []
            for k, (a, mode) in enumerate(zip(rng.uniform(-1, 1, (90, 4)), ["velocity", "ctbr", "rpm"] * 30,
                                              strict=True)):
                ActionInterface(mode, q).apply(ctrl, a)
                q.wind = tuple(rng.normal(0.0, 1.0, 3))
                q.motor_gain = tuple(1.0 + 0.05 * rng.standard_normal(4))
                if k % 7 == 0:  # states far from hover: large errors, saturations, >90 degree tilt
                    q.reset(tuple(rng.uniform(0.05, 2.0, 3)), tuple(rng.uniform(-3, 3, 3)),
                            tuple(rng.uniform(-5, 5, 3)), tuple(rng.uniform(-20, 20, 3)))
                if fused:
                    ctrl.run(8, p.stepSimulation)
                else:
                    for _ in range(8):
                        ctrl.substep()
                        p.stepSimulation(c)
                        q.read_state()
                trace.append(_state(q, ctrl))
            runs.append(trace)
        finally:
            p.disconnect(c)
    assert runs[0] == runs[1]  # exact float equality everywhere
