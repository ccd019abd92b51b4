"""Demonstration datasets: collect → load round trip, resume, failures, mismatch errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liquid_control import cli
from liquid_control.learn.demos import collect, load_dataset


def test_collect_and_load_round_trip(toy_env_id, tmp_path):
    m = collect(toy_env_id, 4, tmp_path / "ds", seed=10, workers=1, progress=False)
    assert m["complete"] and m["counts"]["episodes"] == 4 and m["seeds"] == [10, 11, 12, 13]
    assert m["format_version"] == 1 and m["env_id"] == toy_env_id and m["options"] == {"split": "train"}
    assert m["obs_dim"] == 3 and m["act_dim"] == 1 and m["action_low"] == [-1.0]
    ds = load_dataset(tmp_path / "ds", expect_env=toy_env_id, expect_obs_dim=3)
    assert [e["seed"] for e in ds.episodes] == [10, 11, 12, 13]
    for ep, entry in zip(ds.episodes, m["episodes"], strict=True):
        steps = entry["steps"]
        assert ep["observations"].shape == (steps, 3) and ep["actions"].shape == (steps, 1)
        assert ep["rewards"].shape == ep["terminations"].shape == ep["truncations"].shape == (steps,)
        assert ep["terminations"][-1] == entry["success"] and not ep["terminations"][:-1].any()
        assert ep["layout_id"] == f"line:{ep['seed']}"
        np.testing.assert_array_equal(ep["actions"], ep["executed"])  # the expert acted itself
    # the toy expert always reaches its goal, so every stored episode is a success
    assert all(e["success"] for e in ds.episodes)


def test_rerun_skips_done_seeds_and_keeps_finished_work(toy_env_id, tmp_path):
    out = tmp_path / "ds"
    collect(toy_env_id, 3, out, workers=1, progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "episodes").iterdir()}
    m = collect(toy_env_id, 5, out, workers=1, progress=False)  # "resume" with a larger target
    assert m["counts"]["episodes"] == 5
    for name, stamp in first.items():  # the finished episodes were not redone
        assert (out / "episodes" / name).stat().st_mtime_ns == stamp


def test_interrupted_collection_keeps_finished_episodes(toy_env_id, tmp_path, monkeypatch):
    import liquid_control.learn.demos as demos

    real = demos.episode_job
    calls = []

    def dying(seed, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(seed)
        return real(seed, **kw)

    monkeypatch.setattr(demos, "episode_job", dying)
    with pytest.raises(KeyboardInterrupt):
        collect(toy_env_id, 5, tmp_path / "ds", workers=1, progress=False)
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert m["seeds"] == [0, 1] and not m["complete"]
    assert len(load_dataset(tmp_path / "ds").episodes) == 2
    monkeypatch.setattr(demos, "episode_job", real)
    m = collect(toy_env_id, 5, tmp_path / "ds", workers=1, progress=False)
    assert m["seeds"] == [0, 1, 2, 3, 4] and m["complete"]


def test_failed_episodes_are_reported_not_dropped(toy_env_id, tmp_path, capsys):
    m = collect(toy_env_id, 3, tmp_path / "ds", workers=1, progress=False, overrides={"crash_seed": 1})
    assert m["seeds"] == [0, 2]
    assert [f["seed"] for f in m["failed"]] == [1] and "simulated crash" in m["failed"][0]["error"]
    assert m["counts"]["failed"] == 1
    assert "seed=1 failed" in capsys.readouterr().err


def test_mismatched_dataset_is_a_clear_error(toy_env_id, tmp_path):
    collect(toy_env_id, 1, tmp_path / "ds", workers=1, progress=False)
    with pytest.raises(ValueError, match="collected on"):
        load_dataset(tmp_path / "ds", expect_env="LiquidControl/RoverNav-v0")
    with pytest.raises(ValueError, match="obs_dim=3, expected 7"):
        load_dataset(tmp_path / "ds", expect_obs_dim=7)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(ValueError, match="refusing"):  # adding other options into the same dir
        collect(toy_env_id, 1, tmp_path / "ds", workers=1, progress=False, overrides={"max_steps": 9})
    (tmp_path / "ds" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_dataset(tmp_path / "ds")


def test_collect_command(toy_env_id, tmp_path, capsys):
    code = cli.main(["collect", "--env", toy_env_id, "--episodes", "2", "--workers", "1", "--seed", "5",
                     "--set", "max_steps=30", "--out", str(tmp_path / "ds")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["episodes"] == 2 and out["options"] == {"max_steps": 30, "split": "train"}
    assert cli.main(["collect", "--env", "Nope-v9", "--episodes", "2", "--out", str(tmp_path / "x")]) == 2
    assert "unknown env id" in capsys.readouterr().err
