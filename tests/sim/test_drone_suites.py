"""envs/dronenav.yaml and envs/dronehover.yaml: every suite builds its env; held-out families stay out."""

from __future__ import annotations

import gymnasium as gym
import pytest

import liquid_control  # noqa: F401
from liquid_control.evaluate.suites import load_suite_files, resolve_condition
from liquid_control.sim.options import as_list
from liquid_control.sim.tasks.drone_nav import DroneNavEnv

FILES = load_suite_files()


@pytest.mark.parametrize("env_id", ["LiquidControl/DroneNav-v0", "LiquidControl/DroneHover-v0"])
def test_every_suite_builds_the_env(env_id):
    data = FILES[env_id]
    assert {"test", "ood-wind", "ood-noise", "ood-latency"} <= set(data["suites"])
    for name in data["suites"]:
        cond = resolve_condition(env_id, suite=name)
        assert cond.split == "test"
        env = gym.make(env_id, **cond.options)
        env.close()


def test_dronenav_suites_hold_out_a_family():
    data = FILES["LiquidControl/DroneNav-v0"]
    train, held = set(data["train_families"]), set(data["heldout_families"])
    assert held and not train & held
    assert set(DroneNavEnv.TRAIN_FAMILIES) == train
    for name, spec in data["suites"].items():
        fams = set(as_list(spec["options"]["layout"]["family"]))
        if name == "ood-family":
            assert fams <= held
        else:
            assert fams <= train
    assert "ood-dense" in data["suites"] and "ood-family" in data["suites"]
