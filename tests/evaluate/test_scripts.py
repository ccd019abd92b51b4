"""scripts/evaluate.py: several suites through one pool, one results file per suite plus a summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"


def _load():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_script_runs_named_suites(fake_env_id, suites_dir, tmp_path, capsys):
    script = _load()
    out = tmp_path / "res"
    args = ["--policy", "random", "--env", fake_env_id, "--workers", "1", "--out", str(out)]
    assert script.main([*args, "--suites", "test,long", "--episodes", "2"]) == 0
    assert json.loads((out / "long.json").read_text())["condition"] == "long"
    assert (out / "test.csv").exists()
    assert "| success_rate | test | long |" in (out / "summary.md").read_text()
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == {"test", "long"}
    assert script.main([*args, "--suites", "nope"]) == 2
