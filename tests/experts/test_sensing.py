"""The sensing-limited drone teacher (``NavExpert(sensing_range=r)``): plans on what it has seen so far."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.planning import Planner, path_length
from liquid_control.sim.layouts import Layout

# a walls test episode whose only gap lies far off the start-goal line (shortest path 1.68x the straight
# line): every shipped DroneNav policy fails it
FAR_GAP_SEED = 642290861


def _wall_layout() -> Layout:
    """One wall across the arena at x = 0 with a 2 m gap near its end (y = 8); start and goal either side."""
    walls = np.array([[0.0, -1.5, 0.0, 0.1, 8.5, 2.0], [0.0, 9.5, 0.0, 0.1, 0.5, 2.0]])
    return Layout("walls", 0, "drone", (-10.0, -10.0, 10.0, 10.0), np.zeros((0, 4)), walls,
                  (-4.0, 0.0, 0.0), (4.0, 0.0), 4.0)


def test_planner_on_a_known_mask():
    """Unknown cells count as free (the arena edge stays known); all-known is the plain planner."""
    lay = _wall_layout()
    full = Planner(lay, inflate=0.35)
    assert path_length(full.path_from(lay.start[:2])) > 8.0 + 2.0  # around through the gap
    blind = Planner(lay, inflate=0.35, known=np.zeros_like(full.grid.occ))
    assert path_length(blind.path_from(lay.start[:2])) == pytest.approx(8.0, abs=0.05)  # straight through
    assert blind.grid.occ[0].all() and blind.grid.occ[:, -1].all()  # the edge band
    same = Planner(lay, inflate=0.35, known=np.ones_like(full.grid.occ))
    np.testing.assert_array_equal(same.dist, full.dist)
    with pytest.raises(ValueError, match="shape"):
        Planner(lay, inflate=0.35, known=np.ones((3, 3), bool))


def test_sensing_range_must_not_be_negative():
    env = gym.make("LiquidControl/DroneNav-v0", split="test")
    with pytest.raises(ValueError, match="sensing_range"):
        make_expert(env, {"sensing_range": -1.0})
    env.close()


def test_sensing_teacher_finds_a_gap_it_cannot_see_at_the_start():
    """On a walls layout whose gap is beyond sensor range, the teacher starts with a plan through the
    unseen part of the wall, learns the wall as it flies, replans, and still reaches the goal; it only
    ever knows cells within its range of where it has been."""
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "walls"})
    obs, _ = env.reset(seed=FAR_GAP_SEED)
    u = env.unwrapped
    full = make_expert(env)
    full.reset(u, obs)
    expert = make_expert(env, {"sensing_range": 6.0})
    expert.reset(u, obs)
    start = np.array(u.layout.start[:2])
    assert path_length(expert.path) < path_length(full.path) - 1.0  # it does not know the detour yet
    res = expert.planner.grid.res
    assert expert._known.sum() * res**2 == pytest.approx(np.pi * 6.0**2, rel=0.05)
    visited = [start]
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(expert.act(obs))
        visited.append(u.state["position"][:2].copy())
        done = term or trunc
    env.close()
    assert info["is_success"] and not info["collision"], info
    assert expert.replans > 0
    # every known cell lies within the range of some visited position (plus the grid's half diagonal)
    cells = np.argwhere(expert._known)
    xy = expert.planner.grid.to_xy(cells)
    path = np.asarray(visited)
    near = np.min(np.hypot(*(xy[:, None, :] - path[None, ::5, :]).transpose(2, 0, 1)), axis=1)
    assert near.max() <= 6.0 + 0.25 + res
