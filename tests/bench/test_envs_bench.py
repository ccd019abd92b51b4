"""`liquid-control bench envs` smoke test: JSON with the env and same-run raw-physics figures."""

from __future__ import annotations

import json
import os

import pytest

from liquid_control.cli import main


def test_bench_envs_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "envs", "--steps", "30", "--no-vec", "--env", "LiquidControl/RoverNav-v0",
               "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["platform"]["packages"]["pybullet"] == data["pybullet"]
    r = data["envs"]["LiquidControl/RoverNav-v0"]
    assert r["substeps"] == 12
    assert r["env_steps_per_s"] > 0 and r["raw_physics_steps_per_s"] > 0
    # the env does the same substeps plus sensing and bookkeeping: it cannot beat raw physics by much
    assert r["fraction_of_raw_limit"] < 1.5
    assert 0 < r["fraction_of_raw_limit_per_cpu"] < 1.5
    assert "airborne_raw_env_equivalent_steps_per_cpu_s" not in r  # only bodies that fly have one
    # the rover's physics-only reference: the same actions' motor commands and substeps, no sensing
    assert r["driving_raw_env_equivalent_steps_per_cpu_s"] > 0
    assert 0 < r["fraction_of_driving_raw_per_cpu"] < 1.5
    assert "raw_ray_scans_per_cpu_s" not in r  # its lidar is cast in the plane, not with rayTestBatch
    assert "RoverNav" in capsys.readouterr().out


def test_bench_envs_drone_has_an_airborne_reference(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "envs", "--steps", "30", "--no-vec", "--env", "LiquidControl/DroneHover-v0",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())["envs"]["LiquidControl/DroneHover-v0"]
    assert r["substeps"] == 8
    assert r["airborne_raw_env_equivalent_steps_per_cpu_s"] > 0
    assert "driving_raw_env_equivalent_steps_per_cpu_s" not in r  # the rover's reference
    # the env flies the same body through the same substeps plus control: it cannot beat that loop by much
    assert 0 < r["fraction_of_airborne_raw_per_cpu"] < 1.5


def test_bench_envs_dronenav_has_a_raw_ray_reference(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "envs", "--steps", "20", "--no-vec", "--env", "LiquidControl/DroneNav-v0",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())["envs"]["LiquidControl/DroneNav-v0"]
    assert r["raw_ray_scans_per_cpu_s"] > 0 and r["exact_ray_scans_per_cpu_s"] > 0
    assert r["ray_cast_speedup_vs_raytestbatch"] == pytest.approx(
        r["exact_ray_scans_per_cpu_s"] / r["raw_ray_scans_per_cpu_s"])
    assert 0 < r["fraction_of_airborne_raw_per_cpu"] < 1.5


def test_bench_envs_rejects_bad_input(tmp_path):
    assert main(["bench", "envs", "--env", "Nope-v0", "--out", str(tmp_path / "x.json")]) == 2
    with pytest.raises(SystemExit):
        main(["bench", "envs", "--steps", "abc"])


@pytest.mark.slow  # ~40 s: eleven SubprocVecEnv start-ups
def test_bench_envs_vec_figures_come_with_the_pipe_round_trip_reference(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "envs", "--steps", "20", "--env", "LiquidControl/RoverNav-v0", "--envs-per-worker", "3",
            "--out", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    ipc = data["ipc_reference"]
    assert ipc["env"] == "CartPole-v1"
    assert ipc["round_trip_us"] == pytest.approx(1e6 / ipc["subproc_1_steps_per_s"])
    r = data["envs"]["LiquidControl/RoverNav-v0"]
    assert r["subproc_speedup_2v1"] == pytest.approx(r["subproc_2_steps_per_s"] / r["subproc_1_steps_per_s"])
    busy = r["busy_reference"]  # a stand-in burning the env's own step time behind the same protocol
    assert busy["step_us"] == pytest.approx(1e6 / r["env_steps_per_s"])
    ratio = busy["subproc_2_steps_per_s"] / busy["subproc_1_steps_per_s"]
    assert busy["subproc_speedup_2v1"] == pytest.approx(ratio)
    if hasattr(os, "sched_setaffinity"):  # the same protocol with every worker on a CPU of its own
        pinned = r["subproc_pinned_2_steps_per_s"] / r["subproc_pinned_1_steps_per_s"]
        assert r["subproc_pinned_speedup_2v1"] == pytest.approx(pinned)
        assert r["batched_pinned_speedup_2v1"] == pytest.approx(
            r["batched_pinned_2_steps_per_s"] / r["batched_pinned_1_steps_per_s"])
    assert r["envs_per_worker"] == 3  # BatchedSubprocVecEnv: 3 envs per worker process
    assert r["batched_speedup_2v1"] == pytest.approx(r["batched_2_steps_per_s"] / r["batched_1_steps_per_s"])
    assert "round trip" in capsys.readouterr().out
    assert main([*args[:-2], "--envs-per-worker", "0", "--out", str(out)]) == 2


def test_busy_env_burns_its_step_time_and_passes_check_env():
    """The stand-in of the vec reference: a valid Gymnasium env whose step takes at least its step time."""
    import time

    from gymnasium.utils.env_checker import check_env

    from liquid_control.bench.envs import BusyEnv

    env = BusyEnv(300.0, 49, 4)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(20):
        obs, *_ = env.step(env.action_space.sample())
    assert (time.perf_counter() - t0) / 20 >= 300e-6 and obs.shape == (49,)
