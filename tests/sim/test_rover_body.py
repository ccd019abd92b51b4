"""Rover body physics: wheel velocity control reaches the commanded twist; friction scale causes slip."""

from __future__ import annotations

import numpy as np
import pytest

from liquid_control.sim.layouts import Layout
from liquid_control.sim.rover import RoverBody, RoverSpec
from liquid_control.sim.world import World

EMPTY = Layout("forest", 0, "rover", (-20.0, -20.0, 20.0, 20.0), np.zeros((0, 4)), np.zeros((0, 6)),
               (0.0, 0.0, 0.0), (5.0, 0.0), 1.0)


@pytest.fixture()
def world():
    w = World()
    w.reset(EMPTY)
    yield w
    w.close()


def _drive(world, v, w, seconds, friction_scale=1.0, yaw=0.3):
    body = RoverBody(world.client, RoverSpec(), (0.0, 0.0, yaw), friction_scale=friction_scale)
    body.drive(v, w)
    world.step(int(seconds * 240))
    return body


def test_forward_speed_and_heading(world):
    body = _drive(world, 1.0, 0.0, 2.0)
    pos, yaw, lin, ang = body.state()
    assert np.hypot(*lin[:2]) == pytest.approx(1.0, abs=0.05)
    assert yaw == pytest.approx(0.3, abs=0.03)  # drives straight along its heading
    assert np.arctan2(lin[1], lin[0]) == pytest.approx(0.3, abs=0.03)
    assert 0.08 < pos[2] < 0.12  # stays on its wheels
    wl, wr = body.wheel_speeds()
    assert wl == pytest.approx(1.0 / 0.05, rel=0.05) and wr == pytest.approx(wl, rel=0.02)


def test_turn_in_place_rate_and_direction(world):
    body = _drive(world, 0.0, 2.0, 1.0)
    pos, _, lin, ang = body.state()
    assert ang[2] == pytest.approx(2.0, abs=0.1)  # counter-clockwise for positive w
    assert np.hypot(*pos[:2]) < 0.1


def test_acceleration_is_limited_and_low_friction_slips(world):
    grip = _drive(world, 1.0, 0.0, 0.1)
    v_grip = np.hypot(*grip.state()[2][:2])
    assert 0.1 < v_grip < 0.9  # the motors cannot reach 1 m/s in 0.1 s
    world.reset(EMPTY)
    ice = _drive(world, 1.0, 0.0, 0.1, friction_scale=0.05)
    v_ice = np.hypot(*ice.state()[2][:2])
    assert v_ice < 0.6 * v_grip  # wheels spin on ice: less traction, slower
