"""DAgger: learner rollouts relabelled by the expert, aggregated, retrained; closed-loop improvement."""

from __future__ import annotations

import dataclasses
import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch

from liquid_control.learn.bc import BCConfig, train_bc
from liquid_control.learn.checkpoint import PolicyController, load_controller
from liquid_control.learn.dagger import beta_for_round, round_seeds
from liquid_control.learn.demos import collect, load_dataset
from liquid_control.learn.rollout import run_episode
from liquid_control.nets.policy import PolicyConfig, PolicyNet


def _success(env_id, controller, seeds):
    env = gym.make(env_id, split="test")
    return float(np.mean([run_episode(env, controller, s).info["is_success"] for s in seeds]))


def test_beta_schedule_and_seeds():
    assert [beta_for_round(0.5, r) for r in (1, 2, 3)] == [0.5, 0.25, 0.125]
    with pytest.raises(ValueError):
        beta_for_round(0.5, 0)
    assert round_seeds(1, 0) != round_seeds(2, 0) and round_seeds(1, 0) >= 100_000


def test_collect_bc_dagger_improves_closed_loop_success(toy_env_id, tmp_path):
    torch.manual_seed(0)
    demos = tmp_path / "demos"
    collect(toy_env_id, 20, demos, workers=1, progress=False)
    cfg = BCConfig(env_id=toy_env_id, demos=[str(demos)], out=str(tmp_path / "run"), policy="gru",
                   budget=None, epochs=15, chunk_len=16, burn_in=8, batch_size=16, lr=5e-3, dagger_rounds=2,
                   dagger_episodes=6, dagger_epochs=5, workers=1, progress=False)
    run = train_bc(cfg)
    card = json.loads((run / "card.json").read_text())
    rounds = card["metrics"]["dagger"]
    assert [r["round"] for r in rounds] == [1, 2] and [r["beta"] for r in rounds] == [0.5, 0.25]
    assert card["trainer"] == "bc+dagger" and {h["round"] for h in card["metrics"]["history"]} == {0, 1, 2}
    agg = load_dataset(run / "dagger", expect_env=toy_env_id)
    assert agg.manifest["labeler"] == "expert" and len(agg.episodes) == 12
    # relabelled: targets are the expert's actions on the states the β-mixture visited
    differs = [not np.allclose(e["actions"], e["executed"]) for e in agg.episodes]
    assert any(differs)
    env = gym.make(toy_env_id)
    from toy_envs import ToyExpert

    ep = agg.episodes[0]
    env.reset(seed=ep["seed"])
    expert = ToyExpert()
    expert.reset(env, None)
    np.testing.assert_allclose(expert.act(ep["observations"][0]), ep["actions"][0], atol=1e-6)

    seeds = range(2_000_000, 2_000_020)
    untrained = PolicyNet(PolicyConfig(obs_dim=3, act_dim=1, core="gru", budget=None))
    before = _success(toy_env_id, PolicyController(untrained), seeds)
    after = _success(toy_env_id, load_controller(run), seeds)
    assert after >= 0.8 and after > before + 0.3, (before, after)


def test_dagger_weight_reweights_only_the_relabelled_episodes(toy_env_id, tmp_path):
    demos = tmp_path / "demos"
    collect(toy_env_id, 10, demos, workers=1, progress=False)
    histories = {}
    for w in (1.0, 5.0):
        torch.manual_seed(0)
        cfg = BCConfig(env_id=toy_env_id, demos=[str(demos)], out=str(tmp_path / f"w{w}"), policy="gru",
                       budget=None, epochs=3, chunk_len=16, burn_in=8, batch_size=16, lr=5e-3,
                       dagger_rounds=1, dagger_episodes=4, dagger_epochs=2, workers=1, progress=False,
                       dagger_weight=w)
        card = json.loads((train_bc(cfg) / "card.json").read_text())
        histories[w] = card["metrics"]["history"]
    before = [[h["val_loss"] for h in histories[w] if h["round"] == 0] for w in (1.0, 5.0)]
    after = [[h["val_loss"] for h in histories[w] if h["round"] == 1] for w in (1.0, 5.0)]
    assert before[0] == before[1]  # demos only: the weight changes nothing
    assert after[0] != after[1]  # with relabelled episodes the (weighted) objective differs


def test_dagger_options_apply_to_the_rollouts_only(toy_env_id, tmp_path):
    demos = tmp_path / "demos"
    collect(toy_env_id, 6, demos, workers=1, progress=False)
    cfg = BCConfig(env_id=toy_env_id, demos=[str(demos)], out=str(tmp_path / "run"), policy="mlp",
                   budget=None, epochs=1, chunk_len=16, burn_in=0, dagger_rounds=1, dagger_episodes=3,
                   dagger_epochs=1, workers=1, progress=False, dagger_options={"max_steps": 5})
    run = train_bc(cfg)
    agg = load_dataset(run / "dagger")
    assert agg.manifest["options"]["max_steps"] == 5
    assert len(agg.episodes) == 3 and all(len(ep["actions"]) <= 5 for ep in agg.episodes)
    assert load_dataset(demos).manifest["options"].get("max_steps", 40) == 40
    assert max(len(ep["actions"]) for ep in load_dataset(demos).episodes) > 5
    assert json.loads((run / "card.json").read_text())["config"]["dagger_options"] == {"max_steps": 5}


def test_select_last_keeps_the_best_recent_round_on_the_val_split(toy_env_id, tmp_path, monkeypatch):
    from liquid_control.evaluate import runner
    from liquid_control.learn.dagger import round_dir

    demos = tmp_path / "demos"
    collect(toy_env_id, 6, demos, workers=1, progress=False)
    calls = []
    real = runner.evaluate

    def spy(policy, env_id, **kw):
        calls.append((policy, kw["split"], kw["episodes"], kw["seed"]))
        return real(policy, env_id, **kw)

    monkeypatch.setattr(runner, "evaluate", spy)
    cfg = BCConfig(env_id=toy_env_id, demos=[str(demos)], out=str(tmp_path / "run"), policy="mlp",
                   budget=None, epochs=2, chunk_len=16, burn_in=0, dagger_rounds=3, dagger_episodes=2,
                   dagger_epochs=2, workers=1, progress=False, select_last=3, select_episodes=5, seed=3)
    run = train_bc(cfg)
    sel = json.loads((run / "card.json").read_text())["metrics"]["selection"]
    # candidates: the last 3 of rounds 0..3, each scored on the same 5 val episodes
    assert [r["round"] for r in sel["rounds"]] == [1, 2, 3] and sel["split"] == "val"
    scored = [r["round"] for r in sel["rounds"] if "same_as" not in r]  # a round with new weights
    assert [c[1:] for c in calls] == [("val", 5, 3)] * len(scored)
    assert [c[0] for c in calls] == [str(round_dir(run, r)) for r in scored]
    best = max(r["success_rate"] for r in sel["rounds"])
    assert sel["round"] == max(r["round"] for r in sel["rounds"] if r["success_rate"] == best)  # ties: later
    assert all((round_dir(run, r) / "policy.pt").exists() for r in range(4))
    # every DAgger round says whether its training beat the incumbent: if not, its weights are the last's
    rounds = json.loads((run / "card.json").read_text())["metrics"]["dagger"]
    assert [r["round"] for r in rounds] == [1, 2, 3] and all(isinstance(r["updated"], bool) for r in rounds)
    for r in rounds:
        now, before = (torch.load(round_dir(run, k) / "policy.pt", weights_only=True)
                       for k in (r["round"], r["round"] - 1))
        assert all(torch.equal(now[k], before[k]) for k in now) == (not r["updated"])
    final = torch.load(run / "policy.pt", weights_only=True)
    chosen = torch.load(round_dir(run, sel["round"]) / "policy.pt", weights_only=True)
    assert final.keys() == chosen.keys() and all(torch.equal(final[k], chosen[k]) for k in final)


def _bc_only_run(env_id: str, tmp_path, select_last: int) -> tuple[BCConfig, object]:
    """A BC-only run (round 0) of a tiny MLP with ``select_last``: its config and run directory."""
    demos = tmp_path / "demos"
    collect(env_id, 2, demos, workers=1, progress=False)
    run = tmp_path / "run"
    cfg = BCConfig(env_id=env_id, demos=[str(demos)], out=str(run), policy="mlp", budget=None,
                   epochs=1, chunk_len=16, burn_in=0, workers=1, progress=False, select_last=select_last)
    train_bc(cfg)
    return cfg, run


def test_select_round_breaks_ties_towards_the_later_round(toy_env_id, tmp_path, monkeypatch):
    from liquid_control.evaluate import runner
    from liquid_control.learn.dagger import round_dir, select_round, snapshot_round

    cfg, run = _bc_only_run(toy_env_id, tmp_path, 4)  # round 0's snapshot, selected as the only candidate
    assert json.loads((run / "card.json").read_text())["metrics"]["selection"]["round"] == 0
    shutil.rmtree(round_dir(run, 0))
    for rnd in (1, 2, 3):  # three rounds with weights of their own (equal weights are scored once)
        w = torch.load(snapshot_round(run, rnd) / "policy.pt", weights_only=True)
        torch.save({k: v + rnd if v.is_floating_point() else v for k, v in w.items()},
                   round_dir(run, rnd) / "policy.pt")
    scores = {0: 0.5, 1: 0.9, 2: 0.4, 3: 0.9}  # round 0 has no snapshot now: it is skipped
    monkeypatch.setattr(runner, "evaluate", lambda policy, env_id, **kw: {"metrics": {"success_rate": {
        "mean": scores[int(policy[-2:])], "ci95": None}}})
    sel = select_round(cfg, run, 3, {})
    assert [r["round"] for r in sel["rounds"]] == [1, 2, 3] and sel["round"] == 3
    scores[3] = 0.2
    assert select_round(cfg, run, 3, {})["round"] == 1
    with pytest.raises(FileNotFoundError):
        select_round(cfg, run, 0, {})
    # a margin keeps the latest round within it of the best: 3 (0.85) against 1 (0.9) at 0.05, not at 0.04
    scores[3] = 0.85
    assert select_round(dataclasses.replace(cfg, select_margin=0.05), run, 3, {})["round"] == 3
    assert select_round(dataclasses.replace(cfg, select_margin=0.04), run, 3, {})["round"] == 1
    with pytest.raises(ValueError, match="select_margin"):
        dataclasses.replace(cfg, select_margin=-0.1)
    with pytest.raises(ValueError, match="select_episodes"):
        dataclasses.replace(cfg, select_episodes=0)


def test_select_round_scores_identical_snapshots_once(toy_env_id, tmp_path, monkeypatch):
    from liquid_control.evaluate import runner
    from liquid_control.learn.dagger import round_dir, select_round

    cfg, run = _bc_only_run(toy_env_id, tmp_path, 3)
    for rnd in (1, 2):  # rounds 1 and 2 kept round 0's weights (their training never beat it)
        shutil.copytree(round_dir(run, 0), round_dir(run, rnd))
    weights = torch.load(round_dir(run, 2) / "policy.pt", weights_only=True)
    torch.save({k: v + 1.0 if v.is_floating_point() else v for k, v in weights.items()},
               round_dir(run, 2) / "policy.pt")  # round 2 did change them
    calls = []
    monkeypatch.setattr(runner, "evaluate", lambda policy, env_id, **kw: calls.append(policy) or {
        "metrics": {"success_rate": {"mean": 0.5, "ci95": [0.4, 0.6]}}})
    sel = select_round(cfg, run, 2, {})
    assert calls == [str(round_dir(run, 0)), str(round_dir(run, 2))]
    assert sel["rounds"][1] == {"round": 1, "success_rate": 0.5, "ci95": [0.4, 0.6], "same_as": 0}
    assert sel["round"] == 2 and "same_as" not in sel["rounds"][2]
