"""Closed-form readout of reservoir policies, and the RLS controller (no simulator needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liquid_control.learn.readout import RLSController, adapt_options, episode_features, fit_readout
from liquid_control.nets.policy import PolicyConfig, PolicyNet
from liquid_control.nets.reservoir import RidgeAccumulator, frozen_tensors

torch.set_num_threads(1)


def _policy(kind: str = "esn", units: int = 60, obs_dim: int = 5, seed: int = 0) -> PolicyNet:
    torch.manual_seed(seed)
    return PolicyNet(PolicyConfig(obs_dim=obs_dim, act_dim=2, core=kind, budget=None,
                                  encoder_hidden=[16], features=8, core_kwargs={"units": units}))


def _teacher_episodes(teacher: PolicyNet, n: int, steps: int, seed: int) -> list[dict]:
    """Episodes whose actions come from ``teacher`` (so a readout fit can reproduce them exactly)."""
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n):
        obs = rng.normal(size=(steps + i % 5, teacher.config.obs_dim)).astype(np.float32)
        with torch.no_grad():
            act, _ = teacher(torch.from_numpy(obs)[None])
        eps.append({"observations": obs, "actions": act[0].numpy(), "seed": i})
    return eps


def test_fit_readout_recovers_a_reservoir_teacher() -> None:
    teacher = _policy(seed=0)
    with torch.no_grad():  # a known readout (small enough that tanh stays unsaturated)
        teacher.core.readout.weight.copy_(torch.randn_like(teacher.core.readout.weight) * 0.1)
        teacher.core.readout.bias.copy_(torch.tensor([0.1, -0.2]))
        teacher.head.weight.copy_(torch.eye(2))
        teacher.head.bias.zero_()
    student = _policy(seed=0)  # same frozen reservoir and encoder (same seed), different readout
    with torch.no_grad():
        student.core.readout.weight.zero_()
    frozen = frozen_tensors(student.core)
    train, val = _teacher_episodes(teacher, 12, 40, 1), _teacher_episodes(teacher, 3, 40, 2)
    stats = fit_readout(student, train, val)
    assert stats["selected_on"] == "val" and stats["train_steps"] == sum(len(e["actions"]) for e in train)
    assert stats["val_loss"] < 1e-4
    fresh = _teacher_episodes(teacher, 2, 60, 9)  # the recovered map generalises to new inputs
    with torch.no_grad():
        for e in fresh:
            pred, _ = student(torch.from_numpy(e["observations"])[None])
            np.testing.assert_allclose(pred[0].numpy(), e["actions"], atol=2e-2)
    for name, t in frozen.items():
        assert torch.equal(t, dict(student.core.named_buffers())[name])
    # validation picks the best of the grid
    losses = stats["val_loss_by_alpha"]
    assert stats["val_loss"] == min(losses.values())


def test_fit_readout_rejects_non_reservoir() -> None:
    policy = PolicyNet(PolicyConfig(obs_dim=5, act_dim=2, core="gru", budget=None, core_kwargs={"units": 8}))
    with pytest.raises(ValueError, match="reservoir"):
        fit_readout(policy, [{"observations": np.zeros((3, 5)), "actions": np.zeros((3, 2))}])


def test_lsm_readout_fit_runs() -> None:
    teacher = _policy("lsm", units=40, seed=3)
    eps = _teacher_episodes(teacher, 4, 20, 5)
    student = _policy("lsm", units=40, seed=3)
    stats = fit_readout(student, eps[:3], eps[3:])
    assert np.isfinite(stats["val_loss"]) and stats["features"] == 40 + 8


def test_closed_form_statistics_of_100k_steps_match_float64() -> None:
    """100k steps of reservoir states through the chunked float32 statistics (timing: bench readout)."""
    policy = _policy(units=200)
    eps = [{"observations": np.random.default_rng(i).normal(size=(500, 5)).astype(np.float32),
            "actions": np.random.default_rng(i).uniform(-1, 1, size=(500, 2)).astype(np.float32)}
           for i in range(200)]
    acc = RidgeAccumulator(policy.core.readout_features, 2)
    exact = RidgeAccumulator(policy.core.readout_features, 2)
    for k, (phi, act) in enumerate(episode_features(policy, eps, batch=100)):
        acc.add(phi, act)
        if k == 0:
            exact.add(phi.double().numpy(), act.double().numpy())
    w, b = acc.solve(1e-3)
    assert acc.n == 100_000 and np.isfinite(w).all() and w.shape == (2, 208)
    first = RidgeAccumulator(policy.core.readout_features, 2)
    first.add(*next(episode_features(policy, eps, batch=100)))
    np.testing.assert_allclose(first.centred()[0], exact.centred()[0], rtol=1e-4, atol=1e-2)


class _ScriptedTeacher:
    """A teacher controller that returns fixed actions."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = action
        self.resets = 0

    def reset(self, env, obs) -> None:
        self.resets += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.action


def test_rls_controller_moves_readout_towards_teacher_and_restarts() -> None:
    policy = _policy(units=30)
    target = np.array([0.5, -0.3], np.float32)
    teacher = _ScriptedTeacher(target)
    ctrl = RLSController(policy, teacher, forgetting=0.99, delta=1.0)
    rng = np.random.default_rng(0)
    ctrl.reset(None, np.zeros(5))
    first = ctrl.act(rng.normal(size=5))
    for _ in range(200):
        last = ctrl.act(rng.normal(size=5))
    assert np.abs(last - target).max() < 0.05 < np.abs(first - target).max()
    assert ctrl.errors[-1] < ctrl.errors[0]
    # the checkpoint's readout is untouched and the next episode starts from it again
    ctrl.reset(None, np.zeros(5))
    again = ctrl.act(np.zeros(5))
    with torch.no_grad():
        ref, _ = policy(torch.zeros(1, 1, 5))
    np.testing.assert_allclose(again, ref[0, 0].numpy(), atol=1e-5)
    assert teacher.resets == 2


def test_rls_controller_teach_window_then_frozen() -> None:
    class Counting(_ScriptedTeacher):
        calls = 0

        def act(self, obs):
            self.calls += 1
            return self.action

    teacher = Counting(np.array([0.5, -0.3], np.float32))
    ctrl = RLSController(_policy(units=30), teacher, forgetting=0.99, teach_steps=5)
    ctrl.reset(None, np.zeros(5))
    rng = np.random.default_rng(0)
    for _ in range(5):
        ctrl.act(rng.normal(size=5))
    w = ctrl.rls.theta.copy()
    for _ in range(20):
        ctrl.act(rng.normal(size=5))
    assert teacher.calls == 5 and ctrl.rls.updates == 5 and np.array_equal(w, ctrl.rls.theta)
    with pytest.raises(ValueError):
        RLSController(_policy(), teacher, teach_steps=-1)


def test_adapt_options() -> None:
    assert adapt_options("none") is None and adapt_options(None) is None
    spec = adapt_options("rls", forgetting=0.98)
    assert spec["method"] == "rls" and spec["forgetting"] == 0.98 and spec["teacher"] == "expert"
    with pytest.raises(ValueError):
        adapt_options("sgd")
    with pytest.raises(ValueError):
        RLSController(_policy(), _ScriptedTeacher(np.zeros(2)), forgetting=0.0)


def test_train_bc_esn_evaluate_adapt_and_plot(tmp_path, toy_env_id, capsys, load_script) -> None:
    """End to end on the toy env: ``train bc --policy esn`` fits in closed form, ``--adapt rls`` runs, and
    ``plot wiring`` draws the reservoir's connectivity."""
    import json

    from liquid_control.cli import main
    from liquid_control.evaluate.runner import evaluate
    from liquid_control.evaluate.suites import Condition
    from liquid_control.learn.bc import BCConfig, train_bc
    from liquid_control.learn.checkpoint import load_policy
    from liquid_control.learn.demos import collect

    collect(toy_env_id, 12, tmp_path / "demos", workers=1, progress=False)
    out = train_bc(BCConfig(env_id=toy_env_id, demos=[str(tmp_path / "demos")], out=str(tmp_path / "esn"),
                            policy="esn", budget=None, encoder_hidden=[16], features=8,
                            core_kwargs={"units": 40}, progress=False))
    card = json.loads((out / "card.json").read_text())
    assert card["trainer"] == "ridge" and card["metrics"]["best_val_loss"] < 0.05
    policy, _ = load_policy(out)
    assert policy.core.units == 40
    cond = Condition("test", "test", {"split": "test"}, {})
    frozen = evaluate(str(out), toy_env_id, cond, episodes=4, workers=1, progress=False)
    adapted = evaluate(str(out), toy_env_id, cond, episodes=4, workers=1, progress=False,
                       adapt=adapt_options("rls"))
    assert adapted["adapt"]["method"] == "rls" and "adapt" not in frozen
    assert adapted["errors"] == 0 and frozen["errors"] == 0
    assert main(["plot", "wiring", str(out), "--out", str(tmp_path / "w.png")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["units"] == 40 and info["synapses"] == 400 and (tmp_path / "w.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="reservoir"):
        evaluate("expert", toy_env_id, cond, episodes=1, workers=1, progress=False,
                 adapt=adapt_options("rls"))
    # scripts/reservoir_adapt.py: frozen vs RLS conditions on the same episodes, summary with paired CIs
    mod = load_script("reservoir_adapt")
    assert mod.main(["--policy", str(out), "--split", "test", "--episodes", "3", "--teach-steps", "2",
                     "--workers", "1", "--out", str(tmp_path / "adapt")]) == 0
    summary = json.loads((tmp_path / "adapt" / "esn" / "test-summary.json").read_text())
    rows = {r["condition"]: r for r in summary["conditions"]}
    assert list(rows) == ["frozen", "rls-all", "rls-first-2"]
    assert rows["frozen"]["adapt"] is None and rows["rls-first-2"]["adapt"]["teach_steps"] == 2
    assert rows["rls-all"]["success_minus_frozen"]["n"] == 3
    assert (tmp_path / "adapt" / "esn" / "test-rls-all.json").exists()


def test_episode_features_without_padding_equal_the_masked_batch() -> None:
    """Equal-length batches yield a view of the features; they match running each episode alone."""
    policy = _policy(units=30)
    rng = np.random.default_rng(4)
    for lengths in ([20, 20, 20], [12, 20, 17]):
        eps = [{"observations": rng.normal(size=(n, 5)).astype(np.float32),
                "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)} for n in lengths]
        (phi, act), = list(episode_features(policy, eps))
        order = sorted(range(len(eps)), key=lambda i: lengths[i])
        alone = [next(episode_features(policy, [eps[i]]))[0] for i in order]
        torch.testing.assert_close(phi, torch.cat(alone), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(act.numpy(), np.concatenate([eps[i]["actions"] for i in order]))
