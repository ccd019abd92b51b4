"""Gated DAgger rollouts: the learner drives, the teacher takes over where it is about to fail."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import liquid_control  # noqa: F401  (registers the env ids)
from liquid_control.learn.bc import add_arguments, config_from_args
from liquid_control.learn.dagger import parse_gate
from liquid_control.learn.demos import _leaf_specs
from liquid_control.learn.rollout import GateController, make_controller, run_episode

ROVER = "LiquidControl/RoverNav-v0"


class Scripted:
    """A controller that always acts the same (a learner that never looks where it goes)."""

    def __init__(self, action) -> None:
        self.action = np.asarray(action, np.float32)

    def reset(self, env, obs) -> None:
        pass

    def act(self, obs) -> np.ndarray:
        return self.action.copy()

    def neuron_state(self):
        return None


class Recorder(Scripted):
    """A scripted teacher that counts how often it is asked (it must be asked on every step)."""

    def __init__(self, action) -> None:
        super().__init__(action)
        self.calls = 0

    def act(self, obs) -> np.ndarray:
        self.calls += 1
        return super().act(obs)


@pytest.fixture(scope="module")
def rover():
    env = gym.make(ROVER, split="test", layout={"family": "forest"})
    yield env
    env.close()


def test_blind_learner_collides_and_the_gated_one_does_not(rover):
    seeds = range(2_000_000, 2_000_006)
    blind = [run_episode(rover, Scripted([1.0, 0.0]), s, max_steps=200).info["collision"] for s in seeds]
    assert sum(blind) >= 3  # full speed straight ahead hits the forest
    gate = GateController(make_controller("expert"), Scripted([1.0, 0.0]), clearance=0.15, horizon=0.5,
                          hold=10)
    gated = []
    for s in seeds:
        ep = run_episode(rover, gate, s, max_steps=200)
        gated.append(ep.info["collision"])
        if blind[s - seeds[0]]:
            assert gate.takeovers >= 1 and gate.teacher_steps >= 10
    assert sum(gated) < sum(blind)


def test_teacher_acts_exactly_in_hold_windows_and_sees_every_step(rover):
    teacher = Recorder([0.0, 1.0])  # turns in place: never the learner's action
    gate = GateController(teacher, Scripted([1.0, 0.0]), clearance=0.3, horizon=1.0, hold=7)
    ep = run_episode(rover, gate, 2_000_001, max_steps=150)
    assert teacher.calls == len(ep.actions)  # asked on every step, acting or not
    by_teacher = np.all(ep.actions == np.float32([0.0, 1.0]), axis=1)
    assert by_teacher.sum() == gate.teacher_steps > 0
    # every takeover is a run of whole hold windows (7 steps each)
    runs, n = [], 0
    for t in by_teacher:
        if t:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    runs += [n] if n else []
    assert all(r % 7 == 0 for r in runs[:-1]) and gate.takeovers >= len(runs)


def test_patience_hands_a_stalled_learner_to_the_teacher_until_it_made_progress(rover):
    idle = Scripted([0.0, 0.0])
    never = GateController(make_controller("expert"), idle, clearance=0.0, hold=5)
    run_episode(rover, never, 2_000_002, max_steps=200)
    assert never.takeovers == 0
    patient = GateController(make_controller("expert"), idle, clearance=0.0, hold=5, patience=1.0,
                             progress=0.5)
    start = rover.unwrapped.layout.geodesic_to_goal
    ep = run_episode(rover, patient, 2_000_002, max_steps=200)
    # stalled for 1 s -> the teacher drives until the goal is 0.5 m nearer (at most 2 s), and again
    assert patient.takeovers >= 3
    assert 5 * patient.takeovers <= patient.teacher_steps <= 40 * patient.takeovers
    u = rover.unwrapped
    assert u.layout.geodesic_to_goal(u.position[:2]) < start(u.layout.start[:2]) - 1.0
    assert not ep.info["collision"]


def test_gate_keeps_a_drone_inside_the_arena():
    env = gym.make("LiquidControl/DroneNav-v0", split="test", layout={"family": "forest", "density": 0.0})
    ahead = Scripted([1.0, 0.0, 0.0, 0.0])  # full speed forward, forever
    blind = run_episode(env, ahead, 2_000_000, max_steps=600)
    assert blind.info["collision"]  # left the arena (nothing else to hit)
    gate = GateController(make_controller("expert"), ahead, clearance=0.3, horizon=1.0, hold=15)
    ep = run_episode(env, gate, 2_000_000, max_steps=600)
    assert not ep.info["collision"] and gate.takeovers >= 1
    env.close()


def test_gate_specs_parse_and_reject_bad_input(tmp_path):
    assert parse_gate(None) is None and parse_gate("{}") == {}
    assert parse_gate('{"clearance": 0.2, "patience": 4}') == {"clearance": 0.2, "patience": 4}
    for bad in ("[1]", '{"radius": 1}', "{nope"):
        with pytest.raises(ValueError):
            parse_gate(bad)
    spec = {"gate": ["expert", "random"], "clearance": 0.2, "hold": 3}
    ctrl = make_controller(spec)
    assert isinstance(ctrl, GateController) and ctrl.hold == 3 and ctrl.clearance == 0.2
    assert _leaf_specs(spec) == ["expert", "random"]
    with pytest.raises(ValueError, match="gate"):
        make_controller({"gate": ["expert", "random"], "radius": 1.0})
    with pytest.raises(ValueError, match="hold"):
        make_controller({"gate": ["expert", "random"], "hold": 0})
    hover = gym.make("LiquidControl/DroneHover-v0")
    with pytest.raises(ValueError, match="navigation env"):
        run_episode(hover, make_controller({"gate": ["expert", "random"]}), 0, max_steps=2)


def test_both_command_lines_carry_the_rollout_options_into_the_config():
    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["--env", "LiquidControl/RoverNav-v0", "--demos", "d", "--out", "o"]
    assert config_from_args(p.parse_args(base)).dagger_gate is None
    cfg = config_from_args(p.parse_args([*base, "--dagger-gate", '{"clearance": 0.05, "hold": 4}']))
    assert cfg.dagger_gate == {"clearance": 0.05, "hold": 4} and cfg.dagger_options == {}
    cfg = config_from_args(p.parse_args([*base, "--dagger-set", "layout.family=[rooms, rooms, forest]",
                                         "--dagger-set", "layout.density=0.4"]))
    assert cfg.dagger_options == {"layout": {"family": ["rooms", "rooms", "forest"], "density": 0.4}}
    with pytest.raises(ValueError, match="dagger-gate"):
        config_from_args(p.parse_args([*base, "--dagger-gate", '{"radius": 1}']))
    script = Path(__file__).resolve().parents[2] / "scripts" / "train_imitation.py"
    spec = importlib.util.spec_from_file_location("train_imitation", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parser().parse_args(["--dagger-gate", '{"patience": 3}',
                                       "--dagger-set", "layout.density=0.4", "--select-last", "4"])
    assert module.rollout_options(args) == {"dagger_gate": {"patience": 3},
                                            "dagger_options": {"layout": {"density": 0.4}},
                                            "select_last": 4, "select_episodes": 100,
                                            "select_margin": 0.0}
    cfg = config_from_args(p.parse_args([*base, "--select-last", "8", "--select-episodes", "30"]))
    assert (cfg.select_last, cfg.select_episodes) == (8, 30)
    assert config_from_args(p.parse_args([*base, "--select-margin", "0.05"])).select_margin == 0.05
    assert (config_from_args(p.parse_args(base)).select_last) == 0  # off by default: the last round's policy


TEACHER = {"expert": {"steering": "arcs", "slow_clearance": 0.5}}


@pytest.mark.parametrize("spec", [
    {"gate": [TEACHER, "random"], "clearance": 0.05, "hold": 5},
    {"mix": [TEACHER, "random"], "beta": 0.5},
    {"noise": TEACHER, "std": 0.3},
], ids=["gate", "mix", "noise"])
def test_echoed_labels_are_a_second_teachers_labels(spec):
    """A worker labels with the acting controller's own teacher action (no second expert): the dataset
    is exactly the one a separately run labeler gives."""
    from liquid_control.learn.demos import episode_job
    from liquid_control.learn.rollout import echo_labeler

    options = {"split": "test", "layout": {"family": "rooms"}, "time_limit": 12.0}
    assert echo_labeler(make_controller(spec), spec, TEACHER) is not None
    assert echo_labeler(make_controller(spec), spec, "expert") is None  # another teacher: its own copy
    job = episode_job(3_000_001, ROVER, options, spec, labeler=TEACHER)
    env = gym.make(ROVER, **options)
    ref = run_episode(env, make_controller(spec), 3_000_001, labeler=make_controller(TEACHER))
    env.close()
    np.testing.assert_array_equal(job["executed"], ref.actions)
    np.testing.assert_array_equal(job["actions"], ref.labels)
    assert not np.array_equal(ref.labels, ref.actions)  # the labels are the teacher's, not what acted
