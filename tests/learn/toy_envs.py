"""Tiny stand-in envs for the learn tests (``toy_envs:ToyReach-v0`` registers on import).

ToyReach: a point on a line moves toward a goal; the privileged ``ToyExpert`` reads the goal from the
env. ``crash_seed`` makes ``step`` raise for that reset seed (to test failed-episode records).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ToyReachEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, split: str = "train", crash_seed: int = -1, max_steps: int = 40) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"bad split {split!r}")
        self.options = {"split": split, "crash_seed": crash_seed, "max_steps": max_steps}
        self.crash_seed, self.max_steps = crash_seed, max_steps
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.layout = None

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, 0.0, 0.0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.seed_, self.k, self.x, self.path = int(seed or 0), 0, 0.0, 0.0
        self.goal = float(self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(0.8, 1.6))
        return self._obs(), self._info(False)

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.goal - self.x, 1.0], np.float32)

    def _info(self, success: bool) -> dict:
        return {"is_success": success, "collision": False, "timeout": False,
                "distance_to_goal": abs(self.goal - self.x), "path_length": self.path,
                "layout_id": f"line:{self.seed_}", "layout_seed": self.seed_, "family": "line", "t": self.k}

    def step(self, action):
        if self.seed_ == self.crash_seed:
            raise RuntimeError("simulated crash")
        a = float(np.clip(np.asarray(action).ravel()[0], -1.0, 1.0))
        self.x += 0.1 * a
        self.path += abs(0.1 * a)
        self.k += 1
        success = abs(self.goal - self.x) < 0.1
        truncated = self.k >= self.max_steps and not success
        info = self._info(success)
        info["timeout"] = truncated
        return self._obs(), -abs(self.goal - self.x), success, truncated, info


class ToyExpert:
    """Privileged proportional controller toward the goal."""

    def reset(self, env, obs) -> None:
        self.env = env.unwrapped

    def act(self, obs) -> np.ndarray:
        return np.array([np.clip(3.0 * (self.env.goal - self.env.x), -1.0, 1.0)], np.float32)

    def neuron_state(self):
        return None


if "ToyReach-v0" not in gym.registry:
    gym.register(id="ToyReach-v0", entry_point=ToyReachEnv, disable_env_checker=True)
