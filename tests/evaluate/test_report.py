"""Markdown reports and the compare command."""

from __future__ import annotations

import json

import pytest

from liquid_control.cli import main
from liquid_control.evaluate import metrics as M
from liquid_control.evaluate import report


def _results(policy: str, condition: str, successes: list[bool], overrides: dict | None = None) -> dict:
    recs = [M.episode_record(i, i, 3, {"is_success": s, "path_length": 2.0, "t": 1.0}, 2.0)
            for i, s in enumerate(successes)]
    return {"env": "LiquidControl/RoverNav-v0", "condition": condition, "split": "test", "policy": policy,
            "episodes": len(recs), "seed": 0, "overrides": overrides or {}, "errors": 0,
            "metrics": M.aggregate(recs), "per_episode": recs}


def test_comparison_table_policies_by_conditions():
    rs = [_results("expert", "test", [True] * 4), _results("policies/ltc", "test", [True, False]),
          _results("policies/ltc", "ood-noise", [False, False]),
          _results("expert", "test", [True], {"disturbance": {"obs_noise": 0.1}})]
    table = report.comparison_table(rs, "success_rate")
    lines = table.strip().splitlines()
    assert lines[0] == "| success_rate | test | ood-noise | test disturbance.obs_noise=0.1 |"
    assert lines[2].startswith("| expert | 1.00 [1.00, 1.00] |  | 1.00")
    assert lines[3].startswith("| ltc | 0.50 [") and "0.00 [0.00, 0.00]" in lines[3]
    with pytest.raises(ValueError, match="two results"):
        report.comparison_table([rs[0], rs[0]])
    with pytest.raises(ValueError, match="unknown metric"):
        report.comparison_table(rs, "speed")


def test_compare_cli(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_results("expert", "test", [True, True])))
    b.write_text(json.dumps(_results("random", "test", [False, True])))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert "| success_rate | test |" in out and "| spl | test |" in out and "| random | 0.50" in out
    assert (tmp_path / "t.md").read_text() == out
    assert main(["compare", str(a), "--json", "--metric", "collision_rate"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["collision_rate"]["mean"] == 0.0
    (tmp_path / "bad.json").write_text("[]")
    assert main(["compare", str(tmp_path / "bad.json")]) == 2
    assert "not a results.json" in capsys.readouterr().err
