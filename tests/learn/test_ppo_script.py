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


def _run(tmp_path: Path, seed: int, env: str = "LiquidControl/RoverNav-v0") -> Path:
    run = tmp_path / f"s{seed}"
    ckpt = run / "policy"
    ckpt.mkdir(parents=True)
    (ckpt / "card.json").write_text(json.dumps({"env_steps": 10}))
    val = {"success_rate": {"mean": 0.1 * seed}, "spl": {"mean": 0.0}}
    (run / "summary.json").write_text(json.dumps({
        "env": env, "seed": seed, "train_wall_clock_s": 60.0 + seed, "env_options": {},
        "selection": {"episodes": 30, "val": {"ppo": val}, "selected": "ppo", "checkpoint": str(ckpt)},
        "test": {"ppo": {}}}))
    return run


def test_ship_of_several_seeds_selects_on_the_same_val_episodes(script, tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(script.__file__).parent))  # ship_run imports train_zoo from there
    import train_zoo
    runs = [_run(tmp_path, seed) for seed in (0, 1, 2)]
    on_val = {str(r / "policy"): v for r, v in zip(runs, (0.5, 0.7, 0.6), strict=True)}  # re-evaluated val
    calls, shipped = [], {}
    monkeypatch.setattr(script, "_metrics", lambda ckpt, env, ov, where, n, seed, w: calls.append(
        (where, n, seed)) or {"success_rate": {"mean": on_val[ckpt]}})
    suites_seen = []

    def fake_every_seed(recs, args, dest, suite="test"):
        suites_seen.append(suite)
        for r in recs:
            if suite == "test":
                r["test"] = {"success_rate": {"mean": 0.2}}
            else:
                r.setdefault("suites", {})[suite] = {"success_rate": {"mean": 0.1}}

    monkeypatch.setattr(train_zoo, "test_every_seed", fake_every_seed)

    def fake_ship(best, args, env_short, demos, records):
        shipped.update(best=best, records=records)
        dest = tmp_path / "policies" / "rovernav-ltc-ppo"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "card.json").write_text(json.dumps({"selection": {}}))
        return dest

    monkeypatch.setattr(train_zoo, "ship", fake_ship)
    monkeypatch.setattr(train_zoo, "ROOT", tmp_path)  # never touch the repository's policies/
    dest = script.ship_run(runs, "rovernav-ltc-ppo", 5, 1)
    assert calls == [("val", 30, 1000)] * 3  # every seed on the seed-0 run's val episodes
    assert shipped["best"]["seed"] == 1 and [r["seed"] for r in shipped["records"]] == [0, 1, 2]
    assert all("test" in r for r in shipped["records"]) and suites_seen == ["test"]
    assert json.loads((dest / "card.json").read_text())["selection"]["selected"] == "ppo"
    script.ship_run(runs, "rovernav-ltc-ppo", 5, 1, ["ood-family", "ood-latency"])  # every seed on OOD too
    assert suites_seen[1:] == ["test", "ood-family", "ood-latency"]
    assert set(shipped["records"][0]["suites"]) == {"ood-family", "ood-latency"}
    with pytest.raises(ValueError, match="several runs"):
        script.ship_run(runs[:1], "rovernav-ltc-ppo", 5, 1, ["ood-family"])
    n_calls = len(calls)
    with pytest.raises(ValueError, match="unknown suite"):  # before any evaluation
        script.ship_run(runs, "rovernav-ltc-ppo", 5, 1, ["ood-nonsense"])
    assert len(calls) == n_calls
    with pytest.raises(ValueError, match="one run per training seed"):
        script.ship_run([runs[0], runs[0]], "rovernav-ltc-ppo", 5, 1)
    other = _run(tmp_path / "d", 3, env="LiquidControl/DroneNav-v0")
    with pytest.raises(ValueError, match="different envs"):
        script.ship_run([runs[0], other], "rovernav-ltc-ppo", 5, 1)

