"""The experts' opt-in ``slow_clearance`` law: slower only near obstacles, by the clearance ratio."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.planning import near_obstacle_speed_scale


def test_speed_scale_is_the_clearance_ratio_between_the_floor_and_one():
    assert near_obstacle_speed_scale(0.1, 0.0) == 1.0  # off
    assert near_obstacle_speed_scale(0.9, 0.6) == 1.0  # far from obstacles
    assert near_obstacle_speed_scale(0.3, 0.6) == pytest.approx(0.5)
    assert near_obstacle_speed_scale(0.05, 0.6) == pytest.approx(0.3)  # the floor
    assert near_obstacle_speed_scale(-0.1, 0.6, floor=0.2) == pytest.approx(0.2)


@pytest.mark.parametrize(("env_id", "family", "c"), [("LiquidControl/DroneNav-v0", "forest", 0.6),
                                                     ("LiquidControl/RoverNav-v0", "forest", 0.4)])
def test_slow_teacher_scales_the_default_speed_near_obstacles_only(env_id, family, c):
    """Along the default expert's own flight, both label every state: the headings agree, the slow
    teacher's speed is the default's times the clearance factor, and it still reaches the goal."""
    env = gym.make(env_id, split="test", layout={"family": family})
    fast, slow = make_expert(env), make_expert(env, {"slow_clearance": c})
    near = far = 0
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        fast.reset(env, obs)
        slow.reset(env, obs)
        done = False
        while not done:
            u = env.unwrapped
            clear = float(u.scene.clearance(np.asarray(u.state["position"][:2]))) - u.BODY_RADIUS
            a, b = fast.act(obs), slow.act(obs)
            scale = near_obstacle_speed_scale(clear, c)
            if u.KIND == "rover":  # (v, w): w alike; v scaled (then the safety check may cut it further)
                assert b[1] == pytest.approx(a[1], abs=1e-6)
                assert b[0] <= max(a[0], 0.0) * scale + 1e-6
                if clear > c:
                    assert b[0] == pytest.approx(a[0], abs=1e-6)
            else:  # body-frame (vx, vy, vz, yaw rate): the horizontal command scaled, the rest alike
                np.testing.assert_allclose(b[:2], a[:2] * scale, atol=1e-5)
                np.testing.assert_allclose(b[2:], a[2:], atol=1e-6)
            near += clear < c
            far += clear > c
            obs, _, term, trunc, info = env.step(a)
            done = term or trunc
    assert near > 5 and far > 5  # both regimes were exercised
    obs, _ = env.reset(seed=4)
    slow.reset(env, obs)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(slow.act(obs))
        done = term or trunc
    assert info["is_success"], info
    env.close()


@pytest.mark.parametrize("env_id", ["LiquidControl/DroneNav-v0", "LiquidControl/RoverNav-v0"])
def test_negative_slow_clearance_is_a_clear_error(env_id):
    env = gym.make(env_id, split="test")
    with pytest.raises(ValueError, match="slow_clearance"):
        make_expert(env, {"slow_clearance": -0.1})
    env.close()


def test_slow_arcs_teacher_drives_the_same_arc_slower_near_obstacles():
    """Rover "arcs" law: the slow teacher's (v, w) is the plain one's scaled by the smallest clearance
    along the chosen arc (so the curvature, the arc it scored, stays), and it still reaches the goal."""
    env = gym.make("LiquidControl/RoverNav-v0", split="test", layout={"family": "rooms"})
    plain = make_expert(env, {"steering": "arcs"})
    slow = make_expert(env, {"steering": "arcs", "slow_clearance": 0.5})
    obs, _ = env.reset(seed=3)
    plain.reset(env, obs)
    slow.reset(env, obs)
    scaled = done = False
    while not done:
        a, b = plain.act(obs), slow.act(obs)
        if a[0] > 0:
            assert b[0] <= a[0] + 1e-6 and b[0] >= 0.3 * a[0] - 1e-6
            assert b[1] * a[0] == pytest.approx(a[1] * b[0], abs=1e-5)  # same curvature w / v
            scaled |= b[0] < a[0] - 1e-6
        else:  # turning in place: unchanged
            np.testing.assert_allclose(b, a, atol=1e-6)
        obs, _, term, trunc, info = env.step(b)
        done = term or trunc
    assert scaled and info["is_success"], info
    env.close()
