"""Clearance-aware planning (opt-in expert option): default paths unchanged, careful paths keep away."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.planning import Planner, path_length, shortest_path_length
from liquid_control.learn.rollout import expert_spec, make_controller
from liquid_control.sim.layouts import Layout, distance_field, generate

LAYOUTS = [("rover", "rooms"), ("rover", "forest"), ("drone", "walls")]


def _door_layout() -> Layout:
    """A wall at x=0 with a 1.2 m gap centred at y=0; start and goal on either side, off the gap's axis."""
    walls = np.array([[0.0, -5.6, 0.0, 0.1, 5.0, 0.5], [0.0, 5.6, 0.0, 0.1, 5.0, 0.5]])
    return Layout("rooms", 0, "rover", (-10.0, -10.0, 10.0, 10.0), np.zeros((0, 4)), walls,
                  (-3.0, -3.0, 0.0), (3.0, 3.0), 1.0)


def _min_distance(path: np.ndarray, points: np.ndarray) -> float:
    """Smallest distance from the polyline ``path`` to any of ``points``."""
    pts = np.concatenate([np.linspace(a, b, 200) for a, b in zip(path[:-1], path[1:], strict=True)])
    return float(np.min(np.hypot(*(pts[:, None, :] - points[None, :, :]).transpose(2, 0, 1))))


@pytest.mark.parametrize("kind, family", LAYOUTS)
def test_default_planner_is_the_cost_free_shortest_path(kind, family):
    lay = generate(family, 2_000_001, kind=kind)
    planner = Planner(lay, inflate=0.35)
    assert planner.clearance is None and planner.clearance_weight == 0.0
    goal = planner.grid.to_xy(np.argwhere(planner.dist == 0.0))[0]
    ref_dist, ref_pred = distance_field(planner.grid, goal)
    np.testing.assert_array_equal(planner.dist, ref_dist)
    np.testing.assert_array_equal(planner.pred, ref_pred)
    # a unit cost reproduces the plain field exactly (so w > 0 is the only thing that changes paths)
    dist, pred = distance_field(planner.grid, goal, cost=np.ones(planner.grid.occ.shape))
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(pred, ref_pred)
    start = lay.start[:2]
    np.testing.assert_array_equal(planner.path_from(start), Planner(lay, inflate=0.35,
                                                                    clearance_weight=0.0).path_from(start))
    # the SPL reference has no clearance option: it is the plain smoothed shortest path
    assert shortest_path_length(lay, inflate=0.35) == pytest.approx(path_length(planner.path_from(start)))


def test_careful_path_passes_a_doorway_nearer_its_middle():
    lay = _door_layout()
    frame = np.array([[0.0, 0.6], [0.0, -0.6]])  # the gap's edges
    plain = Planner(lay, inflate=0.3).path_from(lay.start[:2])
    careful = Planner(lay, inflate=0.3, clearance_weight=4.0, clearance_range=0.5).path_from(lay.start[:2])
    assert _min_distance(careful, frame) > _min_distance(plain, frame) + 0.1
    assert path_length(careful) >= path_length(plain) - 1e-9  # safer, never shorter than the shortest


def _grid_clearance(planner: Planner, path: np.ndarray) -> float:
    """Least clearance (m, on ``planner``'s clearance map) of the path's inner points."""
    pts = np.concatenate([np.linspace(a, b, 50) for a, b in zip(path[:-1], path[1:], strict=True)])
    return float(min(planner.clearance[planner.grid.to_cell(p)] for p in pts[10:-10]))


@pytest.mark.parametrize("kind, family", LAYOUTS)
def test_careful_paths_keep_at_least_the_plain_clearance(kind, family):
    for seed in (2_000_002, 2_000_003):
        lay = generate(family, seed, kind=kind)
        careful = Planner(lay, inflate=0.35, clearance_weight=2.0)
        plain = Planner(lay, inflate=0.35)
        start = lay.start[:2]

        got = [_grid_clearance(careful, p.path_from(start)) for p in (careful, plain)]
        assert got[0] >= got[1] - 1e-9
        assert np.allclose(careful.path_from(start)[-1], lay.goal)


def test_bad_clearance_options_are_clear_errors():
    lay = _door_layout()
    with pytest.raises(ValueError, match="clearance_weight"):
        Planner(lay, clearance_weight=-1.0)
    with pytest.raises(ValueError, match="clearance_range"):
        Planner(lay, clearance_weight=1.0, clearance_range=0.0)
    env = gym.make("LiquidControl/RoverNav-v0", split="test")
    with pytest.raises(ValueError, match="no option"):
        make_expert(env, {"clearence_weight": 2.0})
    env.close()


def test_expert_spec_builds_the_careful_expert_and_it_reaches_the_goal():
    assert expert_spec(None) == expert_spec({}) == "expert"
    spec = expert_spec({"clearance_weight": 2.0})
    assert spec == {"expert": {"clearance_weight": 2.0}}
    env = gym.make("LiquidControl/RoverNav-v0", split="test",
                   layout={"family": "rooms", "goal_distance": [5.0, 10.0]})
    default, careful = make_controller("expert"), make_controller(spec)
    obs, _ = env.reset(seed=3)
    default.reset(env, obs)
    careful.reset(env, obs)
    assert default._expert.planner.clearance is None and careful._expert.planner.clearance is not None
    while True:
        obs, _, term, trunc, info = env.step(careful.act(obs))
        if term or trunc:
            break
    env.close()
    assert info["is_success"], info
