"""A tiny stand-in navigation env for evaluation tests (registers ``fake_nav:FakeNav-v0`` on import).

A point moves on a line towards a goal; it fulfils the info contract of docs/internals.md.
``crash_seed`` makes ``step`` raise for that reset seed (to test error episodes).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class FakeNavEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, split: str = "train", crash_seed: int = -1, max_steps: int = 30,
                 render_mode: str | None = None, layout: dict | None = None) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"bad split {split!r}")
        self.options = {"split": split, "crash_seed": crash_seed, "max_steps": max_steps,
                        "layout": layout or {}}
        self.crash_seed, self.max_steps, self.render_mode = crash_seed, max_steps, render_mode
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.layout = None
        self._seed = 0

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, 0.0, 0.0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._seed = int(seed or 0)
        self.x, self.k, self.path, self.effort = 0.0, 0, 0.0, 0.0
        self.goal = float(self.np_random.uniform(0.5, 2.0))
        return self._obs(), self._info(False, False)

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.goal - self.x], np.float32)

    def _info(self, success: bool, timeout: bool) -> dict:
        return {"is_success": success, "collision": False, "timeout": timeout,
                "distance_to_goal": abs(self.goal - self.x), "path_length": self.path,
                "min_clearance": 1.0 + 0.01 * self._seed % 7, "control_effort": self.effort,
                "layout_id": f"line:{self._seed}", "layout_seed": self._seed, "family": "line",
                "t": 0.1 * self.k}

    def step(self, action):
        if self._seed == self.crash_seed:
            raise RuntimeError("simulated crash")
        a = float(np.clip(np.asarray(action).ravel()[0], -1, 1))
        dx = 0.2 * a
        self.x += dx
        self.k += 1
        self.path += abs(dx)
        self.effort += a * a
        success = abs(self.goal - self.x) < 0.1
        timeout = self.k >= self.max_steps and not success
        return self._obs(), float(-abs(self.goal - self.x)), success, timeout, self._info(success, timeout)

    def render(self):
        img = np.full((48, 64, 3), 255, np.uint8)
        img[20:28, int(np.clip(10 + 20 * self.x, 0, 63))] = (0, 0, 200)
        return img


if "FakeNav-v0" not in gym.registry:
    gym.register(id="FakeNav-v0", entry_point=FakeNavEnv, disable_env_checker=True)


def make_checkpoint(path, env_options: dict | None = None, obs_dim: int = 2,
                    env_id: str = "fake_nav:FakeNav-v0"):
    """A tiny untrained LTC (AutoNCP wiring, 12 neurons) checkpoint for this env (2 obs, 1 action)."""
    import torch

    from liquid_control.learn.checkpoint import save_checkpoint
    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig(obs_dim=obs_dim, act_dim=1, budget=None, encoder_hidden=[8], features=6,
                                    core_kwargs={"units": 12}))
    policy.set_normalization(np.zeros(obs_dim), np.ones(obs_dim), -np.ones(1), np.ones(1))
    return save_checkpoint(path, policy, {"env_id": env_id, "env_options": env_options or {}}, {})
