"""RoverNav: env checker on every option set, determinism, resets without leaks, option errors."""

from __future__ import annotations

import gc
import os

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest
from gymnasium.utils.env_checker import check_env

import liquid_control  # noqa: F401  (registers the ids)
from liquid_control.sim.tasks.rover_nav import RoverNavEnv

ENV_ID = "LiquidControl/RoverNav-v0"
INFO_KEYS = {"is_success", "collision", "timeout", "distance_to_goal", "path_length", "min_clearance",
             "control_effort", "layout_id", "layout_seed", "family", "t"}

OPTION_SETS = [
    {},
    {"layout": {"family": "maze"}, "split": "test"},
    {"rays": {"count": 32, "fov": 360.0, "range": 5.0}},
    {"disturbance": {"obs_noise": 0.05, "ray_dropout": 0.2}},
    {"disturbance": {"act_noise": 0.2, "latency_steps": 3}},
    {"disturbance": {"friction_scale": 0.3, "mass_scale": 1.5}},
    {"layout": {"density": 0.8, "obstacle_scale": 1.5}, "control_hz": 10.0},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: str(o)[:60])
def test_check_env_for_every_option_set(options):
    env = gym.make(ENV_ID, **options)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert INFO_KEYS <= set(info)
    for _ in range(5):
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    assert INFO_KEYS <= set(info)
    env.close()


def _rollout(seed: int, n: int = 60, **options) -> tuple[np.ndarray, list]:
    env = RoverNavEnv(**options)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out, infos = [obs], []
    for _ in range(n):
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, 2))
        out.append(np.append(obs, r))
        infos.append(info)
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return np.concatenate(out), infos


def test_same_seed_same_trajectory():
    opts = {"disturbance": {"obs_noise": 0.02, "act_noise": 0.1, "ray_dropout": 0.1}}
    a, ia = _rollout(11, **opts)
    b, ib = _rollout(11, **opts)
    c, _ = _rollout(12, **opts)
    np.testing.assert_array_equal(a, b)
    assert ia == ib
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_reset_seed_maps_into_split_and_families_round_robin():
    env = RoverNavEnv(split="test", layout={"family": ["forest", "rooms", "maze"]})
    fams = []
    for s in range(6):
        _, info = env.reset(seed=s)
        assert 2_000_000 <= info["layout_seed"] < 3_000_000
        fams.append(info["family"])
    assert fams == ["forest", "rooms", "maze"] * 2
    _, info = env.reset(options={"family": "maze", "layout_seed": 2_000_123})
    assert info["layout_id"] == "maze:2000123"
    env.close()


def test_driving_into_a_wall_terminates_as_collision_and_timeout_truncates():
    env = RoverNavEnv(time_limit=60.0)
    env.reset(seed=0)
    for _ in range(1200):
        _, r, term, trunc, info = env.step([1.0, 0.0])
        if term or trunc:
            break
    assert term and info["collision"] and not info["is_success"] and r < 0
    env.close()
    env = RoverNavEnv(time_limit=3.0)
    env.reset(seed=1)
    for _ in range(200):
        _, _, term, trunc, info = env.step([0.0, 0.0])
        if term or trunc:
            break
    assert trunc and not term and info["timeout"] and info["t"] == pytest.approx(3.0)
    env.close()


def test_latency_delays_actions():
    env = RoverNavEnv(disturbance={"latency_steps": 3})
    env.reset(seed=5)
    speeds = []
    for _ in range(5):
        env.step([1.0, 0.0])
        speeds.append(abs(env.state["v"]))
    assert max(speeds[:3]) < 0.05 < speeds[4]
    env.close()


def test_render_rgb_array_is_a_topdown_image():
    env = RoverNavEnv(render_mode="rgb_array")
    env.reset(seed=2)
    for _ in range(10):
        env.step([0.5, 0.2])
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert (img == (40, 170, 60)).all(-1).any()  # goal drawn
    assert (img == (210, 40, 40)).all(-1).any()  # rover drawn
    env.close()


@pytest.mark.parametrize("options, words", [
    ({"layout": {"family": "swamp"}}, "unknown value 'swamp'"),
    ({"layout": {"density": -0.5}}, "below its minimum"),
    ({"layout": {"densty": 0.5}}, "unknown option"),
    ({"disturbance": {"wind": 1.0}}, "unknown option 'disturbance.wind'"),
    ({"split": "holdout"}, "must be one of"),
])
def test_invalid_options_raise_clear_error(options, words):
    with pytest.raises(ValueError, match=words):
        gym.make(ENV_ID, **options)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _resets_do_not_leak(n: int) -> None:
    env = RoverNavEnv(layout={"family": ["forest", "rooms", "maze"]})
    for s in range(30):  # warm-up (allocator pools, first layouts)
        env.reset(seed=s)
    gc.collect()
    rss0 = _rss_mb()
    n_bodies = p.getNumBodies(physicsClientId=env.world.client)
    for s in range(n):
        env.reset(seed=100 + s)
        env.step([0.5, 0.0])
    gc.collect()
    assert p.getNumBodies(physicsClientId=env.world.client) == n_bodies
    growth = _rss_mb() - rss0
    assert growth < 25.0, f"RSS grew {growth:.1f} MB over {n} resets"
    client = env.world.client
    env.close()
    assert not p.isConnected(client)


def test_200_resets_do_not_leak():
    _resets_do_not_leak(200)


@pytest.mark.slow
def test_2000_resets_do_not_leak():
    _resets_do_not_leak(2000)


def test_many_envs_do_not_leak_clients():
    ids = []
    for _ in range(20):
        env = RoverNavEnv()
        env.reset(seed=0)
        ids.append(env.world.client)
        env.close()
    assert not any(p.isConnected(c) for c in ids)


def test_every_suite_in_envs_yaml_builds_a_valid_env():
    import pathlib

    import yaml

    path = pathlib.Path(__file__).resolve().parents[2] / "envs" / "rovernav.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["env"] == ENV_ID
    assert set(data["heldout_families"]).isdisjoint(data["train_families"])
    assert {"test", "ood-family", "ood-dense", "ood-slip", "ood-noise", "ood-latency"} <= set(data["suites"])
    for name, suite in data["suites"].items():
        env = gym.make(ENV_ID, split=suite["split"], **suite.get("options", {}))
        _, info = env.reset(seed=1)
        assert info["layout_seed"] >= 2_000_000, name
        if name != "ood-family":
            assert info["family"] in data["train_families"], name
        else:
            assert info["family"] in data["heldout_families"]
        env.close()


def test_chase_camera_sees_the_scene():
    import gymnasium as gym

    env = gym.make("LiquidControl/RoverNav-v0", split="test")
    env.reset(seed=1)
    img = env.unwrapped.render_chase(64, 48)
    env.close()
    assert img.shape == (48, 64, 3) and img.dtype.name == "uint8"
    assert img.std() > 5.0  # not a blank frame: ground, obstacles and the rover are drawn


def test_obs_slices_name_every_part_of_the_observation():
    env = gym.make(ENV_ID, rays={"count": 40})
    obs, _ = env.reset(seed=3)
    obs, *_ = env.step(np.array([1.0, 0.5], np.float32))
    parts = env.unwrapped.obs_slices
    assert [parts[k] for k in ("rays", "goal_distance", "goal_bearing", "wheels")] == [
        slice(0, 40), slice(40, 41), slice(41, 43), slice(43, 45)]
    assert parts["wheels"].stop == obs.shape[0]
    assert np.isclose(np.square(obs[parts["goal_bearing"]]).sum(), 1.0, atol=1e-5)  # cos, sin
    assert obs[parts["wheels"]].min() > 0  # driving forward and turning left: both wheels forward
    env.close()

