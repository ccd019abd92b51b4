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


@pytest.mark.parametrize("steering", ["pursuit", "arcs"])
@pytest.mark.parametrize("family", ["forest", "rooms", "maze"])
def test_expert_succeeds_on_test_layouts(family, steering):
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": family, "goal_distance": [5.0, 10.0]})
    expert = make_expert(env, {"steering": steering})
    assert isinstance(expert, RoverExpert) and expert.neuron_state() is None
    infos = [_episode(env, expert, seed) for seed in range(2)]
    env.close()
    assert all(i["is_success"] for i in infos), [(i["layout_id"], i["collision"]) for i in infos]
    assert all(i["path_length"] >= 0.9 * 5.0 for i in infos)


@pytest.mark.parametrize("steering", ["pursuit", "arcs"])
def test_expert_recovers_from_an_off_path_state(steering):
    """DAgger labels: after a learner drove elsewhere, the expert re-plans and still gets there."""
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": "rooms", "goal_distance": [5.0, 10.0]})
    expert = make_expert(env, {"steering": steering})
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


def test_arc_steering_is_a_function_of_the_pose_and_keeps_clear():
    """The arcs law has no memory (a second expert that saw none of the episode gives the same labels,
    also after random actions) and, driving itself, keeps its margin from every obstacle."""
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": "forest", "goal_distance": [5.0, 10.0]})
    a, b = RoverExpert(steering="arcs"), RoverExpert(steering="arcs")
    obs, _ = env.reset(seed=3)
    a.reset(env, obs)
    b.reset(env, obs)
    u = env.unwrapped
    rng = np.random.default_rng(1)
    for t in range(40):  # a wandering learner, labelled by a at every step
        label = a.act(obs)
        if t % 10 == 9:
            assert np.array_equal(label, b.act(obs))  # b was not consulted since the last check
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32) if t % 2 else label)
        assert not (term or trunc)
    obs, _ = env.reset(seed=5)
    a.reset(env, obs)
    closest = np.inf
    while True:
        obs, _, term, trunc, info = env.step(a.act(obs))
        closest = min(closest, u.scene.clearance(u.state["position"][:2]) - u.BODY_RADIUS)
        if term or trunc:
            break
    env.close()
    assert info["is_success"]
    assert closest >= 0.5 * a.arc_margin


def test_steering_option_is_checked():
    with pytest.raises(ValueError, match="steering"):
        RoverExpert(steering="magic")
    with pytest.raises(ValueError, match="arc_horizon"):
        RoverExpert(steering="arcs", arc_horizon=0.0)


def test_footprint_holds_the_wheels():
    from liquid_control.sim.rover import RoverSpec
    from liquid_control.sim.tasks.rover_nav import RoverNavEnv

    s = RoverSpec()
    assert s.footprint == pytest.approx(np.hypot(s.wheel_x, s.half_track) + s.wheel_radius)
    assert s.footprint > s.chassis_radius and RoverNavEnv.BODY_RADIUS == s.footprint


def test_arc_escape_moves_away_from_an_obstacle_it_was_driven_next_to():
    """Drive blind at an obstacle until 3 cm short of it; the escaping arcs teacher then gets clear."""
    env = gym.make("LiquidControl/RoverNav-v0", split="test", layout={"family": "forest"})
    expert = make_expert(env, {"steering": "arcs", "arc_escape": 0.06})
    u = env.unwrapped
    for seed in range(2_000_000, 2_000_020):
        obs, _ = env.reset(seed=seed)
        for _ in range(200):
            clear = u.scene.clearance(u.position[:2]) - u.BODY_RADIUS
            if clear < 0.03:
                break
            obs, _, term, trunc, _ = env.step(np.array([0.4, 0.0]))
            if term or trunc:
                break
        else:
            continue
        if u.collision or clear >= 0.03:
            continue
        expert.reset(env, obs)
        first = expert.act(obs)
        assert first[0] in (0.0, pytest.approx(0.25))  # creeps away, or turns in place
        for _ in range(40):
            obs, _, term, trunc, info = env.step(expert.act(obs))
            assert not info["collision"]
            if term or trunc:
                break
        assert u.scene.clearance(u.position[:2]) - u.BODY_RADIUS > 0.06
        break
    else:
        pytest.fail("no seed brought the blind rover next to an obstacle")
    with pytest.raises(ValueError, match="arc_escape"):
        make_expert(env, {"steering": "arcs", "arc_escape": -1.0})
    env.close()
