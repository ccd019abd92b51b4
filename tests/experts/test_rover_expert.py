"""The rover expert reaches the goal on test layouts of every family (the big table is a script)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.rover import RoverExpert


def _episode(env, expert, seed):
    obs, info = env.reset(seed=seed)
    expert.reset(env, obs)
    while True:
        a = expert.act(obs)
        assert env.action_space.contains(a)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            return info


@pytest.mark.parametrize("family", ["forest", "rooms", "maze"])
def test_expert_succeeds_on_test_layouts(family):
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": family, "goal_distance": [5.0, 10.0]})
    expert = make_expert(env)
    assert isinstance(expert, RoverExpert) and expert.neuron_state() is None
    infos = [_episode(env, expert, seed) for seed in range(2)]
    env.close()
    assert all(i["is_success"] for i in infos), [(i["layout_id"], i["collision"]) for i in infos]
    assert all(i["path_length"] >= 0.9 * 5.0 for i in infos)


def test_expert_recovers_from_an_off_path_state():
    """DAgger labels: after a learner drove elsewhere, the expert re-plans and still gets there."""
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": "rooms", "goal_distance": [5.0, 10.0]})
    expert = make_expert(env)
    obs, _ = env.reset(seed=4)
    expert.reset(env, obs)
    rng = np.random.default_rng(0)
    for _ in range(15):  # a wandering learner
        obs, _, term, trunc, _ = env.step(rng.uniform(-0.3, 0.3, 2) + np.array([0.3, 0.0]))
        assert not (term or trunc)
    while True:
        obs, _, term, trunc, info = env.step(expert.act(obs))
        if term or trunc:
            break
    env.close()
    assert info["is_success"]
