"""`liquid-control bench readout --quick`: runs end to end and writes the fit-time JSON."""

import json

from liquid_control.cli import main


def test_bench_readout_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "readout", "--quick", "--env", "rover", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and {r["core"] for r in report["results"]} == {"esn", "lsm"}
    assert report["platform"]["packages"]["numba"]
    for row in report["results"]:
        assert row["steps"] == 3000 and row["trainable_params"] == report["budget"]
        assert row["states_and_gram"]["cpu_s"] > 0 and row["solve_alpha_grid"]["alphas"] == 7
        assert row["reference"]["speedup_cpu"] > 0
    assert "lsm" in capsys.readouterr().out


def test_bench_readout_rejects_bad_steps(tmp_path):
    assert main(["bench", "readout", "--steps", "0", "--out", str(tmp_path / "b.json")]) == 2
    assert main(["bench", "readout", "--threads", "0", "--out", str(tmp_path / "b.json")]) == 2
