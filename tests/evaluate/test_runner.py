"""The evaluate runner and command: determinism across workers, error episodes, outputs, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liquid_control.cli import main
from liquid_control.evaluate import runner
from liquid_control.evaluate.suites import resolve_condition


def test_episode_seeds_are_prefix_stable_and_seeded():
    a, b = runner.episode_seeds(0, 5), runner.episode_seeds(0, 9)
    assert a == b[:5] and len(set(b)) == 9
    assert runner.episode_seeds(1, 5) != a
    with pytest.raises(ValueError):
        runner.episode_seeds(0, 0)


def test_same_seed_same_results_for_1_and_2_workers(fake_env_id, tmp_path):
    crash = {"crash_seed": runner.episode_seeds(4, 6)[2]}  # one episode crashes in a worker too
    r1 = runner.evaluate("random", fake_env_id, episodes=6, seed=4, workers=1, progress=False,
                         overrides=crash)
    r2 = runner.evaluate("random", fake_env_id, episodes=6, seed=4, workers=2, progress=False,
                         overrides=crash)
    assert r2["errors"] == 1 and "simulated crash" in r2["per_episode"][2]["error"]
    runner.write_results(r1, tmp_path / "a.json")
    runner.write_results(r2, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    r3 = runner.evaluate("random", fake_env_id, episodes=6, seed=5, workers=1, progress=False,
                         overrides=crash)
    assert [e["seed"] for e in r3["per_episode"]] != [e["seed"] for e in r1["per_episode"]]


def test_results_schema_csv_and_markdown(fake_env_id, tmp_path):
    res = runner.evaluate("random", fake_env_id, episodes=4, seed=0, workers=1, progress=False,
                          overrides={"max_steps": 12})
    assert res["env"] == fake_env_id and res["condition"] == "test" and res["split"] == "test"
    assert res["policy"] == "random" and res["episodes"] == 4 and res["seed"] == 0
    assert res["overrides"] == {"max_steps": 12} and res["options"]["split"] == "test"
    assert res["resolved_options"]["max_steps"] == 12 and res["resolved_options"]["crash_seed"] == -1
    for name in ("success_rate", "collision_rate", "timeout_rate", "spl", "time_to_goal_s", "path_length_m",
                 "min_clearance_m", "control_effort"):
        assert set(res["metrics"][name]) == {"mean", "ci95", "n"}
    plat = res["platform"]  # what produced the numbers: library versions and the CPU
    assert plat["packages"]["numpy"] == np.__version__ and plat["packages"]["torch"] == torch.__version__
    assert plat["cpu"] and plat["python"].count(".") == 2
    eps = res["per_episode"]
    assert [e["index"] for e in eps] == [0, 1, 2, 3]
    assert all(e["steps"] <= 12 and e["layout_id"].startswith("line:") for e in eps)
    assert all(e["success"] + e["collision"] + e["timeout"] == 1 for e in eps)
    paths = runner.write_results(res, tmp_path / "out" / "results.json")
    assert json.loads(open(paths["json"]).read()) == json.loads(json.dumps(res))
    csv_lines = open(paths["csv"]).read().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("index,seed,layout_id")
    md = open(paths["md"]).read()
    assert "| success_rate |" in md and "random" in md


def test_crashing_episode_becomes_error_record(fake_env_id, capsys):
    seeds = runner.episode_seeds(0, 3)
    cond = resolve_condition(fake_env_id, overrides={"crash_seed": seeds[1]})
    res = runner.evaluate("random", fake_env_id, cond, episodes=3, seed=0, workers=1, progress=False)
    eps = res["per_episode"]
    assert len(eps) == 3 and res["errors"] == 1
    assert eps[1]["error"] and "simulated crash" in eps[1]["error"] and eps[1]["seed"] == seeds[1]
    assert eps[0]["error"] is None and eps[2]["error"] is None
    assert res["metrics"]["success_rate"]["n"] == 2
    assert res["metrics"]["error_rate"]["mean"] == pytest.approx(1 / 3)
    assert "simulated crash" in capsys.readouterr().err


def test_cli_evaluate_writes_outputs(fake_env_id, suites_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["evaluate", "--policy", "random", "--env", fake_env_id, "--suite", "long", "--episodes", "2",
                 "--workers", "1", "--set", "max_steps=5", "--out", str(out)])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["condition"] == "long" and res["options"]["max_steps"] == 5
    assert (tmp_path / "r.csv").exists() and (tmp_path / "r.md").exists()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2


@pytest.mark.parametrize("extra,needle", [
    (["--policy", "random", "--suite", "nope"], "unknown suite 'nope'"),
    (["--policy", "/nonexistent/ckpt"], "not found"),
    (["--policy", "random", "--set", "nonsense"], "key=value"),
])
def test_cli_user_errors_are_one_line_exit_2(fake_env_id, suites_dir, tmp_path, capsys, extra, needle):
    code = main(["evaluate", "--env", fake_env_id, "--episodes", "1", "--workers", "1",
                 "--out", str(tmp_path / "r.json"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_cli_corrupt_checkpoint_is_one_line_exit_2(fake_env_id, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{not json")
    (ckpt / "policy.pt").write_bytes(b"garbage")
    code = main(["evaluate", "--policy", str(ckpt), "--env", fake_env_id, "--episodes", "1", "--workers", "1",
                 "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "corrupt" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_rover_expert_results_identical_across_worker_counts(tmp_path):
    pytest.importorskip("liquid_control.experts.rover")
    env_id = "LiquidControl/RoverNav-v0"
    kw = dict(episodes=3, seed=11, progress=False, overrides={"layout": {"family": "forest"}})
    r1 = runner.evaluate("expert", env_id, workers=1, **kw)
    r2 = runner.evaluate("expert", env_id, workers=2, **kw)
    runner.write_results(r1, tmp_path / "a.json")
    runner.write_results(r2, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert r1["errors"] == 0 and all(e["family"] == "forest" for e in r1["per_episode"])
    assert all(e["shortest_path_m"] > 0 and 0 <= e["spl"] <= 1 for e in r1["per_episode"])
    assert all(e["layout_seed"] >= 2_000_000 for e in r1["per_episode"])  # test split, never train layouts


def test_checkpoint_brings_its_interface_options_not_its_training_conditions(fake_env_id, tmp_path):
    import fake_nav

    ckpt = fake_nav.make_checkpoint(tmp_path / "ck", env_options={"max_steps": 7, "split": "train",
                                                                  "layout": {"family": "line"}})
    res = runner.evaluate(str(ckpt), fake_env_id, episodes=2, workers=1, progress=False)
    assert res["options"] == {"max_steps": 7, "split": "test"}
    assert all(e["steps"] <= 7 for e in res["per_episode"]) and res["errors"] == 0
    res = runner.evaluate(str(ckpt), fake_env_id, episodes=1, workers=1, progress=False,
                          overrides={"max_steps": 3})
    assert res["options"]["max_steps"] == 3


def test_checkpoint_for_other_observation_width_is_a_clear_error(fake_env_id, tmp_path, capsys):
    import fake_nav

    ckpt = fake_nav.make_checkpoint(tmp_path / "ck3", obs_dim=3)
    code = main(["evaluate", "--policy", str(ckpt), "--env", fake_env_id, "--episodes", "1", "--workers", "1",
                 "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "expects obs/act widths 3/1" in err and len(err.splitlines()) == 1


def test_reset_controller_restarts_the_policy_state_every_k_steps(fake_env_id, tmp_path):
    import fake_nav

    from liquid_control.learn.rollout import ResetController, make_controller

    ckpt = str(fake_nav.make_checkpoint(tmp_path / "ck"))
    obs = [np.array([np.sin(0.7 * t), np.cos(0.3 * t)], np.float32) for t in range(7)]
    probe = make_controller({"reset": ckpt, "every": 3})
    assert isinstance(probe, ResetController)
    probe.reset(None, obs[0])
    got = np.array([probe.act(o) for o in obs])
    fresh = make_controller(ckpt)  # the same policy restarted by hand at steps 0, 3 and 6
    want = []
    for t, o in enumerate(obs):
        if t % 3 == 0:
            fresh.reset(None, o)
        want.append(fresh.act(o))
    np.testing.assert_array_equal(got, np.array(want))
    kept = make_controller(ckpt)  # without resets the recurrent state changes the later actions
    kept.reset(None, obs[0])
    assert not np.array_equal(got, np.array([kept.act(o) for o in obs]))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="reset every"):
            make_controller({"reset": ckpt, "every": bad})


def test_cli_evaluate_reset_every_wraps_the_policy(fake_env_id, tmp_path, capsys):
    import fake_nav

    ckpt = str(fake_nav.make_checkpoint(tmp_path / "ck"))
    out = tmp_path / "r.json"
    base = ["evaluate", "--policy", ckpt, "--env", fake_env_id, "--episodes", "2", "--workers", "1"]
    assert main([*base, "--reset-every", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["policy"] == {"reset": ckpt, "every": 4} and res["errors"] == 0
    capsys.readouterr()
    assert main([*base, "--reset-every", "-1", "--out", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reset-every" in err and len(err.splitlines()) == 1 and not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("spec,needle", [
    ({"mix": ["random", "random"], "beta": 2.0}, "beta"),
    ({"noise": "random", "std": -1.0}, "std"),
    ({"reset": "random", "every": 0}, "reset every"),
    ({"reset": "/nonexistent/ckpt", "every": 4}, "not found"),
])
def test_check_policy_fails_fast_on_a_bad_composite_spec(spec, needle):
    with pytest.raises((ValueError, FileNotFoundError), match=needle):
        runner.check_policy(spec)
