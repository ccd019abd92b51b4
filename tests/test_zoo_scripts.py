"""scripts/make_tables.py and scripts/train_zoo.py: the README tables are current, the per-seed table."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tables(load_script):
    return load_script("make_tables")


def test_readme_tables_are_generated_from_results(tables):
    """The README block equals what make_tables.py builds from results/ and the cards (no hand edits)."""
    assert tables.main(["--check"]) == 0, "README is stale: run scripts/make_tables.py"


def _card(root: Path, name: str, seeds: list[dict], shipped: int) -> None:
    d = root / "policies" / name
    d.mkdir(parents=True)
    (d / "card.json").write_text(json.dumps({"config": {"seed": shipped}, "selection": {"seeds": seeds}}))


def _m(x: float) -> dict:
    return {"mean": x, "ci95": [x - 0.1, x + 0.1]}


def test_seeds_section_reports_test_mean_and_sd_over_seeds(tables, tmp_path: Path):
    seeds = [{"seed": k, "val": {"success_rate": _m(v)}, "train_wall_clock_s": 60.0,
              "test": {"success_rate": _m(t)}} for k, v, t in [(0, 0.5, 0.4), (1, 0.7, 0.6), (2, 0.6, 0.8)]]
    _card(tmp_path, "rovernav-ltc", seeds, shipped=1)
    _card(tmp_path, "rovernav-mlp", [{**s, "test": None} for s in seeds], shipped=0)  # no seed tests
    lines = tables.seeds_section(tmp_path, "rovernav", ["ltc", "mlp"])
    ltc = next(x for x in lines if x.startswith("| ltc "))
    assert "s1*: 0.70" in ltc and "s0: 0.40; s1: 0.60; s2: 0.80" in ltc and "0.60 ± 0.20" in ltc
    mlp = next(x for x in lines if x.startswith("| mlp "))
    assert mlp.endswith("| – | – |")


def test_seed_suites_section_reports_every_seed_on_each_ood_suite(tables, tmp_path: Path):
    seeds = [{"seed": k, "val": {"success_rate": _m(0.5)}, "train_wall_clock_s": 60.0,
              "suites": {"ood-family": {"success_rate": _m(f)}, "ood-latency": {"success_rate": _m(lat)}}}
             for k, f, lat in [(0, 0.9, 0.5), (1, 0.7, 0.6), (2, 0.8, 0.7)]]
    _card(tmp_path, "dronenav-ltc-ppo", seeds, shipped=1)
    _card(tmp_path, "dronenav-gru-ppo", [{**s, "suites": {}} for s in seeds], shipped=0)  # none: no rows
    lines = tables.seed_suites_section(tmp_path, "dronenav", ["ltc-ppo", "gru-ppo"])
    rows = [x for x in lines if x.startswith("| ltc-ppo ")]
    assert rows == ["| ltc-ppo | ood-family | s0: 0.90; s1: 0.70; s2: 0.80 | 0.80 ± 0.10 |",
                    "| ltc-ppo | ood-latency | s0: 0.50; s1: 0.60; s2: 0.70 | 0.60 ± 0.10 |"]
    assert tables.seed_suites_section(tmp_path, "dronenav", ["gru-ppo"]) == []


def test_ppo_rows_follow_their_core_and_compare_with_bc_on_the_same_episodes(tables):
    assert tables.order(["mlp-ppo", "gru", "ltc-ppo", "expert", "mlp", "ltc", "lsm"]) == [
        "expert", "ltc", "ltc-ppo", "gru", "mlp", "mlp-ppo", "lsm"]

    def res(wins: list[bool]) -> dict:
        eps = [{"seed": 10 + i, "success": w} for i, w in enumerate(wins)]
        return {"test": {"metrics": {"success_rate": _m(sum(wins) / len(wins))}, "per_episode": eps}}

    by_policy = {"ltc": res([False] * 4), "ltc-ppo": res([True, True, False, True]),
                 "gru-ppo": res([True] * 4)}  # no BC results for gru: no row
    inits = {"ltc-ppo": res([True, False, False, True])["test"], "gru-ppo": None}  # not the shipped ltc
    lines = tables.ppo_section(by_policy, inits)
    rows = [x for x in lines if x.startswith("| ltc ")]
    assert len(rows) == 1 and "| 0.50 [" in rows[0] and "| 0.75 [" in rows[0] and "| 0.25 [" in rows[0]
    assert rows[0].endswith("| 4 |") and not any(x.startswith("| gru ") for x in lines)


def test_ppo_is_compared_with_the_policy_it_started_from(tables, tmp_path: Path):
    """A PPO row pairs with the shipped imitation policy only while that is its init; once the zoo entry
    is replaced, with the starting policy's test results kept in results/<env>-<core>-ppo/init/."""
    def write(path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    bc = {"command": "scripts/train_zoo.py --cores ltc", "train_wall_clock_s": 300.0}
    write(tmp_path / "policies" / "rovernav-ltc" / "card.json", bc)
    write(tmp_path / "policies" / "rovernav-ltc-ppo" / "card.json", {"init": {**bc, "name": "rovernav-ltc"}})
    write(tmp_path / "results" / "rovernav-ltc" / "test.json", {"policy": "bc"})
    assert tables.init_results(tmp_path, "rovernav", "ltc-ppo") == {"policy": "bc"}
    write(tmp_path / "policies" / "rovernav-ltc" / "card.json", {**bc, "command": "train_imitation.py"})
    assert tables.init_results(tmp_path, "rovernav", "ltc-ppo") is None  # the zoo's ltc is another policy now
    write(tmp_path / "results" / "rovernav-ltc-ppo" / "init" / "test.json", {"policy": "old bc"})
    assert tables.init_results(tmp_path, "rovernav", "ltc-ppo") == {"policy": "old bc"}


def test_training_note_names_each_rows_pipeline(tables, tmp_path: Path):
    zoo = "scripts/train_zoo.py --x"
    cards = {"ltc": {"command": "scripts/train_imitation.py {}"}, "gru": {"command": zoo},
             "ltc-ppo": {"command": "scripts/train_ppo.py {}", "init": {"command": zoo}}}
    for name, card in cards.items():
        (tmp_path / "policies" / f"dronenav-{name}").mkdir(parents=True)
        (tmp_path / "policies" / f"dronenav-{name}" / "card.json").write_text(json.dumps(card))
    note = tables.training_note(tmp_path, "dronenav", ["expert", "ltc", "ltc-ppo", "gru"])[0]
    assert "ltc: the issue-6 imitation recipe" in note
    assert "ltc-ppo: `train_ppo.py`, fine-tuning a policy trained by `train_zoo.py`" in note
    assert "gru: `train_zoo.py`" in note
    assert tables.training_note(tmp_path, "dronenav", ["gru"]) == []  # one pipeline: nothing to say


@pytest.mark.slow
def test_test_every_seed_evaluates_each_run_and_reuses_files(tmp_path: Path, load_script, monkeypatch):
    zoo = load_script("train_zoo")
    args = argparse.Namespace(env="LiquidControl/RoverNav-v0", eval_episodes=2, workers=1)
    runs = [{"seed": 0, "checkpoint": "expert"}, {"seed": 1, "checkpoint": "random"}]
    zoo.test_every_seed(runs, args, tmp_path / "seeds")
    saved = json.loads((tmp_path / "seeds" / "test-s0.json").read_text())
    assert saved["training_seed"] == 0 and saved["episodes"] == 2 and saved["condition"] == "test"
    assert runs[0]["test"]["success_rate"]["mean"] == 1.0  # the expert reaches the goal
    assert runs[1]["test"]["success_rate"]["mean"] < 1.0  # random actions do not
    shutil.copy(tmp_path / "seeds" / "test-s0.json", tmp_path / "seeds" / "test-s1.json")
    stale = [{"seed": 1, "checkpoint": "random"}]  # the file of seed 1 now holds another policy's episodes
    zoo.test_every_seed(stale, args, tmp_path / "seeds")
    assert stale[0]["test"]["success_rate"]["mean"] < 1.0  # evaluated afresh, not read from that file
    assert json.loads((tmp_path / "seeds" / "test-s1.json").read_text())["policy"] == "random"
    monkeypatch.setattr(zoo, "evaluate_many", lambda *a, **k: pytest.fail("should reuse the saved file"))
    again = [{"seed": 0, "checkpoint": "expert"}]
    zoo.test_every_seed(again, args, tmp_path / "seeds")  # the same checkpoint: reused, no evaluation
    assert again[0]["test"]["success_rate"]["mean"] == 1.0
    monkeypatch.undo()
    zoo.test_every_seed(runs[:1], args, tmp_path / "seeds", suite="ood-slip")  # an OOD suite of the env
    saved = json.loads((tmp_path / "seeds" / "ood-slip-s0.json").read_text())
    assert saved["condition"] == "ood-slip" and runs[0]["suites"]["ood-slip"]["success_rate"]["mean"] > 0
    with pytest.raises(ValueError):
        zoo.test_every_seed(runs[:1], args, tmp_path / "seeds", suite="ood-nonsense")


def test_ship_keeps_suite_results_only_for_the_same_checkpoint(tmp_path: Path, load_script, monkeypatch):
    """A re-ship of the same seed reuses the suite results only when the weights are byte-identical: a
    retrained (or another run's) policy of the same seed is evaluated afresh."""
    zoo = load_script("train_zoo")
    monkeypatch.setattr(zoo, "ROOT", tmp_path)  # never touch the repository's policies/
    evaluated = []
    monkeypatch.setattr(zoo, "evaluate_suites",
                        lambda dest, args, out: evaluated.append(dest) or {"test": 0.5})
    ckpt = tmp_path / "run"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "card.json").write_text("{}")
    args = argparse.Namespace(env="LiquidControl/RoverNav-v0", eval_episodes=5, workers=1)
    best = {"core": "ltc", "seed": 0, "checkpoint": str(ckpt), "val": {}, "train_wall_clock_s": 1.0}
    for weights in (b"weights-a", b"weights-a", b"weights-b"):  # first ship, same checkpoint, retrained
        (ckpt / "policy.pt").write_bytes(weights)
        dest = zoo.ship(best, args, "rovernav", {}, [best])
    assert len(evaluated) == 2  # the first ship and the retrained policy; the re-ship kept its results
    card = json.loads((dest / "card.json").read_text())
    assert card["evaluation"]["suites"] == {"test": 0.5} and (dest / "policy.pt").read_bytes() == b"weights-b"
    assert "suites" not in card["selection"]["seeds"][0]
    dest = zoo.ship(best, args, "rovernav", {}, [{**best, "suites": {"ood-slip": {"success_rate": 0.4}}}])
    seeds = json.loads((dest / "card.json").read_text())["selection"]["seeds"]
    assert seeds[0]["suites"] == {"ood-slip": {"success_rate": 0.4}}  # per-seed OOD results: on the card


def test_failure_breakdown_bins_episodes_by_family_and_detour(load_script, tmp_path: Path):
    """Episodes are grouped by family and by the detour of their rebuilt layout (shortest path over the
    straight start-goal distance); unreadable input is a usage error."""
    fb = load_script("failure_breakdown")
    knobs = {"density": 0.3, "obstacle_scale": 1.0, "goal_distance": [8.0, 20.0], "arena": 30.0}
    # walls layouts of the DroneNav test split: 2290861's gap is far off the straight line, 2405855's is not
    eps = [{"family": "walls", "layout_seed": 2290861, "success": False, "collision": True, "timeout": False},
           {"family": "walls", "layout_seed": 2405855, "success": True, "collision": False, "timeout": False},
           {"family": "walls", "layout_seed": 2405855, "success": False, "collision": False, "timeout": True},
           {"family": "walls", "layout_seed": 7, "error": "boom"}]  # fmt: skip
    results = {"env": "LiquidControl/DroneNav-v0", "policy": "p", "resolved_options": {"layout": knobs},
               "per_episode": eps}
    from liquid_control.sim.layouts import generate

    assert fb.detour(generate("walls", 2290861, kind="drone", **knobs)) > 1.5
    assert fb.detour(generate("walls", 2405855, kind="drone", **knobs)) < 1.1
    # the layouts are the env's own: RoverNav generates at its body's clearance, not the kind default
    rover = {"env": "LiquidControl/RoverNav-v0", "policy": "p", "resolved_options": {"layout": {}},
             "per_episode": [{"family": "rooms", "layout_seed": 2000001, "success": True, "collision": False,
                              "timeout": False}]}
    import gymnasium as gym

    env = gym.make("LiquidControl/RoverNav-v0")
    flown = env.unwrapped.choose_layout(0, family="rooms", layout_seed=2000001)
    env.close()
    assert flown.start != generate("rooms", 2000001, kind="rover").start
    assert fb.breakdown(rover, fb.detour(flown) + 1e-9)[0]["detour"].startswith("<")
    assert fb.breakdown(rover, fb.detour(flown))[0]["detour"].startswith(">=")
    rows = fb.breakdown(results, 1.1)
    assert [(r["family"], r["detour"], r["episodes"]) for r in rows] == [("walls", "< 1.1", 2),
                                                                         ("walls", ">= 1.1", 1)]
    assert rows[0]["success_rate"] == 0.5 and rows[0]["timeout_rate"] == 0.5
    assert rows[1]["collision_rate"] == 1.0
    src = tmp_path / "r.json"
    src.write_text(json.dumps(results))
    assert fb.main([str(src), "--json", str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text())[str(src)] == rows
    with pytest.raises(SystemExit) as exc:
        fb.main([str(tmp_path / "missing.json")])
    assert exc.value.code == 2


def test_imitation_gap_compares_policy_actions_with_the_expert_labels(load_script, tmp_path: Path):
    """MSE and correlation in the normalised action space, per dimension; a bad checkpoint is a usage
    error. (The collection it runs is `collect`'s, tested with the demos.)"""
    import numpy as np
    import torch

    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    gap = load_script("imitation_gap")
    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig(obs_dim=3, act_dim=2, core="gru", budget=None))
    policy.set_normalization(np.zeros(3), np.ones(3), np.array([-2.0, -1.0]), np.array([2.0, 1.0]))
    rng = np.random.default_rng(0)
    eps = []
    for k in range(4):
        obs = rng.normal(size=(15, 3)).astype(np.float32)
        with torch.no_grad():
            act = policy(torch.from_numpy(obs)[None])[0][0].numpy()  # env units
        eps.append({"observations": obs, "actions": act, "success": k < 3})
    same = gap.agreement(eps, policy)
    assert same["steps"] == 60 and same["success_rate"] == 0.75
    assert max(same["mse"]) < 1e-10 and min(same["corr"]) > 0.999
    flipped = gap.agreement([{**e, "actions": -e["actions"]} for e in eps], policy)
    assert max(flipped["corr"]) < -0.999
    a = np.concatenate([e["actions"] for e in eps]) / np.array([2.0, 1.0])  # the normalised actions
    assert np.allclose(flipped["mse"], (4 * a**2).mean(0), rtol=1e-5)
    with pytest.raises(SystemExit) as exc:
        gap.main([str(tmp_path / "no-such-policy")])
    assert exc.value.code == 2


@pytest.mark.slow
def test_train_imitation_runs_the_whole_pipeline(load_script, tmp_path: Path, monkeypatch):
    """Collect → BC → DAgger → evaluation of learner and expert, with the teacher and BPTT options
    reaching the trained checkpoint (tiny budgets: a smoke run, not a result)."""
    import sys

    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [
        "train_imitation.py", "--env", "LiquidControl/RoverNav-v0", "--core", "mlp", "--episodes", "3",
        "--dagger-rounds", "1", "--dagger-episodes", "2", "--epochs", "2", "--dagger-epochs", "1",
        "--eval-episodes", "2", "--workers", "1", "--chunk-len", "16", "--burn-in", "4", "--log-rays",
        "--expert-options", '{"steering": "arcs"}', "--minutes", "5", "--out", str(out)])
    assert load_script("train_imitation").main() == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demos"]["episodes"] == 3 and len(summary["dagger"]) == 1
    assert summary["teacher"]["controller"] == {"expert": {"steering": "arcs"}}
    assert summary["test"]["expert"]["success_rate"]["n"] == 2
    card = json.loads((out / "policy" / "card.json").read_text())
    assert card["config"]["chunk_len"] == 16 and card["config"]["burn_in"] == 4
    assert json.loads((out / "policy" / "config.json").read_text())["policy"]["log_rays"] == [0, 64]


def test_reevaluate_zoo_rewrites_suites_and_records_why(tmp_path: Path, load_script, monkeypatch):
    """scripts/reevaluate_zoo.py: every card of the env (only those) is evaluated on every suite with its own
    episode count, its evaluation block replaced and the reason appended; unknown names fail cleanly."""
    script = load_script("reevaluate_zoo")
    monkeypatch.setattr(script, "ROOT", tmp_path)  # never touch the repository's policies/
    calls = []

    def fake_suites(policy, args, dest):
        calls.append((Path(policy).name, args.env, args.eval_episodes, dest))
        return {"test": {"success_rate": _m(0.25)}}

    monkeypatch.setattr(script, "evaluate_suites", fake_suites)
    old = {"evaluation": {"episodes": 30, "seed": 0, "suites": {"test": {"success_rate": _m(0.5)}}},
           "selection": {"seeds": []}}
    for name in ("dronenav-ltc", "dronenav-mlp-ppo", "rovernav-ltc"):
        (tmp_path / "policies" / name).mkdir(parents=True)
        (tmp_path / "policies" / name / "card.json").write_text(json.dumps(old))
    assert script.main(["--env", "LiquidControl/DroneNav-v0", "--why", "new sensor", "--workers", "1"]) == 0
    assert [(c[0], c[1], c[2]) for c in calls] == [("dronenav-ltc", "LiquidControl/DroneNav-v0", 30),
                                                   ("dronenav-mlp-ppo", "LiquidControl/DroneNav-v0", 30)]
    assert calls[0][3] == tmp_path / "results" / "dronenav-ltc"
    card = json.loads((tmp_path / "policies" / "dronenav-ltc" / "card.json").read_text())
    assert card["evaluation"]["suites"]["test"]["success_rate"]["mean"] == 0.25
    assert [r["why"] for r in card["evaluation"]["reevaluated"]] == ["new sensor"]
    assert card["selection"] == old["selection"]  # training records stay as they were
    rover = json.loads((tmp_path / "policies" / "rovernav-ltc" / "card.json").read_text())
    assert rover == old
    assert script.main(["--env", "LiquidControl/DroneNav-v0", "--why", "x", "--only", "dronenav-gru"]) == 2
    tables = load_script("make_tables")
    note = tables.reevaluation_note(tmp_path, "dronenav", ["ltc", "mlp-ppo", "gru"])
    assert len(note) == 1 and "new sensor" in note[0] and "ltc, mlp-ppo" in note[0]
    assert tables.reevaluation_note(tmp_path, "rovernav", ["ltc"]) == []
