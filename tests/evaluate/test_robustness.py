"""Robustness sweeps: one evaluation per (policy, level) on the same seeds, JSON + PNG outputs."""

from __future__ import annotations

import json

import pytest

from liquid_control.cli import main
from liquid_control.evaluate.robustness import parse_levels


def test_parse_levels():
    assert parse_levels("0, 0.05,0.1") == [0.0, 0.05, 0.1]
    with pytest.raises(ValueError):
        parse_levels("a,b")
    with pytest.raises(ValueError):
        parse_levels(",")


def test_robustness_command_writes_curve_json_png_and_runs(fake_env_id, tmp_path, capsys):
    out = tmp_path / "rob"
    code = main(["robustness", "--policy", "random", "--env", fake_env_id, "--param", "max_steps",
                 "--levels", "1,40", "--episodes", "4", "--workers", "1", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "robustness.json").read_text())
    (curve,) = summary["curves"]
    assert summary["param"] == "max_steps" and curve["levels"] == [1.0, 40.0]
    # one step is never enough to reach the goal (>= 0.5 away, 0.2 per step): success 0 at level 1
    assert curve["metrics"][0]["success_rate"]["mean"] == 0.0
    runs = sorted(p.name for p in out.glob("random_*.json"))
    assert runs == ["random_max_steps=1.json", "random_max_steps=40.json"]
    res = json.loads((out / "random_max_steps=40.json").read_text())
    assert res["options"]["max_steps"] == 40 and res["overrides"] == {"max_steps": 40.0}
    first = json.loads((out / "random_max_steps=1.json").read_text())
    assert [e["seed"] for e in first["per_episode"]] == [e["seed"] for e in res["per_episode"]]  # paired
    import imageio.v3 as iio

    assert iio.imread(out / "robustness.png").shape[0] > 200
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["levels"] == [1.0, 40.0]
