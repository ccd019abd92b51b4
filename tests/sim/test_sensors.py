"""Range sensors: the planar and prism casters agree with PyBullet's rayTestBatch and with hand-computed
distances; noise/dropout; directions."""

from __future__ import annotations

import numpy as np
import pytest

from liquid_control.sim.layouts import generate, occupancy_grid
from liquid_control.sim.sensors import (
    ExactRangeSensor,
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
        assert many.tobytes() == scene.clearance_many(pts, compiled=False).tobytes()
        assert np.allclose(many, [scene.clearance(xy, compiled=False) for xy in pts], rtol=0, atol=1e-12)


def _prisms(cylinders=(), boxes=()) -> PlanarScene:
    """A scene of hand-placed prisms: cylinders (x, y, r, height), boxes (x, y, yaw, hx, hy, hz)."""
    from liquid_control.sim.layouts import Layout

    cyl, box = np.array(cylinders, float).reshape(-1, 4), np.array(boxes, float).reshape(-1, 6)
    return PlanarScene(Layout("forest", 0, "drone", (-10.0, -10.0, 10.0, 10.0), cyl, box, (0.0, 0.0, 0.0),
                              (5.0, 0.0), 1.0))


@pytest.mark.parametrize("compiled", [True, False])
def test_prism_cast_is_exact_on_hand_placed_geometry(compiled):
    """Distances by hand: ground under a tilted ray, a cylinder's side and top, a yawed box's face, a ray
    passing over a low box and one from above landing on its top."""
    s2 = np.sqrt(0.5)
    scene = _prisms(cylinders=[(3.0, 0.0, 0.5, 4.0)],
                    boxes=[(0.0, 3.0, np.pi / 4, 0.5, 0.5, 0.5), (-3.0, 0.0, 0.0, 0.5, 1.0, 2.0)])
    origin = np.array([0.0, 0.0, 1.5])
    dirs = np.array([
        [s2, 0.0, -s2],  # 45 deg down toward the cylinder: the ground at 1.5 sqrt(2) first (x = 1.5 < 2.5)
        [1.0, 0.0, 0.0],  # the cylinder's side at x = 2.5
        [0.0, 1.0, 0.0],  # over the 1 m box at y = 3 (top z = 1): nothing within range
        [-1.0, 0.0, 0.0],  # the 4 m box's face at x = -2.5
        [0.0, 0.0, -1.0],  # straight down: the ground
        [0.0, 0.0, 1.0],  # straight up: nothing
    ])
    d = scene.cast_rays(origin, dirs, 6.0, compiled=compiled)
    np.testing.assert_allclose(d, [1.5 * np.sqrt(2), 2.5, 6.0, 2.5, 1.5, 6.0], rtol=0, atol=1e-12)
    # from above the low box, down onto its top (z = 1) and, tilted, onto the cylinder's top (z = 4)
    down = np.array([[0.0, 0.0, -1.0]])
    above_box = scene.cast_rays(np.array([0.0, 3.0, 2.0]), down, 6.0, compiled=compiled)
    np.testing.assert_allclose(above_box, [1.0], atol=1e-12)
    tilted = np.array([[s2, 0.0, -s2]])
    onto_cyl = scene.cast_rays(np.array([2.0, 0.0, 5.0]), tilted, 6.0, compiled=compiled)
    # over the footprint edge at x = 2.5 (z = 4.5, above the top), then onto the top at x = 3, z = 4
    np.testing.assert_allclose(onto_cyl, [np.sqrt(2)], atol=1e-12)


@pytest.mark.parametrize("family", ["forest", "walls", "city"])
def test_exact_sensor_matches_raytestbatch_on_drone_layouts(world, family):
    """The prism cast of a ring with tilted rays and of a depth image, from tilted bodies anywhere in the
    flight volume, agrees with PyBullet's rayTestBatch (which hits convex shapes within a margin): within
    2 cm for >99% of the rays."""
    from scipy.spatial.transform import Rotation

    from liquid_control.sim.tasks.drone_nav import depth_directions

    lay = generate(family, 3_000_001, kind="drone")
    world.reset(lay)
    scene = PlanarScene(lay)
    grid = occupancy_grid(lay, 0.1, inflate=0.1)
    rng = np.random.default_rng(2)
    for dirs in (ring_directions(32, 360.0, up=2, down=2), depth_directions(8, 6, 90.0)):
        bullet, exact = RangeSensor(world.client, dirs, 6.0), ExactRangeSensor(scene, dirs, 6.0)
        diffs = []
        while len(diffs) < 60:
            pos = np.array([*rng.uniform(-14.0, 14.0, 2), rng.uniform(0.3, 3.7)])
            if not grid.free_at(pos):
                continue
            rpy = [*rng.normal(0.0, 0.3, 2), rng.uniform(-np.pi, np.pi)]
            rot = Rotation.from_euler("xyz", rpy).as_matrix()
            a, b = bullet.scan(pos, rot), exact.scan(pos, rot)
            assert a.shape == b.shape == (len(dirs),) and np.all((b >= 0) & (b <= 1))
            diffs.append(np.abs(a - b) * 6.0)
        assert np.mean(np.concatenate(diffs) < 0.02) > 0.99


@pytest.mark.parametrize("family", ["forest", "walls", "city"])
def test_prism_cast_compiled_agrees_with_numpy(family):
    """The numba loop and the numpy formulation of cast_rays agree on random rays (any direction,
    horizontal and vertical ones included) from random points, inside obstacles too."""
    scene = PlanarScene(generate(family, 5, kind="drone"))
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(200, 3))
    dirs[:20, 2] = 0.0
    dirs[20:30, :2] = 0.0
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    for _ in range(30):
        origin = np.array([*rng.uniform(-15.0, 15.0, 2), rng.uniform(0.0, 5.0)])
        a = scene.cast_rays(origin, dirs, 6.0)
        b = scene.cast_rays(origin, dirs, 6.0, compiled=False)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        assert np.all((a >= 0) & (a <= 6.0))
