"""scripts/evaluate.py: several suites through one pool, one results file per suite plus a summary."""

from __future__ import annotations

import json


def test_evaluate_script_runs_named_suites(fake_env_id, suites_dir, tmp_path, capsys, load_script):
    script = load_script("evaluate")
    out = tmp_path / "res"
    args = ["--policy", "random", "--env", fake_env_id, "--workers", "1", "--out", str(out)]
    assert script.main([*args, "--suites", "test,long", "--episodes", "2"]) == 0
    assert json.loads((out / "long.json").read_text())["condition"] == "long"
    assert (out / "test.csv").exists()
    assert "| success_rate | test | long |" in (out / "summary.md").read_text()
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == {"test", "long"}
    assert script.main([*args, "--suites", "nope"]) == 2
