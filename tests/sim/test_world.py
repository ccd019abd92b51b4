"""World lifecycle: obstacles built as compounds of neighbouring shapes."""

from __future__ import annotations

import numpy as np
import pybullet as p
import pytest

from liquid_control.sim.layouts import generate
from liquid_control.sim.world import COMPOUND_MAX, World, spatial_groups


def test_spatial_groups_partition_the_points_into_compact_groups():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 20, (100, 2))
    groups = spatial_groups(pts, 16)
    flat = sorted(i for g in groups for i in g)
    assert flat == list(range(100))  # every point once
    assert all(1 <= len(g) <= 16 for g in groups) and len(groups) == 8  # 100 -> 50 -> 25 -> 12/13
    assert spatial_groups(pts, 16) == groups  # a fixed order

    def mean_extent(gs):
        return np.mean([np.ptp(pts[g], axis=0).sum() for g in gs])

    in_order = [list(range(k, min(k + 16, 100))) for k in range(0, 100, 16)]
    assert mean_extent(groups) < 0.5 * mean_extent(in_order)  # neighbours, not arena-wide groups
    assert spatial_groups(np.zeros((0, 2)), 16) == []
    with pytest.raises(ValueError):
        spatial_groups(pts, 0)


def test_world_builds_every_obstacle_in_compounds_of_neighbours():
    layout = generate("rooms", 3, kind="rover")
    n = len(layout.cylinders) + len(layout.boxes)
    world = World()
    try:
        world.reset(layout)
        assert len(world.obstacles) == len(spatial_groups(np.zeros((n, 2)), COMPOUND_MAX))
        # every obstacle is there: a ray down onto its centre hits an obstacle body before the ground
        centres = [(x, y) for x, y, *_ in layout.cylinders] + [(b[0], b[1]) for b in layout.boxes]
        hits = p.rayTestBatch([(x, y, 50.0) for x, y in centres], [(x, y, -1.0) for x, y in centres],
                              physicsClientId=world.client)
        assert len(hits) == n and {h[0] for h in hits} == set(world.obstacles)
    finally:
        world.close()
