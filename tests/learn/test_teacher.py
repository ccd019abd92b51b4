"""Teacher options: an expert with options (spec ``{"expert": {...}}``) and DART-style noisy demos,
recorded in the dataset manifest and carried into DAgger relabelling."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from liquid_control import cli
from liquid_control.learn.bc import BCConfig, train_bc
from liquid_control.learn.dagger import demo_expert
from liquid_control.learn.demos import collect, load_dataset, parse_expert_options, teacher_specs
from liquid_control.learn.rollout import expert_spec, make_controller


class GainExpert:
    """Toy expert with an option: proportional gain toward the goal."""

    def __init__(self, gain: float = 3.0) -> None:
        self.gain = gain

    def reset(self, env, obs) -> None:
        self.env = env.unwrapped

    def act(self, obs) -> np.ndarray:
        return np.array([np.clip(self.gain * (self.env.goal - self.env.x), -1.0, 1.0)], np.float32)

    def neuron_state(self):
        return None


@pytest.fixture
def gain_env_id(toy_env_id, monkeypatch) -> str:
    import toy_envs

    import liquid_control.experts as experts

    monkeypatch.setattr(toy_envs, "GainExpert", GainExpert, raising=False)
    monkeypatch.setitem(experts._EXPERTS, "ToyReachEnv", "toy_envs:GainExpert")
    return toy_env_id


def _expert_actions(env_id: str, ep: dict, gain: float) -> np.ndarray:
    """The clean GainExpert's action on every state of a stored episode (replayed from its seed)."""
    env = gym.make(env_id)
    env.reset(seed=ep["seed"])
    u = env.unwrapped
    return np.array([np.clip(gain * (u.goal - o[0]), -1.0, 1.0) for o in ep["observations"]])[:, None]


def test_teacher_specs_and_options_parsing():
    assert teacher_specs() == ("expert", None)
    assert teacher_specs({"gain": 2.0}) == ({"expert": {"gain": 2.0}}, None)
    assert teacher_specs({"gain": 2.0}, 0.2) == ({"noise": {"expert": {"gain": 2.0}}, "std": 0.2},
                                                 {"expert": {"gain": 2.0}})
    assert parse_expert_options(None) is None and parse_expert_options('{"a": 1}') == {"a": 1}
    for bad in ("[1]", "{nope"):
        with pytest.raises(ValueError, match="expert-options"):
            parse_expert_options(bad)
    with pytest.raises(ValueError, match="noise"):
        teacher_specs(None, -0.1)
    with pytest.raises(ValueError, match="bad controller spec"):
        make_controller({"expert": 2.0})


def test_expert_options_reach_the_expert_and_the_manifest(gain_env_id, tmp_path):
    m = collect(gain_env_id, 3, tmp_path / "ds", workers=1, progress=False,
                controller=expert_spec({"gain": 0.5}))
    assert m["controller"] == {"expert": {"gain": 0.5}} and demo_expert(m) == {"expert": {"gain": 0.5}}
    ds = load_dataset(tmp_path / "ds")
    for ep in ds.episodes:
        np.testing.assert_allclose(ep["actions"], _expert_actions(gain_env_id, ep, 0.5), atol=1e-6)
    with pytest.raises(ValueError, match="no option"):
        collect(gain_env_id, 1, tmp_path / "bad", workers=1, progress=False,
                controller=expert_spec({"gian": 0.5}))


def test_noisy_demos_execute_perturbed_actions_and_store_clean_labels(toy_env_id, tmp_path):
    controller, labeler = teacher_specs(None, 0.3)
    m = collect(toy_env_id, 4, tmp_path / "ds", workers=1, progress=False, controller=controller,
                labeler=labeler)
    assert m["controller"] == {"noise": "expert", "std": 0.3} and m["labeler"] == "expert"
    ds = load_dataset(tmp_path / "ds")
    for ep in ds.episodes:
        assert not np.allclose(ep["actions"], ep["executed"])  # noise was executed ...
        assert np.all(np.abs(ep["executed"]) <= 1.0)  # ... inside the action space
        np.testing.assert_allclose(ep["actions"], _expert_actions(toy_env_id, ep, 3.0), atol=1e-6)


def test_dagger_relabels_with_the_demos_expert_unless_told_otherwise(gain_env_id, tmp_path):
    demos = tmp_path / "demos"
    collect(gain_env_id, 10, demos, workers=1, progress=False, controller=expert_spec({"gain": 2.0}))
    base = dict(env_id=gain_env_id, demos=[str(demos)], policy="mlp", budget=None, epochs=1, chunk_len=16,
                burn_in=0, dagger_rounds=1, dagger_episodes=2, dagger_epochs=1, workers=1, progress=False)
    for name, options, gain in (("inherit", None, 2.0), ("override", {"gain": 1.0}, 1.0)):
        run = train_bc(BCConfig(out=str(tmp_path / name), expert_options=options, **base))
        agg = load_dataset(run / "dagger")
        assert agg.manifest["labeler"] == {"expert": {"gain": gain}}
        assert agg.manifest["controller"]["mix"][0] == {"expert": {"gain": gain}}
        for ep in agg.episodes:
            np.testing.assert_allclose(ep["actions"], _expert_actions(gain_env_id, ep, gain), atol=1e-6)
        card = json.loads((run / "card.json").read_text())
        assert card["config"]["expert_options"] == options


def test_collect_command_with_teacher_options(gain_env_id, tmp_path, capsys):
    code = cli.main(["collect", "--env", gain_env_id, "--episodes", "2", "--workers", "1",
                     "--expert-options", '{"gain": 1.5}', "--noise", "0.1", "--out", str(tmp_path / "ds")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["controller"] == {"noise": {"expert": {"gain": 1.5}}, "std": 0.1}
    assert out["labeler"] == {"expert": {"gain": 1.5}}
