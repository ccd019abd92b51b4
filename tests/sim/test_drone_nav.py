"""DroneNav-v0: API conformance for every action type x sensor, determinism, options, termination,
sensing, resets and rendering."""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest
from gymnasium.utils.env_checker import check_env

import liquid_control  # noqa: F401
from liquid_control.sim.tasks.drone_nav import DroneNavEnv, depth_directions

ENV_ID = "LiquidControl/DroneNav-v0"


@pytest.mark.parametrize("sensor", ["rays", "depth", "rays+depth"])
@pytest.mark.parametrize("action_type", ["velocity", "ctbr", "rpm"])
def test_check_env(action_type, sensor):
    env = DroneNavEnv(action_type=action_type, sensor=sensor, depth={"width": 8, "height": 4})
    check_env(env, skip_render_check=True)
    n = env.observation_space.shape[0]
    assert n == 13 + (36 if "rays" in sensor else 0) + (32 if "depth" in sensor else 0)
    assert env.rig.actions.action_type == action_type
    env.close()


def _rollout(env, seed: int, n: int = 30) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(n):
        obs, r, te, tr, _ = env.step(env.action_space.sample() * 0.3)
        out.append(np.append(obs, r))
        if te or tr:
            break
    return np.concatenate(out)


def test_same_seed_same_trajectory_with_disturbances():
    opts = {"disturbance": {"wind": 1.0, "gust": 0.5, "obs_noise": 0.02, "ray_dropout": 0.1,
                            "act_noise": 0.05, "latency_steps": 2, "mass_scale": 1.1}}
    a = gym.make(ENV_ID, **opts)
    b = gym.make(ENV_ID, **opts)
    np.testing.assert_array_equal(_rollout(a, 11), _rollout(b, 11))
    assert not np.array_equal(_rollout(a, 11), _rollout(a, 12))
    a.close()
    b.close()


@pytest.mark.parametrize("bad", [
    {"layout": {"family": "maze"}}, {"layout": {"density": -0.1}}, {"action_type": "thrust"},
    {"sensor": "camera"}, {"disturbance": {"wind": -1.0}}, {"flight": {"altitude": 9.0}},
    {"rays": {"up": -1}},
])
def test_invalid_options_raise_at_construction(bad):
    with pytest.raises(ValueError):
        DroneNavEnv(**bad)


def test_default_families_exclude_heldout_city():
    env = DroneNavEnv()
    fams = {env.reset(seed=s)[1]["family"] for s in range(4)}
    assert fams == {"forest", "walls"}
    _, info = env.reset(seed=0, options={"family": "city"})
    assert info["family"] == "city"
    env.close()


def test_test_split_layouts_differ_from_train():
    tr, te = DroneNavEnv(split="train"), DroneNavEnv(split="test")
    for s in range(3):
        _, a = tr.reset(seed=s)
        _, b = te.reset(seed=s)
        assert a["layout_seed"] < 1_000_000 <= 2_000_000 <= b["layout_seed"]
        assert tr.layout.fingerprint() != te.layout.fingerprint()
    tr.close()
    te.close()


def test_flying_into_an_obstacle_is_a_collision():
    env = DroneNavEnv(layout={"family": "walls"})
    env.reset(seed=0)
    # aim at the nearest wall along x, flying at full speed in the world frame toward it
    box = env.layout.boxes[np.argmin(np.abs(env.layout.boxes[:, 0] - env.position[0]))]
    direction = math.copysign(1.0, box[0] - env.position[0])
    info, te = {}, False
    for _ in range(600):
        yaw = env.rig.quad.yaw
        a = env.rig.actions.from_velocity(direction * 2.0 * math.cos(yaw), -direction * 2.0 * math.sin(yaw),
                                          0.0, 0.0)
        _, r, te, tr, info = env.step(a)
        if te or tr:
            break
    assert te and info["collision"] and not info["is_success"]
    assert r < -5.0
    env.close()


def test_leaving_the_flight_volume_fails():
    env = DroneNavEnv()
    env.reset(seed=1)
    info, te = {}, False
    for _ in range(300):  # climb out through the ceiling
        _, _, te, tr, info = env.step(np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float32))
        if te or tr:
            break
    assert te and info["collision"]
    assert env.position[2] > env.layout.ceiling - 0.5
    env.close()


def test_hover_action_holds_position_and_time_limit_truncates():
    env = DroneNavEnv(time_limit=2.0)
    obs, _ = env.reset(seed=2)
    start = env.position.copy()
    tr = False
    for _ in range(100):
        obs, _, te, tr, info = env.step(np.zeros(4, dtype=np.float32))
        assert not te
        if tr:
            break
    assert tr and info["timeout"] and info["t"] == pytest.approx(2.0)
    assert np.linalg.norm(env.position - start) < 0.05
    env.close()


def test_rays_see_an_obstacle_ahead():
    env = DroneNavEnv(layout={"family": "walls"})
    obs, _ = env.reset(seed=0)
    q = env.rig.quad
    box = env.layout.boxes[0]
    assert abs(math.sin(box[2])) == pytest.approx(1.0)  # walls run along y; half_y is half the thickness
    x, y = box[0] - box[4] - 1.0, box[1]  # 1 m in front of the wall's face, facing it (+x)
    p.resetBasePositionAndOrientation(q.body, (x, y, 1.5), (0, 0, 0, 1), physicsClientId=q.client)
    q.read_state()
    obs = env._observe()
    rays = obs[env.obs_slices["rays"]]
    fwd = int(np.argmax(env.ray_dirs[:32, 0]))  # the ray closest to +x (heading)
    assert rays[fwd] == pytest.approx(1.0 / env.options["rays"]["range"], abs=0.03)
    back = int(np.argmin(env.ray_dirs[:32, 0]))
    assert rays[back] > rays[fwd]
    env.close()


@pytest.mark.parametrize("fence", [False, True])
def test_rays_see_the_arena_edge_only_with_the_fence(fence):
    env = DroneNavEnv(layout={"family": "forest", "density": 0.0, "fence": fence})
    env.reset(seed=0)
    q = env.rig.quad
    xmax = env.layout.bounds[2]
    p.resetBasePositionAndOrientation(q.body, (xmax - 2.0, 0.0, 1.5), (0, 0, 0, 1), physicsClientId=q.client)
    q.read_state()
    rays = env._observe()[env.obs_slices["rays"]]
    fwd = int(np.argmax(env.ray_dirs[:32, 0]))  # facing the +x edge, 2 m away
    expected = 2.0 / env.options["rays"]["range"] if fence else 1.0
    assert rays[fwd] == pytest.approx(expected, abs=0.01)
    env.close()


def test_depth_directions_are_a_forward_pinhole_grid():
    d = depth_directions(4, 2, 90.0)
    assert d.shape == (8, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.all(d[:, 0] > 0)
    assert d[0, 1] > 0 > d[3, 1]  # first column looks left (+y)
    assert d[0, 2] > 0 > d[4, 2]  # top row looks up


def test_control_hz_sets_substeps():
    env = DroneNavEnv(control_hz=48)
    assert env.substeps == 5 and env.rig.substeps == 5
    env.close()


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_many(n: int) -> tuple[int, int]:
    env = DroneNavEnv()
    env.reset(seed=0)
    client = env.world.client
    bodies = p.getNumBodies(physicsClientId=client)
    for s in range(min(n, 20)):  # warm-up (caches, allocator)
        env.reset(seed=s)
    rss0 = _rss_kb()
    for s in range(n):
        env.reset(seed=s % 50)
        env.step(env.action_space.sample())
    grew = _rss_kb() - rss0
    env.reset(seed=0)  # same layout as at the start: same bodies, same client
    assert env.world.client == client
    assert p.getNumBodies(physicsClientId=client) == bodies
    env.close()
    return grew, client


def test_resets_reuse_the_client_and_keep_body_count():
    grew, _ = _reset_many(40)
    assert grew < 20_000  # kB


@pytest.mark.slow
def test_2000_resets_leak_no_client_and_no_memory():
    grew, client = _reset_many(2000)
    assert grew < 20_000  # kB; a per-reset leak of a body + shapes would be far larger
    c2 = p.connect(p.DIRECT)
    assert c2 <= client + 1  # no stray clients were left connected
    p.disconnect(c2)


def test_render_top_down_and_chase():
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(4, dtype=np.float32))
    top = env.render()
    assert top.dtype == np.uint8 and top.ndim == 3 and top.shape[2] == 3
    chase = env.unwrapped.render_chase(64, 48)
    assert chase.shape == (48, 64, 3) and chase.std() > 1.0
    env.close()


@pytest.mark.parametrize("family", ["forest", "walls", "city"])
def test_layouts_connect_start_and_goal_at_the_planner_clearance(family):
    from liquid_control.experts.planning import Planner

    env = DroneNavEnv(split="test", layout={"family": family})
    for seed in range(3):
        layout = env.choose_layout(seed)
        assert 8.0 <= math.dist(layout.start[:2], layout.goal) <= 20.0
        planner = Planner(layout, inflate=0.3)
        assert np.isfinite(planner.dist[planner.grid.to_cell(layout.start[:2])]), layout.layout_id
    env.close()



@pytest.mark.parametrize("env_id, family, part", [("LiquidControl/DroneNav-v0", "walls", "goal_direction"),
                                                  ("LiquidControl/RoverNav-v0", "rooms", "goal_bearing")])
def test_goal_lookahead_turns_only_the_goal_direction_towards_the_route(env_id, family, part):
    """Both nav envs (NavTask): ``goal.lookahead`` changes the goal direction and nothing else."""
    plain = gym.make(env_id, layout={"family": family}).unwrapped
    routed = gym.make(env_id, layout={"family": family}, goal={"lookahead": 3.0}).unwrapped
    check_env(routed, skip_render_check=True)
    turned = 0
    for seed in range(6):
        a, _ = plain.reset(seed=seed)
        b, _ = routed.reset(seed=seed)
        same = np.ones(len(a), bool)
        same[plain.obs_slices[part]] = False  # the distance is still the goal's
        assert np.array_equal(a[same], b[same])
        waypoint, layout = routed.heading_target(routed.position), routed.layout
        ahead = layout.geodesic_to_goal(routed.position) - layout.geodesic_to_goal(waypoint)
        if layout.geodesic_to_goal(routed.position) > 5.0:
            assert 2.9 <= ahead <= 3.0 * math.sqrt(2) + 0.3
        turned += not np.allclose(a[~same], b[~same], atol=1e-3)
    assert turned >= 3  # walls and rooms: the route leaves the straight line towards the goal
    plain.close()
    routed.close()
