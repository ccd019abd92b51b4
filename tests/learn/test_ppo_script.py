"""scripts/train_ppo.py helpers: the learning-curve figure (also across resumed segments) and ship checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("train_ppo")


def _part(path: Path, steps: list[int], n: int = 4) -> None:
    rng = np.random.default_rng(len(steps))
    np.savez(path, timesteps=np.array(steps), results=rng.normal(size=(len(steps), n)),
             successes=rng.random((len(steps), n)) > 0.5, ep_lengths=np.full((len(steps), n), 10))


def test_plot_curve_joins_resumed_segments(script, tmp_path: Path):
    ev = tmp_path / "eval"
    ev.mkdir()
    assert script.plot_curve(ev, tmp_path / "none.png", "t") is None  # nothing evaluated yet
    _part(ev / "evaluations.npz", [300, 400])  # the resumed segment (newest file) ...
    _part(ev / "evaluations_part0.npz", [100, 200])  # ... and the first one
    png = script.plot_curve(ev, tmp_path / "fig" / "curve.png", "t")
    assert png is not None and Path(png).stat().st_size > 1000


def test_ship_rejects_a_name_of_another_env(script, tmp_path: Path):
    (tmp_path / "summary.json").write_text(json.dumps({"env": "LiquidControl/DroneNav-v0"}))
    with pytest.raises(ValueError, match="dronenav-"):
        script.ship_run(tmp_path, "rovernav-ltc-ppo", 5, 1)


def test_nav_fine_tunes_on_the_env_of_its_bc_checkpoint(script, tmp_path: Path):
    for env in ("LiquidControl/DroneNav-v0", "LiquidControl/RoverNav-v0"):
        (tmp_path / "config.json").write_text(json.dumps({"env_id": env}))
        assert script._env_of(str(tmp_path)) == env
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "LiquidControl/DroneHover-v0"}))
    with pytest.raises(SystemExit, match="DroneHover"):
        script._env_of(str(tmp_path))
    with pytest.raises(SystemExit, match="not a checkpoint"):
        script._env_of(str(tmp_path / "missing"))
