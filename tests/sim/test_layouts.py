"""Layouts: pure functions of (family, seed), disjoint splits, free and connected start/goal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liquid_control.sim.layouts import (
    FAMILIES,
    SPLITS,
    distance_field,
    generate,
    layout_seed_for,
    occupancy_grid,
    route_ahead,
    split_of,
)

CASES = [(kind, fam) for kind, fams in FAMILIES.items() for fam in fams]


@pytest.mark.parametrize("kind, family", CASES)
def test_layout_is_pure_function_of_family_and_seed(kind, family):
    a = generate(family, 2_000_005, kind=kind)
    b = generate(family, 2_000_005, kind=kind)
    c = generate(family, 2_000_006, kind=kind)
    assert a.fingerprint() == b.fingerprint()
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.cylinders, b.cylinders)
    assert a.fingerprint() != c.fingerprint()
    assert a.layout_id == f"{family}:2000005"


@pytest.mark.parametrize("kind, family", CASES)
def test_start_and_goal_free_connected_and_in_range(kind, family):
    for seed in range(2_000_000, 2_000_004):
        lay = generate(family, seed, kind=kind)
        assert lay.n_obstacles > 0
        grid = occupancy_grid(lay, 0.1, inflate=0.2)
        assert grid.free_at(lay.start[:2]) and grid.free_at(lay.goal)
        dist, _ = distance_field(grid, lay.goal)
        assert np.isfinite(dist[grid.to_cell(lay.start[:2])])
        straight = np.hypot(lay.start[0] - lay.goal[0], lay.start[1] - lay.goal[1])
        lo, hi = lay.knobs["goal_distance"]
        assert lo - 0.2 <= straight <= hi + 0.2
        assert lay.geodesic >= straight - 0.3
        # every obstacle reaches at least the ceiling (2D planning is exact below it)
        assert np.all(lay.cylinders[:, 3] >= lay.ceiling - 1e-9)
        assert np.all(2 * lay.boxes[:, 5] >= lay.ceiling - 1e-9)


def test_splits_are_disjoint_and_seeds_map_inside():
    ranges = sorted(SPLITS.values())
    for (lo1, hi1), (lo2, _) in zip(ranges, ranges[1:], strict=False):
        assert lo1 < hi1 <= lo2
    for split in SPLITS:
        for s in (0, 1, 999_999, 10**7 + 3, 2**31 - 1):
            assert split_of(layout_seed_for(split, s)) == split
    with pytest.raises(ValueError, match="unknown split"):
        layout_seed_for("holdout", 0)


def test_train_and_test_layouts_never_coincide():
    def prints(split):
        return {generate(f, layout_seed_for(split, s), kind=k).fingerprint()
                for k, fams in FAMILIES.items() for f in fams for s in range(8)}

    train, test = prints("train"), prints("test")
    assert len(train) == len(test) == 48
    assert not train & test


def test_knobs_change_layouts_and_bad_knobs_raise():
    sparse = generate("forest", 7, density=0.1)
    dense = generate("forest", 7, density=0.6)
    assert dense.n_obstacles > sparse.n_obstacles
    big = generate("forest", 7, density=0.3, obstacle_scale=2.0)
    assert big.cylinders[:, 2].mean() > generate("forest", 7, density=0.3).cylinders[:, 2].mean()
    with pytest.raises(ValueError, match="unknown rover layout family"):
        generate("swamp", 1)
    with pytest.raises(ValueError, match="density"):
        generate("forest", 1, density=-1.0)
    with pytest.raises(ValueError, match="fence is a drone layout option"):
        generate("forest", 1, fence=True)


@pytest.mark.parametrize("family", FAMILIES["drone"])
def test_fence_adds_the_arena_edge_as_walls_and_changes_nothing_else(family):
    for seed in range(5):
        plain, fenced = generate(family, seed, kind="drone"), generate(family, seed, kind="drone", fence=True)
        assert np.array_equal(plain.cylinders, fenced.cylinders)
        assert np.array_equal(plain.boxes, fenced.boxes[: len(plain.boxes)])
        assert plain.start == fenced.start and plain.goal == fenced.goal
        walls = fenced.boxes[len(plain.boxes) :]
        assert len(walls) == 4 and fenced.knobs["fence"] and "fence" not in plain.knobs
        xmin, ymin, xmax, ymax = fenced.bounds
        for x, y, yaw, hx, hy, _ in walls:  # each wall lies outside the bounds and spans one whole side
            along = abs(math.cos(yaw)) > 0.5
            inner = (abs(y) - hy) if along else (abs(x) - hy)
            assert inner == pytest.approx(xmax) and 2 * hx >= xmax - xmin


@pytest.mark.parametrize("kind, family", [("drone", "walls"), ("rover", "rooms"), ("rover", "maze")])
def test_route_ahead_points_along_the_shortest_route(kind, family):
    layout = generate(family, 3, kind=kind)
    grid, dist = layout.geo_grid, layout.geo_dist
    ahead = route_ahead(layout, 2.0)
    free = np.argwhere(np.isfinite(dist))
    rng = np.random.default_rng(0)
    for iy, ix in free[rng.choice(len(free), 50, replace=False)]:
        x, y = ahead[iy, ix]
        here, there = dist[iy, ix], dist[grid.to_cell((x, y))]
        if here > 3.0:  # 10 cells along the route: 2 m of straight steps to 2.83 m of diagonal ones
            assert 2.0 - 1e-6 <= here - there <= 2.0 * math.sqrt(2) + 1e-6
        else:  # the route ends sooner: the goal itself
            assert (x, y) == pytest.approx(layout.goal) or here - there == pytest.approx(here, abs=0.3)
    blocked = np.argwhere(~np.isfinite(dist))  # inside obstacles: the nearest reachable cell's waypoint
    assert np.isfinite(ahead[tuple(blocked.T)]).all()
    assert route_ahead(layout, 0.0)[tuple(free[0])] == pytest.approx(grid.to_xy(free[:1])[0])
