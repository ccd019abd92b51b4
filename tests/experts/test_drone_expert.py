"""Drone experts: they fly the tasks they are privileged for, on unseen (test-split) episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.drone import HoverExpert, NavExpert


def _episode(env, expert, seed: int) -> dict:
    obs, info = env.reset(seed=seed)
    expert.reset(env, obs)
    assert expert.neuron_state() is None
    done = False
    while not done:
        a = expert.act(obs)
        assert env.action_space.contains(a)
        obs, _, te, tr, info = env.step(a)
        done = te or tr
    return info


@pytest.mark.parametrize("action_type", ["velocity", "ctbr", "rpm"])
def test_hover_expert_holds_the_point(action_type):
    env = gym.make("LiquidControl/DroneHover-v0", split="test", action_type=action_type)
    expert = make_expert(env)
    assert isinstance(expert, HoverExpert)
    for seed in range(2):
        info = _episode(env, expert, seed)
        assert info["is_success"], info
    env.close()


@pytest.mark.parametrize("steering", ["pursuit", "arcs"])
@pytest.mark.parametrize("family", ["forest", "walls", "city"])
def test_nav_expert_reaches_goal_on_test_layouts(family, steering):
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": family})
    expert = make_expert(env, {"steering": steering})
    assert isinstance(expert, NavExpert)
    results = [_episode(env, expert, seed) for seed in range(2)]
    assert all(r["is_success"] for r in results), results
    assert all(not r["collision"] for r in results)
    env.close()


@pytest.mark.parametrize("steering", ["pursuit", "arcs"])
def test_nav_expert_recovers_from_a_displaced_state(steering):
    """DAgger labels learner states: after a shove off the path the expert replans and still arrives."""
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "forest"})
    expert = make_expert(env, {"steering": steering})
    obs, _ = env.reset(seed=5)
    expert.reset(env, obs)
    for _ in range(30):
        obs, *_ = env.step(expert.act(obs))
    u = env.unwrapped
    q = u.rig.quad
    # shove sideways by 0.6 m of velocity (a learner's mistake)
    import pybullet as p

    p.resetBaseVelocity(q.body, (q.vel[0] - 1.0 * np.sin(q.yaw), q.vel[1] + 1.0 * np.cos(q.yaw), 0.0),
                        q.omega, physicsClientId=q.client)
    q.read_state()
    done, info = False, {}
    while not done:
        obs, _, te, tr, info = env.step(expert.act(obs))
        done = te or tr
    assert info["is_success"], info
    env.close()


def test_arc_steering_labels_depend_on_the_state_only():
    """A second arcs expert that saw none of the episode labels every state as the one that flew it."""
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "walls"})
    a, b = NavExpert(steering="arcs"), NavExpert(steering="arcs")
    obs, _ = env.reset(seed=2)
    a.reset(env, obs)
    b.reset(env, obs)
    for t in range(60):
        label = a.act(obs)
        if t % 15 == 14:
            assert np.array_equal(label, b.act(obs))
        obs, _, te, tr, _ = env.step(label)
        assert not (te or tr)
    env.close()
    with pytest.raises(ValueError, match="steering"):
        NavExpert(steering="magic")
    with pytest.raises(ValueError, match="sensing_range"):
        NavExpert(steering="arcs", sensing_range=6.0)
