"""`liquid-control bench cells --quick`: runs end to end, prints the table and writes the JSON."""

import json

from liquid_control.cli import main


def test_bench_cells_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "cells", "--quick", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["threads"] == 1
    assert report["platform"]["packages"]["torch"] and report["platform"]["packages"]["ncps"]
    assert len(report["configs"]) == 3
    for result in report["configs"].values():
        for key in ("ours_auto", "ours_torch_fused", "ours_reference", "ncps", "lstm"):
            assert result["train_steps_per_s"][key] > 0
            assert result["latency_us"][key] > 0
        assert result["params"]["lstm_trainable"] > 0 and result["params"]["ltc_effective"] > 0
        assert result["ratios"]["train_auto_over_ncps"] > 0
        assert result["onnx_nodes"] > 0
    floor = report["onnxruntime_floor_us"]
    assert floor["run_121_nodes"] > floor["run_1_node"] > 0  # more nodes cost more: the per-node floor
    assert "ratios" in capsys.readouterr().out


def test_bench_cells_rejects_bad_threads(tmp_path):
    assert main(["bench", "cells", "--quick", "--threads", "0", "--out", str(tmp_path / "b.json")]) == 2
