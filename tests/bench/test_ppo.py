"""`bench ppo` (liquid_control/bench/ppo.py): parameter matching and the report's shape (no timing checks)."""

from __future__ import annotations

import json

import gymnasium as gym

from liquid_control.bench.ppo import _trainable, bench_ppo, lstm_size_for


def test_lstm_size_matches_the_parameter_count():
    from sb3_contrib.ppo_recurrent.policies import MlpLstmPolicy

    env = gym.make("Pendulum-v1")
    target = 12_000
    h = lstm_size_for(target, env.observation_space, env.action_space, shared=False)

    def count(n: int) -> int:
        pol = MlpLstmPolicy(env.observation_space, env.action_space, lambda _: 1e-3, lstm_hidden_size=n)
        return _trainable(pol)

    assert abs(count(h) - target) <= min(abs(count(h - 1) - target), abs(count(h + 1) - target))


def test_bench_report_on_a_tiny_run(tmp_path):
    report = bench_ppo("Pendulum-v1", {}, steps=16, n_envs=1, n_steps=8, batch_size=8, n_epochs=1,
                       critic="shared", budget=20000, seed=0, vec_env="dummy")
    json.dumps(report)  # JSON-able
    assert report["platform"]["packages"]["stable_baselines3"]
    ltc, lstm = report["agents"]["ltc"], report["agents"]["lstm"]
    assert ltc["env_steps"] == lstm["env_steps"] == 16
    assert abs(ltc["trainable_params"] - lstm["trainable_params"]) < 0.1 * ltc["trainable_params"]
    assert report["ratio_ltc_over_lstm"] == round(ltc["steps_per_s_cpu"] / lstm["steps_per_s_cpu"], 3)
    assert report["meets_target"] == (report["ratio_ltc_over_lstm"] >= 0.5)
