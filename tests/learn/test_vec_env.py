"""BatchedSubprocVecEnv steps exactly like DummyVecEnv (auto-reset, infos, seeds, options, attributes)."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from liquid_control.learn.vec_env import BatchedSubprocVecEnv


def _cartpole() -> gym.Env:
    return Monitor(gym.make("CartPole-v1"))


def _rollout(venv, steps: int, seed: int = 3):
    venv.seed(seed)
    obs = [venv.reset()]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        o, r, d, infos = venv.step(rng.integers(0, 2, venv.num_envs))
        term = [i.get("terminal_observation") for i in infos]
        out.append((o, r, d, [i.get("TimeLimit.truncated") for i in infos], term))
    return obs, out, list(venv.reset_infos)


@pytest.mark.parametrize(("n_envs", "n_workers"), [(5, 2), (3, 3), (2, 1)])
def test_same_trajectories_as_dummy_vec_env(n_envs: int, n_workers: int):
    ref = DummyVecEnv([_cartpole] * n_envs)
    vec = BatchedSubprocVecEnv([_cartpole] * n_envs, n_workers=n_workers)
    try:
        assert len(vec.processes) == n_workers
        assert sum(sl.stop - sl.start for sl in vec.slices) == n_envs
        (o0, a, ra), (p0, b, rb) = _rollout(ref, 120), _rollout(vec, 120)
        np.testing.assert_array_equal(o0[0], p0[0])
        resets = 0
        for (o, r, d, tl, term), (o2, r2, d2, tl2, term2) in zip(a, b, strict=True):
            np.testing.assert_array_equal(o, o2)
            np.testing.assert_array_equal(r, r2)
            np.testing.assert_array_equal(d, d2)
            assert tl == tl2
            for t, t2 in zip(term, term2, strict=True):
                assert (t is None) == (t2 is None)
                if t is not None:
                    np.testing.assert_array_equal(t, t2)
                    resets += 1
        assert resets > n_envs  # random CartPole episodes end: auto-reset was exercised
        assert len(rb) == n_envs and ra == rb
    finally:
        ref.close()
        vec.close()


def test_attributes_methods_and_options_reach_the_right_env():
    vec = BatchedSubprocVecEnv([_cartpole] * 5, n_workers=2)
    try:
        vec.set_attr("marker", 7, indices=[1, 3])
        assert vec.get_attr("marker", indices=[1, 3]) == [7, 7]
        vec.set_attr("marker", 9)
        assert vec.get_attr("marker") == [9] * 5
        assert vec.env_method("get_episode_rewards", indices=4) == [[]]
        assert vec.env_is_wrapped(Monitor) == [True] * 5
        vec.seed(11)
        vec.set_options({"low": -0.01, "high": 0.01})
        obs = vec.reset()
        assert obs.shape == (5, 4) and np.abs(obs).max() <= 0.01  # the options reached every env
        ref = DummyVecEnv([_cartpole] * 5)
        ref.seed(11)
        ref.set_options({"low": -0.01, "high": 0.01})
        np.testing.assert_array_equal(obs, ref.reset())  # env i got seed 11 + i, as in DummyVecEnv
        ref.close()
    finally:
        vec.close()
    vec.close()  # closing twice is harmless


def test_bad_worker_count_is_a_value_error():
    with pytest.raises(ValueError, match="n_workers"):
        BatchedSubprocVecEnv([_cartpole] * 2, n_workers=3)
    with pytest.raises(ValueError, match="n_workers"):
        BatchedSubprocVecEnv([_cartpole] * 2, n_workers=0)
    with pytest.raises(ValueError, match="at least one env"):
        BatchedSubprocVecEnv([], n_workers=1)


def test_build_vec_env_batched_pinned_on_a_liquid_control_env():
    from liquid_control.learn.ppo import build_vec_env

    pin = hasattr(os, "sched_setaffinity")
    venv = build_vec_env("LiquidControl/DroneHover-v0", {}, 4, 0, "batched", pin=pin)
    try:
        assert isinstance(venv, BatchedSubprocVecEnv)
        assert venv.n_workers == min(4, len(os.sched_getaffinity(0)))
        obs = venv.reset()
        acts = np.stack([venv.action_space.sample() for _ in range(4)])
        o, r, d, infos = venv.step(acts)
        assert o.shape == obs.shape == (4, *venv.observation_space.shape) and r.shape == d.shape == (4,)
    finally:
        venv.close()
    with pytest.raises(ValueError, match="vec env kind"):
        build_vec_env("LiquidControl/DroneHover-v0", {}, 2, 0, "threads")


class _Fragile(gym.Env):
    """CartPole-sized env whose step raises after ``n`` steps (or whose construction raises)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, n: int = 3, broken: bool = False) -> None:
        if broken:
            raise ValueError("no such layout family 'forrest'")
        self.n, self.t = n, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t > self.n:
            raise FloatingPointError("the body left the world")
        return np.zeros(4, np.float32), 0.0, False, False, {}


def _fragile() -> gym.Env:
    return _Fragile()


def _broken() -> gym.Env:
    return _Fragile(broken=True)


def test_a_failing_env_is_a_clear_error_and_close_still_works():
    vec = BatchedSubprocVecEnv([_fragile, _fragile, _cartpole], n_workers=2)
    try:
        vec.reset()
        for _ in range(3):
            vec.step(np.zeros(3, dtype=np.int64))
        with pytest.raises(RuntimeError, match="the body left the world"):  # the worker's traceback
            vec.step(np.zeros(3, dtype=np.int64))
        assert vec.get_attr("n", indices=[0, 1]) == [3, 3]  # the workers still answer
    finally:
        vec.close()
    assert not any(p.is_alive() for p in vec.processes)
    with pytest.raises(RuntimeError, match="no such layout family"):
        BatchedSubprocVecEnv([_cartpole, _broken], n_workers=2)
