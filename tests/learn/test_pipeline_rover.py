"""End to end on RoverNav: collect → BC → DAgger on small layouts beats the untrained policy closed loop."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import liquid_control  # noqa: F401  (registers the env ids)
from liquid_control.learn.bc import BCConfig, train_bc
from liquid_control.learn.checkpoint import PolicyController, load_controller
from liquid_control.learn.demos import collect
from liquid_control.learn.rollout import run_episode
from liquid_control.nets.policy import PolicyConfig, PolicyNet

ENV = "LiquidControl/RoverNav-v0"
SMALL = {"layout": {"family": "forest", "arena": 10.0, "goal_distance": [3.0, 5.0], "density": 0.2}}


def _closed_loop(controller, seeds):
    """Success rate and mean progress (1 - final/initial goal distance) on test layouts."""
    env = gym.make(ENV, split="test", **SMALL)
    success, progress = [], []
    for s in seeds:
        _, info = env.reset(seed=s)
        d0 = info["distance_to_goal"]
        ep = run_episode(env, controller, s)
        success.append(bool(ep.info["is_success"]))
        progress.append(1.0 - ep.info["distance_to_goal"] / d0)
    env.close()
    return float(np.mean(success)), float(np.mean(progress))


@pytest.mark.slow
def test_tiny_collect_bc_dagger_improves_closed_loop_progress(tmp_path):
    torch.manual_seed(0)
    demos = tmp_path / "demos"
    m = collect(ENV, 24, demos, overrides=SMALL, workers=2, progress=False)
    assert m["counts"]["episodes"] == 24 and not m["failed"]
    cfg = BCConfig(env_id=ENV, demos=[str(demos)], out=str(tmp_path / "run"), policy="ltc", budget=8000,
                   features=16, encoder_hidden=[32], epochs=30, lr=1e-2, dagger_rounds=1,
                   dagger_episodes=8, dagger_epochs=8, workers=2, progress=False)
    run = train_bc(cfg)
    card = json.loads((run / "card.json").read_text())
    assert len(card["metrics"]["dagger"]) == 1 and card["metrics"]["dagger"][0]["episodes"] == 8
    seeds = range(8)
    torch.manual_seed(0)
    untrained = PolicyNet(PolicyConfig(obs_dim=m["obs_dim"], act_dim=2, budget=8000, features=16,
                                       encoder_hidden=[32]))
    before = _closed_loop(PolicyController(untrained), seeds)
    after = _closed_loop(load_controller(run), seeds)
    print(f"untrained (success, progress) {before}, trained {after}")
    assert after[1] > before[1] + 0.2 and after[0] >= before[0]
