"""Checkpoints: round trip with recurrent state, atomic files, clear errors, the info command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liquid_control import cli
from liquid_control.learn.checkpoint import load_controller, load_policy, save_checkpoint
from liquid_control.learn.rollout import make_controller
from liquid_control.nets.policy import PolicyConfig, PolicyNet


def _policy(core: str = "ltc") -> PolicyNet:
    torch.manual_seed(1)
    p = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core=core))
    p.set_normalization(np.arange(6.0), np.full(6, 2.0), np.array([-1.0, 0.0]), np.array([1.0, 3.0]))
    return p


@pytest.mark.parametrize("core", ["ltc", "lstm"])
def test_round_trip_gives_identical_actions_with_recurrent_state(tmp_path, core):
    p = _policy(core)
    save_checkpoint(tmp_path / "ck", p, {"env_id": "X-v0", "env_options": {"split": "train"}}, {"note": "t"})
    assert sorted(f.name for f in (tmp_path / "ck").iterdir()) == ["card.json", "config.json", "policy.pt"]
    torch.load(tmp_path / "ck" / "policy.pt", weights_only=True)  # plain weights
    q, cfg = load_policy(tmp_path / "ck")
    assert cfg["env_id"] == "X-v0" and cfg["env_options"] == {"split": "train"}
    assert cfg["normalization"]["act_high"] == [1.0, 3.0]
    obs = np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32) * 3
    with torch.no_grad():
        ref, _ = p(torch.from_numpy(obs)[None])
    ctrl = load_controller(tmp_path / "ck")  # batch-1 stateful controller, step by step
    ctrl.reset(None, obs[0])
    acts = np.stack([ctrl.act(o) for o in obs])
    np.testing.assert_allclose(acts, ref[0].numpy(), atol=1e-5)
    assert ctrl.neuron_state().shape == (p.state_size,)
    ctrl.reset(None, obs[0])  # reset really restarts the memory
    np.testing.assert_allclose(ctrl.act(obs[0]), ref[0, 0].numpy(), atol=1e-5)
    spec_ctrl = make_controller(str(tmp_path / "ck"))  # the rollout layer's checkpoint spec
    spec_ctrl.reset(None, obs[0])
    np.testing.assert_allclose(spec_ctrl.act(obs[0]), ref[0, 0].numpy(), atol=1e-5)


def test_card_has_parameter_counts_and_provenance(tmp_path):
    card = {"command": "train bc ...", "data": ["d"]}
    save_checkpoint(tmp_path / "ck", _policy(), {"env_id": "X-v0"}, card)
    card = json.loads((tmp_path / "ck" / "card.json").read_text())
    assert card["command"] == "train bc ..." and card["params"]["trainable"] > card["params"]["effective"] > 0


def test_missing_or_corrupt_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(tmp_path / "none")
    save_checkpoint(tmp_path / "ck", _policy(), {"env_id": "X-v0"}, {})
    (tmp_path / "ck" / "policy.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_policy(tmp_path / "ck")
    (tmp_path / "ck" / "policy.pt").unlink()
    with pytest.raises(FileNotFoundError, match="policy.pt"):
        load_policy(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="corrupt"):
        load_policy(tmp_path / "ck")
    with pytest.raises(ValueError, match="env_id"):
        save_checkpoint(tmp_path / "c2", _policy(), {}, {})


def test_saving_leaves_no_temp_files_and_overwrites_atomically(tmp_path):
    p = _policy()
    for _ in range(2):
        save_checkpoint(tmp_path / "ck", p, {"env_id": "X-v0"}, {})
    assert not [f for f in (tmp_path / "ck").iterdir() if f.name.startswith(".")]


def test_info_command_prints_architecture_params_and_provenance(tmp_path, capsys):
    save_checkpoint(tmp_path / "ck", _policy(), {"env_id": "X-v0"}, {"command": "cmd", "wall_clock_s": 3.0})
    assert cli.main(["info", str(tmp_path / "ck")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"]["core"] == "ltc" and info["architecture"]["act_dim"] == 2
    assert info["params"]["trainable"] > info["params"]["effective"]
    assert info["provenance"] == {"command": "cmd", "wall_clock_s": 3.0}
    assert cli.main(["info", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
