"""DroneHover's reward is one PPO can learn from (issue 7, target 1): flying the hover expert through the
ctbr interface, holding the target must pay more than holding a point a little off it, staying alive must
pay, and the return must not depend on how the drone gets to where it ends up (the progress term is
potential-based)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401  (registers the env ids)
from liquid_control.experts.drone import HoverExpert

ENV = "LiquidControl/DroneHover-v0"


class _OffsetExpert(HoverExpert):
    """The hover expert aiming at ``target + offset`` instead of the target."""

    def __init__(self, offset: tuple[float, float, float]) -> None:
        super().__init__()
        self.offset = np.asarray(offset, dtype=float)

    def act(self, obs: np.ndarray) -> np.ndarray:
        st = self.env.state
        e = st["target"] + self.offset - st["position"]
        v = self.gain * e
        n = float(np.linalg.norm(v[:2]))
        if n > self.max_speed:
            v[:2] *= self.max_speed / n
        v[2] = float(np.clip(v[2], -0.8, 0.8))
        return self._emit(float(v[0]), float(v[1]), float(v[2]), 0.0)


def _episode(offset: tuple[float, float, float], seed: int, episode_s: float = 4.0) -> tuple[list, dict]:
    env = gym.make(ENV, action_type="ctbr", split="val", **{"task.episode_s": episode_s})
    ctrl = _OffsetExpert(offset)
    obs, info = env.reset(seed=seed)
    ctrl.reset(env, obs)
    rewards = []
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(ctrl.act(obs))
        rewards.append(r)
        done = term or trunc
    env.close()
    return rewards, info


@pytest.mark.parametrize("seed", [0, 1])
def test_holding_the_target_pays_more_than_holding_near_it(seed):
    on, info_on = _episode((0.0, 0.0, 0.0), seed)
    near, info_near = _episode((0.25, 0.0, 0.0), seed)
    far, info_far = _episode((0.6, 0.0, 0.0), seed)
    assert info_on["is_success"] and not info_near["is_success"] and not info_far["is_success"]
    assert not (info_on["collision"] or info_near["collision"] or info_far["collision"])
    # the last second: all three are settled where they aim
    last = slice(-30, None)
    assert np.mean(on[last]) > np.mean(near[last]) > np.mean(far[last]) > 0.0  # alive pays, precision pays
    assert sum(on) > sum(near) > sum(far)


def test_closing_in_pays_at_once_and_a_detour_does_not_pay():
    """The progress term credits each step that closes in (at once, not only via the value function),
    and it is potential-based: flying away from the target and back earns less than waiting."""
    env = gym.make(ENV, action_type="velocity", split="val", **{"task.init_speed": 0.0, "task.init_tilt": 0.0,
                                                                "task.episode_s": 3.0})
    rewards = {}
    for plan in ("wait", "approach", "detour"):
        obs, _ = env.reset(seed=3)
        u = env.unwrapped
        away = u.position - u.target
        away /= np.linalg.norm(away)
        rewards[plan] = []
        for t in range(u.max_steps):
            a = np.zeros(4, dtype=np.float32)
            sign = {"wait": 0.0, "approach": -1.0, "detour": 1.0 if t < 15 else -1.0}[plan]
            if t < 30 and sign:  # 0.5 m/s away from / towards the target
                c, s = np.cos(u.rig.quad.yaw), np.sin(u.rig.quad.yaw)
                v = 0.5 * sign * away
                a[:3] = u.rig.actions.from_velocity(c * v[0] + s * v[1], -s * v[0] + c * v[1], v[2], 0.0)[:3]
            obs, r, term, trunc, _ = env.step(a)
            rewards[plan].append(r)
            if term or trunc:
                break
    env.close()
    assert sum(rewards["approach"][:15]) > sum(rewards["wait"][:15])
    assert sum(rewards["wait"]) > sum(rewards["detour"])
