"""Grid planner: finds collision-free paths, lengths bounded below by the straight line, fast enough."""

from __future__ import annotations

import numpy as np
import pytest

from liquid_control.experts.planning import Planner, path_length, plan, shortest_path_length
from liquid_control.sim.layouts import FAMILIES, Layout, generate, occupancy_grid

CASES = [(kind, fam) for kind, fams in FAMILIES.items() for fam in fams]


@pytest.mark.parametrize("kind, family", CASES)
def test_plan_is_collision_free_and_not_shorter_than_straight_line(kind, family):
    for seed in (2_000_010,):
        lay = generate(family, seed, kind=kind)
        path = plan(lay, inflate=0.25)
        assert np.allclose(path[0], lay.start[:2]) and np.allclose(path[-1], lay.goal)
        straight = float(np.hypot(lay.start[0] - lay.goal[0], lay.start[1] - lay.goal[1]))
        length = shortest_path_length(lay, inflate=0.25)
        assert length == pytest.approx(path_length(path))
        assert length >= straight - 1e-9
        # smoothed paths are never longer than the raw 8-connected grid path
        raw = Planner(lay, inflate=0.25).path_from(lay.start[:2], smooth=False)
        assert length <= path_length(raw) + 1e-9
        # every segment (except the snap from start/goal to their cells) keeps clear of obstacles
        grid = occupancy_grid(lay, 0.1, inflate=0.1)
        for a, b in zip(path[:-1], path[1:], strict=True):
            t = np.linspace(0, 1, int(np.hypot(*(b - a)) / 0.02) + 2)[:, None]
            pts = a + t * (b - a)
            ix = ((pts[:, 0] - grid.origin[0]) / grid.res).astype(int)
            iy = ((pts[:, 1] - grid.origin[1]) / grid.res).astype(int)
            assert not grid.occ[iy, ix].any()


def test_straight_line_in_an_empty_arena():
    lay = Layout("forest", 0, "rover", (-10.0, -10.0, 10.0, 10.0), np.zeros((0, 4)), np.zeros((0, 6)),
                 (-5.0, -3.0, 0.0), (6.0, 4.0), 1.0)
    assert shortest_path_length(lay) == pytest.approx(np.hypot(11.0, 7.0), rel=1e-6)
    assert len(plan(lay)) == 2


def test_wall_forces_a_detour():
    wall = np.array([[0.0, -1.0, 0.0, 0.1, 6.0, 0.5]])  # x=0, y in [-7, 5]
    lay = Layout("rooms", 0, "rover", (-10.0, -10.0, 10.0, 10.0), np.zeros((0, 4)), wall,
                 (-3.0, 0.0, 0.0), (3.0, 0.0), 1.0)
    length = shortest_path_length(lay, inflate=0.3)
    detour = 2 * np.hypot(2.6, 5.3) + 0.8  # around the top end of the inflated wall
    assert length == pytest.approx(detour, rel=0.03)


def test_replanning_from_any_free_cell_reaches_the_goal():
    lay = generate("maze", 2_000_003)
    planner = Planner(lay, inflate=0.3)
    rng = np.random.default_rng(0)
    free = np.argwhere(np.isfinite(planner.dist))
    for cell in free[rng.choice(len(free), 20, replace=False)]:
        path = planner.path_from(planner.grid.to_xy(cell[None])[0])
        assert np.allclose(path[-1], lay.goal)


def test_cost_to_go_interpolates_the_distance_field():
    lay = generate("forest", 2_000_011, kind="rover")
    planner = Planner(lay, inflate=0.3)
    g, dist = planner.grid, planner.dist
    iy, ix = np.argwhere(np.isfinite(dist[:-1, :-1]) & np.isfinite(dist[:-1, 1:]))[len(dist) // 2]
    cx, cy = g.origin[0] + (ix + 0.5) * g.res, g.origin[1] + (iy + 0.5) * g.res
    at = planner.cost_to_go(np.array([cx, cx + 0.5 * g.res]), np.array([cy, cy]))
    assert at[0] == pytest.approx(dist[iy, ix])  # a cell centre: the field's value
    if np.isfinite(dist[iy + 1, ix]) and np.isfinite(dist[iy + 1, ix + 1]):
        assert at[1] == pytest.approx(0.5 * (dist[iy, ix] + dist[iy, ix + 1]))  # halfway: the mean
    oy, ox = np.argwhere(g.occ)[0]  # deep in an obstacle or the edge band: no finite corner
    inside = planner.cost_to_go(np.array([g.origin[0] + (ox + 0.5) * g.res]),
                                np.array([g.origin[1] + (oy + 0.5) * g.res]))
    assert np.isinf(inside[0]) or np.isfinite(dist[oy:oy + 2, ox:ox + 2]).any()
    free = np.argwhere(np.isfinite(dist))
    sx, sy = g.origin[0] + (free[:50, 1] + 0.5) * g.res, g.origin[1] + (free[:50, 0] + 0.5) * g.res
    assert np.allclose(planner.cost_to_go(sx, sy), dist[free[:50, 0], free[:50, 1]])
