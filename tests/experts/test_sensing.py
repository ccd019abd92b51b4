"""The sensing-limited teachers (``NavExpert(sensing_range=r)``, ``RoverExpert(sensing_rays=n)``): they plan
on what they have seen so far."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401
from liquid_control.experts import make_expert
from liquid_control.experts.drone import EDGE_PAD
from liquid_control.experts.planning import Planner, SeenCells, lidar_fan, path_length
from liquid_control.experts.rover import RoverExpert
from liquid_control.sim.layouts import Layout
from liquid_control.sim.sensors import PlanarScene

# a walls test episode whose only gap lies far off the start-goal line (shortest path 1.68x the straight
# line): every shipped DroneNav policy fails it
FAR_GAP_SEED = 642290861
ROOMS_SEED = 7  # a RoverNav rooms test episode whose route needs doorways the start cannot see


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


def test_sensing_options_are_checked():
    env = gym.make("LiquidControl/DroneNav-v0", split="test")
    with pytest.raises(ValueError, match="sensing_range"):
        make_expert(env, {"sensing_range": -1.0})
    with pytest.raises(ValueError, match="not both"):
        make_expert(env, {"sensing_range": 6.0, "sensing_rays": 64})
    with pytest.raises(ValueError, match="sensing_rays"):
        make_expert(env, {"sensing_rays": True})
    with pytest.raises(ValueError, match="arcs"):
        make_expert(env, {"steering": "arcs", "sensing_rays": 64})
    env.close()


@pytest.mark.parametrize("options", [{"sensing_range": 6.0}, {"sensing_rays": 256}], ids=["disk", "rays"])
def test_sensing_teacher_finds_a_gap_it_cannot_see_at_the_start(options):
    """On a walls layout whose gap is beyond sensor range, the teacher starts with a plan through the
    unseen part of the wall, learns the wall as it flies, replans, and still reaches the goal; it only
    ever knows cells within its range (the env's 6 m lidar range for the fan) of where it has been."""
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "walls"})
    obs, _ = env.reset(seed=FAR_GAP_SEED)
    u = env.unwrapped
    full = make_expert(env)
    full.reset(u, obs)
    expert = make_expert(env, options)
    expert.reset(u, obs)
    start = np.array(u.layout.start[:2])
    assert path_length(expert.path) < path_length(full.path) - 1.0  # it does not know the detour yet
    res = expert.planner.grid.res
    area = expert.seen.known.sum() * res**2
    if "sensing_range" in options:
        assert area == pytest.approx(np.pi * 6.0**2, rel=0.05)
    else:  # the fan stops at the first hit: less than the disk
        assert 0.2 * np.pi * 6.0**2 < area < 0.97 * np.pi * 6.0**2
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
    cells = np.argwhere(expert.seen.known)
    xy = expert.planner.grid.to_xy(cells)
    path = np.asarray(visited)
    near = np.min(np.hypot(*(xy[:, None, :] - path[None, ::5, :]).transpose(2, 0, 1)), axis=1)
    assert near.max() <= 6.0 + 0.25 + res


def test_seen_cells_along_rays_stop_at_the_first_hit():
    """A lidar fan from the start sees the near face of the wall and nothing behind it; planning on that
    goes around the end it has seen (unknown cells count as free), shorter than the true detour."""
    lay = _wall_layout()
    full = Planner(lay, inflate=0.35)
    seen = SeenCells(full.grid)
    start = np.array(lay.start[:2])
    n, reach = 720, 6.0  # the wall face it sees ends near y = ±4.5, the gap is at y = 7..9
    hits = PlanarScene(lay).cast(start, 0.0, 2 * np.pi / n, n, reach, True)
    revealed = seen.see_rays(start, 2 * np.pi / n * np.arange(n), hits, reach)
    g = full.grid
    assert seen.known[g.to_cell((-2.0, 0.0))] and not seen.known[g.to_cell((2.0, 0.0))]  # behind the wall
    assert seen.known[g.to_cell((-0.3, 0.0))] and full.grid.occ[g.to_cell((-0.3, 0.0))]  # the inflated face
    assert np.ravel_multi_index(g.to_cell((-0.3, 0.0)), g.occ.shape) in revealed
    assert full.grid.occ.ravel()[revealed].all() and len(revealed) > 0
    xy = g.to_xy(np.argwhere(seen.known))
    assert np.hypot(*(xy - start).T).max() <= reach + 2 * g.res
    assert len(seen.see_rays(start, 2 * np.pi / n * np.arange(n), hits, reach)) == 0  # nothing new
    known = Planner(lay, inflate=0.35, known=seen.known)
    assert 8.5 < path_length(known.path_from(start)) < path_length(full.path_from(start)) - 3.0


def test_seen_cells_forget_what_was_not_seen_since():
    lay = _wall_layout()
    grid = Planner(lay, inflate=0.35).grid
    seen = SeenCells(grid)
    start, n, reach = np.array(lay.start[:2]), 360, 6.0
    angles = 2 * np.pi / n * np.arange(n)
    seen.now = 0
    seen.see_rays(start, angles, PlanarScene(lay).cast(start, 0.0, 2 * np.pi / n, n, reach, True), reach)
    face = grid.to_cell((-0.3, 0.0))
    assert seen.known[face] and seen.forget(0) == 0  # nothing was seen before time 0
    seen.now = 5  # five ticks later it looks from the far left: the wall face is out of reach
    far = np.array([-9.0, 0.0])
    seen.see_rays(far, angles, PlanarScene(lay).cast(far, 0.0, 2 * np.pi / n, n, reach, True), reach)
    assert seen.known[grid.to_cell((-8.0, 0.0))]
    dropped = seen.forget(3)
    assert dropped > 0 and not seen.known[face]  # the wall it saw at time 0 is forgotten
    assert seen.known[grid.to_cell((-8.0, 0.0))]  # what it saw at time 5 is kept
    assert seen.forget(3) == 0


def test_rover_teacher_with_a_short_memory_forgets_and_replans():
    with pytest.raises(ValueError, match="sensing_memory"):
        RoverExpert(sensing_memory=-1.0, sensing_rays=32)
    with pytest.raises(ValueError, match="sensing_memory"):
        RoverExpert(sensing_memory=5.0)  # a memory of nothing sensed
    env = gym.make("LiquidControl/RoverNav-v0", split="test", layout={"family": "rooms"})
    known = {}
    for memory in (0.0, 1.0):
        obs, _ = env.reset(seed=ROOMS_SEED)
        expert = make_expert(env, {"steering": "arcs", "sensing_rays": 32, "sensing_memory": memory})
        expert.reset(env.unwrapped, obs)
        for _ in range(120):
            obs, _, term, trunc, info = env.step(expert.act(obs))
            assert not (term or trunc), info
        known[memory] = int(expert.seen.known.sum())
    assert known[1.0] < 0.8 * known[0.0]  # 6 s of driving, 1 s of memory: most of the map is gone
    env.close()


def test_rover_sensing_teacher_plans_on_what_its_lidar_showed():
    with pytest.raises(ValueError, match="sensing_rays"):
        RoverExpert(sensing_rays=-1)
    with pytest.raises(ValueError, match="sensing_rays"):
        RoverExpert(sensing_rays=2.5)
    env = gym.make("LiquidControl/RoverNav-v0", split="test", layout={"family": "rooms"})
    obs, _ = env.reset(seed=ROOMS_SEED)
    u = env.unwrapped
    options = {"steering": "arcs", "sensing_rays": 256}
    full, expert = make_expert(env, {"steering": "arcs"}), make_expert(env, options)
    full.reset(u, obs)
    expert.reset(u, obs)
    assert path_length(expert.path) < path_length(full.path) - 1.0  # it does not know the doorways yet
    start = np.array(u.state["position"][:2])
    xy = expert.seen.grid.to_xy(np.argwhere(expert.seen.known))
    assert np.hypot(*(xy - start).T).max() <= u.options["rays"]["range"] + 0.2
    for _ in range(80):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        assert not (term or trunc), info
    assert expert.replans > 0
    env.close()


@pytest.mark.slow
def test_rover_sensing_teacher_reaches_the_goal_through_doorways_it_finds():
    env = gym.make("LiquidControl/RoverNav-v0", split="test", layout={"family": "rooms"})
    obs, _ = env.reset(seed=ROOMS_SEED)
    expert = make_expert(env, {"steering": "arcs", "slow_clearance": 0.5, "arc_escape": 0.06,
                               "sensing_rays": 256})
    expert.reset(env.unwrapped, obs)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(expert.act(obs))
        done = term or trunc
    env.close()
    assert info["is_success"] and not info["collision"], info


def test_a_teacher_that_does_not_know_the_arena_edge_plans_beyond_it():
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "walls"})
    with pytest.raises(ValueError, match="knows_edge"):
        make_expert(env, {"knows_edge": False})
    obs, _ = env.reset(seed=FAR_GAP_SEED)
    u = env.unwrapped
    xmin, ymin, xmax, ymax = u.layout.bounds
    experts = {}
    for knows in (True, False):
        experts[knows] = make_expert(env, {"sensing_rays": 256, "knows_edge": knows})
        experts[knows].reset(u, obs)
    inside, padded = experts[True].planner.grid, experts[False].planner.grid
    assert inside.origin == (xmin, ymin)
    assert padded.origin == pytest.approx((xmin - EDGE_PAD, ymin - EDGE_PAD))
    assert padded.occ.shape[1] * padded.res == pytest.approx(xmax - xmin + 2 * EDGE_PAD)
    just_outside = (xmin - 1.0, 0.5 * (ymin + ymax))
    assert not padded.occ[padded.to_cell(just_outside)]  # free: the edge is not known
    assert inside.occ[inside.to_cell((xmin + 0.05, 0.5 * (ymin + ymax)))]  # the known edge band
    env.close()


@pytest.mark.parametrize("env_id", ["LiquidControl/DroneNav-v0", "LiquidControl/RoverNav-v0"])
def test_teacher_fan_has_the_learners_lidar_angles(env_id):
    """With as many rays as the env's horizontal lidar, the sensing teacher's fan is that lidar: the same
    angles (DroneNav's 360° ring starts half a step past -pi, RoverNav's 270° fan at its edge) and range,
    and what see_fan reveals is exactly see_rays along the env's own rays and ranges."""
    env = gym.make(env_id, split="test")
    env.reset(seed=3)
    u = env.unwrapped
    ring = np.abs(u.ray_dirs[:, 2]) < 1e-9  # the horizontal rays come first (then any tilted ones)
    n = int(ring.sum())
    assert ring[:n].all()
    fan = lidar_fan(u, n)
    own = np.arctan2(u.ray_dirs[:n, 1], u.ray_dirs[:n, 0])
    theirs = fan.theta0 + fan.dtheta * np.arange(n)
    assert np.allclose(np.angle(np.exp(1j * (theirs - own))), 0.0, atol=1e-9)
    assert fan.max_range == u.sensor.max_range
    xy, yaw = np.asarray(u.layout.start[:2], dtype=float), 0.7
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    ranges = fan.max_range * u.sensor.scan(np.array([*xy, 0.5]), rot)[:n]  # the env's lidar at that pose
    grid = Planner(u.layout, inflate=0.3).grid
    a, b = SeenCells(grid), SeenCells(grid)
    revealed = a.see_fan(fan, xy, yaw)
    assert np.array_equal(revealed, b.see_rays(xy, yaw + own, ranges, fan.max_range))
    assert np.array_equal(a.known, b.known) and a.known.any()
    env.close()
