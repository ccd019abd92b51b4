"""Range sensors: the planar caster agrees with PyBullet's rayTestBatch; noise/dropout; directions."""

from __future__ import annotations

import numpy as np
import pytest

from liquid_control.sim.layouts import generate, occupancy_grid
from liquid_control.sim.sensors import (
    PlanarRangeSensor,
    PlanarScene,
    RangeSensor,
    clearance,
    corrupt,
    ring_directions,
)
from liquid_control.sim.world import World


@pytest.fixture(scope="module")
def world():
    w = World()
    yield w
    w.close()


@pytest.mark.parametrize("family", ["forest", "rooms", "maze"])
@pytest.mark.parametrize("n, fov", [(64, 270.0), (33, 360.0), (7, 90.0)])
def test_planar_caster_matches_raytestbatch(world, family, n, fov):
    lay = generate(family, 2_000_001)
    world.reset(lay)
    dirs = ring_directions(n, fov)
    bullet = RangeSensor(world.client, dirs, 8.0, offset=(0, 0, 0.1))
    planar = PlanarRangeSensor(PlanarScene(lay), dirs, 8.0, offset=(0, 0, 0.1))
    grid = occupancy_grid(lay, 0.1, inflate=0.1)
    rng = np.random.default_rng(1)
    agree, total = 0, 0
    while total < 40 * n:
        pos = np.array([*rng.uniform(-11.5, 11.5, 2), 0.1])
        if not grid.free_at(pos):
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        a, b = bullet.scan(pos, rot), planar.scan(pos, rot)
        assert a.shape == b.shape == (n,)
        agree += int((np.abs(a - b) * 8.0 < 0.02).sum())
        total += n
    # the only disagreements are grazing rays inside PyBullet's collision margin
    assert agree / total > 0.97


def test_ring_directions_and_errors():
    d = ring_directions(8, 360.0, up=1, down=4)
    assert d.shape == (13, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    assert d[8, 2] == 1.0 and np.all(d[9:, 2] < 0)
    fan = ring_directions(5, 90.0)
    np.testing.assert_allclose(np.degrees(np.arctan2(fan[:, 1], fan[:, 0])), [-45, -22.5, 0, 22.5, 45])
    with pytest.raises(ValueError):
        ring_directions(0)
    with pytest.raises(ValueError):
        PlanarRangeSensor(PlanarScene(generate("forest", 0)), ring_directions(4, 360, up=1), 5.0)


def test_noise_and_dropout():
    rng = np.random.default_rng(0)
    clean = np.full(10_000, 0.5)
    assert corrupt(clean, rng) is clean
    noisy = corrupt(clean, rng, noise=0.1)
    assert abs(noisy.std() - 0.1) < 0.01 and noisy.min() >= 0 and noisy.max() <= 1
    dropped = corrupt(clean, rng, dropout=0.25)
    assert abs((dropped == 1.0).mean() - 0.25) < 0.02


def test_clearance_of_primitives():
    lay = generate("forest", 3)
    x, y, r, _ = lay.cylinders[0]
    assert clearance(lay, np.array([x, y])) <= -r + 1e-9
    far = np.array([x + r + 0.05, y])
    assert clearance(lay, far) <= 0.05 + 1e-9


@pytest.mark.parametrize("kind, family", [("rover", "forest"), ("rover", "rooms"), ("rover", "maze"),
                                          ("drone", "walls"), ("drone", "city")])
def test_compiled_cast_and_clearance_are_bit_identical_to_numpy(kind, family):
    """The compiled loops of PlanarScene (numba) give the very floats of the numpy formulation."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(7)
    for seed in range(3):
        scene = PlanarScene(generate(family, 2_000_000 + seed, kind=kind))
        for n, fov in [(64, 270.0), (33, 360.0), (32, 360.0), (7, 90.0), (1, 10.0)]:
            sens = PlanarRangeSensor(scene, ring_directions(n, fov), 8.0)
            for _ in range(40):
                o = np.array([*rng.uniform(-13.0, 13.0, 2), 0.1])  # also inside obstacles / off the arena
                th = sens.theta0 + rng.uniform(-10.0, 10.0)
                args = (o, th, sens.dtheta, n, 8.0, sens.full_circle)
                fast, ref = scene.cast(*args), scene.cast(*args, compiled=False)
                assert fast.tobytes() == ref.tobytes()
        for xy in rng.uniform(-13.0, 13.0, (300, 2)):
            fast, ref = scene.clearance(xy), scene.clearance(xy, compiled=False)
            assert np.float64(fast).tobytes() == np.float64(ref).tobytes()
        pts = rng.uniform(-13.0, 13.0, (300, 2))
        many = scene.clearance_many(pts)
        assert many.shape == (300,)
        assert np.allclose(many, [scene.clearance(xy, compiled=False) for xy in pts], rtol=0, atol=1e-12)
