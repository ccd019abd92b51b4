"""Wiring and activity plots write sensible PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liquid_control.cli import main
from liquid_control.nets.wiring import AutoNCP, FullyConnected
from liquid_control.plots import plot_activity, plot_wiring, row_order, state_groups

FAKE_DIR = str(Path(__file__).resolve().parent / "evaluate")  # the fake env module (fake_nav.py)


def _png_ok(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    assert img[..., :3].std() > 10  # not a blank canvas
    return img


def test_state_groups_follow_the_wiring():
    w = AutoNCP(20, 3)
    w.build(5)
    g = state_groups(w, 20)
    assert g["motor"] == [0, 1, 2] and len(g["command"]) + len(g["inter"]) == 17
    order, spans = row_order(g)
    assert order[:3] == [0, 1, 2] and spans[0] == ("motor", 0, 3) and sorted(order) == list(range(20))
    assert state_groups(w, 40) == {"state": list(range(40))}  # e.g. LSTM h and c: no neuron groups
    assert state_groups(None, 4) == {"state": [0, 1, 2, 3]}


def test_plot_wiring_and_activity_functions(tmp_path):
    w = AutoNCP(24, 2)
    w.build(6)
    _png_ok(plot_wiring(w, tmp_path / "w.png", title="autoncp"))
    fc = FullyConnected(8, 2)
    fc.build(3)
    _png_ok(plot_wiring(fc, tmp_path / "fc.png"))
    states = np.cumsum(np.random.default_rng(0).normal(size=(50, 24)), axis=0)
    _png_ok(plot_activity(states, state_groups(w, 24), tmp_path / "a.png", dt=0.1, actions=np.zeros((50, 2))))
    with pytest.raises(ValueError):
        plot_activity(np.zeros(5), {}, tmp_path / "bad.png")
    unbuilt = AutoNCP(24, 2)
    with pytest.raises(ValueError, match="not built"):
        plot_wiring(unbuilt, tmp_path / "u.png")


def test_plot_commands_on_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(FAKE_DIR)
    import fake_nav

    ckpt = fake_nav.make_checkpoint(tmp_path / "ckpt")
    assert main(["plot", "wiring", str(ckpt), "--out", str(tmp_path / "w.png")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["units"] == 12 and info["groups"]["motor"] == 1
    _png_ok(tmp_path / "w.png")
    assert main(["plot", "activity", str(ckpt), "--seed", "2", "--out", str(tmp_path / "a.png")]) == 0
    act = json.loads(capsys.readouterr().out)
    assert act["neurons"] == 12 and act["steps"] > 0
    _png_ok(tmp_path / "a.png")
    assert main(["plot", "wiring", str(tmp_path / "missing"), "--out", str(tmp_path / "m.png")]) == 2
