"""PPO with liquid policies inside sb3-contrib (liquid_control/learn/ppo.py).

A toy memory task (a cue at step 0, the answer is scored at step ``delay``) makes the recurrent state
matter: a policy without memory is at chance, and a state that leaks across episode boundaries changes
the actions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.vec_env import DummyVecEnv

from liquid_control.learn.ppo import LiquidPolicy, PPOConfig, export_checkpoint, train_ppo

TOY_ID = "LiquidControlTest/CueRecall-v0"


class CueRecall(gym.Env):
    """Observation (cue, query): the cue (±1) is shown only at step 0, the query flag only at step ``delay``.

    The reward at step ``delay`` is ``cue * action`` (success: the signs agree); the episode then ends.
    Without memory of the cue the expected reward is 0 and the success rate 50%.
    """

    def __init__(self, delay: int = 4, split: str = "train") -> None:
        self.delay, self.split = delay, split
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.t, self.cue = 0, 1.0

    def _obs(self) -> np.ndarray:
        return np.array([self.cue if self.t == 0 else 0.0, 1.0 if self.t == self.delay else 0.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.cue = 0, float(self.np_random.choice([-1.0, 1.0]))
        return self._obs(), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        if self.t < self.delay:
            self.t += 1
            return self._obs(), 0.0, False, False, {}
        return self._obs(), self.cue * a, True, False, {"is_success": bool(a * self.cue > 0)}


if TOY_ID not in gym.registry:
    gym.register(id=TOY_ID, entry_point=CueRecall, disable_env_checker=True)

SMALL = {"policy_config": {"core": "ltc", "budget": None, "encoder_hidden": [16], "features": 8,
                           "core_kwargs": {"units": 12}}}


def _model(seed: int = 0, n_envs: int = 2, critic: str = "separate", delay: int = 4, **kw) -> RecurrentPPO:
    venv = DummyVecEnv([lambda: CueRecall(delay) for _ in range(n_envs)])
    kw.setdefault("policy_kwargs", {**SMALL, "critic": critic})
    return RecurrentPPO(LiquidPolicy, venv, n_steps=16, batch_size=32, n_epochs=2, seed=seed, device="cpu",
                        **kw)


def _sample_batches(model: RecurrentPPO):
    _, cb = model._setup_learn(model.n_steps * model.n_envs, None, True, "t", False)
    model.collect_rollouts(model.env, cb, model.rollout_buffer, n_rollout_steps=model.n_steps)
    return list(model.rollout_buffer.get(model.batch_size))


def test_policy_shapes_and_state_layout():
    model = _model()
    p = model.policy
    assert isinstance(p, LiquidPolicy) and p.actor.config.core == "ltc"
    assert p.lstm_actor.num_layers == 1 and p.lstm_actor.hidden_size == p.state_width
    obs = torch.zeros(3, 2)
    states = p._pack(p.actor.initial_state(3))
    from sb3_contrib.common.recurrent.type_aliases import RNNStates

    actions, values, logp, new = p(obs, RNNStates(states, states), torch.ones(3))
    assert actions.shape == (3, 1) and values.shape == (3, 1) and logp.shape == (3,)
    assert new.pi[0].shape == (1, 3, p.state_width)


@pytest.mark.parametrize("critic,critic_config", [("separate", None), ("shared", None),
                                                  ("separate", {"core": "gru", "core_kwargs": {"units": 5}})])
def test_rollout_log_probs_reproduced_and_episode_starts_reset_the_state(critic, critic_config):
    """Before any update, evaluate_actions on the buffer's sequences must reproduce the rollout's log-probs
    and values: only true if the state is reset at the episode starts inside those sequences (episodes are
    5 steps, rollouts 16, so most sequences start at an episode start after a non-zero carried state)."""
    kw = {} if critic_config is None else {"critic_config": critic_config}  # a GRU critic: other state width
    model = _model(critic=critic, policy_kwargs={**SMALL, "critic": critic, **kw})
    p = model.policy
    p.set_training_mode(False)
    n_reset_seqs, differs = 0, False
    for b in _sample_batches(model):
        with torch.no_grad():
            values, logp, _ = p.evaluate_actions(b.observations, b.actions, b.lstm_states, b.episode_starts)
            mask = b.mask > 0
            np.testing.assert_allclose(logp[mask].numpy(), b.old_log_prob[mask].numpy(), atol=1e-4)
            np.testing.assert_allclose(values.flatten()[mask].numpy(), b.old_values[mask].numpy(), atol=1e-4)
            # the same batch with the resets ignored gives other log-probs: the reset matters here
            logp_ignored = p.evaluate_actions(b.observations, b.actions, b.lstm_states,
                                              torch.zeros_like(b.episode_starts))[1]
            differs |= not torch.allclose(logp_ignored[mask], b.old_log_prob[mask], atol=1e-4)
            n_reset_seqs += int(b.episode_starts.sum())
    assert n_reset_seqs > 0 and differs


def test_reset_in_the_middle_of_a_sequence():
    """A reset at step t of one sequence == a fresh run (zero state) from step t."""
    model = _model()
    p = model.policy
    torch.manual_seed(1)
    T, t0 = 7, 3
    obs = torch.randn(1 * T, 2)
    actions = torch.rand(T, 1) * 2 - 1
    starts = torch.zeros(T)
    starts[t0] = 1.0
    state = p._pack(torch.randn(1, p.actor.state_size) * 0.5)
    from sb3_contrib.common.recurrent.type_aliases import RNNStates

    crit_state = p._pack(torch.randn(1, p.critic_net.state_size) * 0.5)
    with torch.no_grad():
        v, lp, _ = p.evaluate_actions(obs, actions, RNNStates(state, crit_state), starts)
        zero = p._pack(torch.zeros(1, p.state_width))
        v2, lp2, _ = p.evaluate_actions(obs[t0:], actions[t0:], RNNStates(zero, zero), torch.zeros(T - t0))
        _, lp3, _ = p.evaluate_actions(obs, actions, RNNStates(state, crit_state), torch.zeros(T))
    torch.testing.assert_close(lp[t0:], lp2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v[t0:], v2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(lp[t0:], lp3[t0:], atol=1e-4)  # without the reset the state leaks


def _first_update(seed: int) -> dict[str, float]:
    torch.manual_seed(123)  # make sure the model's own seeding is what fixes the result
    model = _model(seed=seed)
    model.learn(total_timesteps=model.n_steps * model.n_envs)
    vals = model.logger.name_to_value
    keys = ("train/value_loss", "train/policy_gradient_loss", "train/entropy_loss", "train/approx_kl")
    return {k: float(vals[k]) for k in keys}


def test_same_seed_same_first_update_losses():
    a, b = _first_update(0), _first_update(0)
    assert a == b
    assert _first_update(1) != a


def test_round_trip_and_export_match_deterministic_predict(tmp_path: Path):
    from stable_baselines3.common.vec_env import VecNormalize

    from liquid_control.learn.checkpoint import load_controller

    venv = VecNormalize(DummyVecEnv([lambda: CueRecall(3)]), norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = RecurrentPPO(LiquidPolicy, venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                         policy_kwargs=SMALL)
    model.learn(total_timesteps=64)  # moves the weights and the VecNormalize statistics away from identity
    venv.training = False
    # SB3 save/load round trip: identical deterministic actions with recurrent state
    model.save(tmp_path / "m.zip")
    loaded = RecurrentPPO.load(tmp_path / "m.zip", device="cpu")
    # export to the BC checkpoint format: a Controller on raw observations
    export_checkpoint(model, tmp_path / "ckpt", TOY_ID, {}, {"note": "test"})
    ctrl = load_controller(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["algorithm"] == "ppo"
    rng = np.random.default_rng(0)
    for _ in range(2):  # two episodes: the state must reset between them
        ctrl.reset()
        s1 = s2 = None
        start = np.ones(1, bool)
        for _ in range(6):
            raw = rng.uniform(-1, 1, size=(1, 2)).astype(np.float32)
            nobs = venv.normalize_obs(raw)
            a1, s1 = model.predict(nobs, s1, start, deterministic=True)
            a2, s2 = loaded.predict(nobs, s2, start, deterministic=True)
            a3 = ctrl.act(raw[0])
            np.testing.assert_array_equal(a1, a2)
            np.testing.assert_allclose(a1[0], a3, atol=2e-5)
            start = np.zeros(1, bool)
    assert np.abs(model.policy.actor.obs_mean.numpy()).max() == 0.0  # training net stays identity
    assert np.abs(ctrl.policy.obs_mean.numpy()).max() > 0.0  # statistics were baked into the export


def test_warm_start_loads_the_imitation_policy(tmp_path: Path):
    from liquid_control.learn.checkpoint import load_policy, save_checkpoint
    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    bc = PolicyNet(PolicyConfig(obs_dim=2, act_dim=1, **SMALL["policy_config"]))
    bc.set_normalization(np.array([0.1, -0.2]), np.array([2.0, 0.5]), np.array([-1.0]), np.array([1.0]))
    with torch.no_grad():
        bc.head.bias.fill_(0.3)
    save_checkpoint(tmp_path / "bc", bc, {"env_id": TOY_ID}, {})
    cfg = PPOConfig(env_id=TOY_ID, out=str(tmp_path / "run"), steps=32, init=str(tmp_path / "bc"), n_envs=1,
                    n_steps=16, batch_size=16, n_epochs=1, eval_freq=0, checkpoint_freq=0, critic_warmup=2,
                    progress=False, lr=1e-12, env_options={"delay": 3})
    path = train_ppo(cfg)
    net, conf = load_policy(path)
    # the BC normalisation and weights went into the actor (a tiny lr keeps them ~unchanged)
    torch.testing.assert_close(net.obs_mean, bc.obs_mean)
    torch.testing.assert_close(net.obs_std, bc.obs_std)
    for (k, v), (k2, v2) in zip(net.state_dict().items(), bc.state_dict().items(), strict=True):
        assert k == k2 and torch.allclose(v, v2, atol=1e-6), k
    card = json.loads((path / "card.json").read_text())
    assert card["init"] == str(tmp_path / "bc") and len(card["critic_warmup_value_loss"]) == 2
    assert conf["env_options"] == {"delay": 3}


def test_cli_run_eval_checkpoints_and_resume(tmp_path: Path):
    """`train ppo` end to end on the toy env: val evaluation exports RUN/best, SB3 checkpoints, resume."""
    from liquid_control.cli import main
    from liquid_control.learn.checkpoint import load_policy

    run = tmp_path / "run"
    common = ["--no-progress", "--n-steps", "16", "--batch-size", "16", "--epochs", "1"]
    assert main(["train", "ppo", "--env", TOY_ID, "--steps", "32", "--n-envs", "1", "--out", str(run),
                 "--budget", "3000", "--eval-freq", "16", "--eval-episodes", "2", "--checkpoint-freq", "16",
                 "--set", "delay=2", *common]) == 0
    assert (run / "best" / "policy.pt").exists() and (run / "sb3" / "eval" / "evaluations.npz").exists()
    assert sorted(p.name for p in (run / "sb3" / "checkpoints").glob("*.zip")) == [
        "ppo_16_steps.zip", "ppo_32_steps.zip"]
    assert list((run / "sb3" / "tb").iterdir())  # TensorBoard logs
    assert json.loads((run / "card.json").read_text())["eval"]["timesteps"] == [16, 32]
    best_before = json.loads((run / "best" / "card.json").read_text())["val_mean_reward"]
    assert main(["train", "ppo", "--resume", str(run), "--steps", "64", *common[:1]]) == 0
    # the resumed evaluations only replace RUN/best when they beat the earlier segment's best
    assert json.loads((run / "best" / "card.json").read_text())["val_mean_reward"] >= best_before
    card = json.loads((run / "card.json").read_text())
    assert card["env_steps"] == 64 and card["resumed_from"] == str(run)
    net, conf = load_policy(run)
    assert conf["env_options"] == {"delay": 2} and net.config.budget == 3000
    assert main(["train", "ppo", "--env", TOY_ID, "--out", str(run)]) == 2  # --steps missing: user error


def test_alive_bonus_shapes_the_training_reward_only():
    from liquid_control.learn.ppo import make_env

    rewards = []
    for bonus in (0.0, 0.5):
        env = make_env(TOY_ID, alive_bonus=bonus, delay=1)
        env.reset(seed=3)
        rewards.append([env.step(np.array([0.7], np.float32))[1] for _ in range(2)])
    np.testing.assert_allclose(np.array(rewards[1]) - np.array(rewards[0]), [0.5, 0.5])


def test_bad_input_is_a_value_error(tmp_path: Path):
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="Box action"):
        RecurrentPPO(LiquidPolicy, venv, device="cpu")
    with pytest.raises(ValueError, match="critic"):
        _model(critic="nope")
    with pytest.raises(ValueError, match="steps"):
        PPOConfig(env_id="LiquidControl/DroneHover-v0", out="y", steps=0)
    with pytest.raises(ValueError, match="unknown env id"):
        train_ppo(PPOConfig(env_id="LiquidControl/Nope-v0", out=str(tmp_path / "run"), steps=10))
    assert not (tmp_path / "run").exists()  # rejected before anything is written


@pytest.mark.slow
def test_learns_memory_task_above_chance(tmp_path: Path):
    """A short PPO run on the cue-recall task must beat chance (50%) clearly with the deterministic policy."""
    cfg = PPOConfig(env_id=TOY_ID, out=str(tmp_path / "run"), steps=12_000, n_envs=4, vec_env="dummy",
                    n_steps=64, batch_size=256, n_epochs=8, lr=3e-3, eval_freq=0, checkpoint_freq=0,
                    progress=False, env_options={"delay": 3}, budget=None,
                    core_kwargs={"units": 12}, seed=0)
    path = train_ppo(cfg)
    from liquid_control.learn.checkpoint import load_controller

    ctrl = load_controller(path)
    env = CueRecall(3)
    wins = 0
    for seed in range(100):
        obs, _ = env.reset(seed=seed)
        ctrl.reset(env, obs)
        done = False
        while not done:
            obs, r, done, _, info = env.step(ctrl.act(obs))
        wins += info["is_success"]
    assert wins >= 80, wins


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="this OS cannot pin processes")
def test_pin_workers_puts_each_worker_on_a_cpu_of_its_own():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from liquid_control.learn.ppo import pin_workers

    cpus = sorted(os.sched_getaffinity(0))
    vec = SubprocVecEnv([lambda: gym.make("CartPole-v1")] * 3)
    try:
        chosen = pin_workers(vec)
        assert chosen == [cpus[i % len(cpus)] for i in range(3)]  # round robin over the allowed CPUs
        assert [os.sched_getaffinity(proc.pid) for proc in vec.processes] == [{c} for c in chosen]
        vec.reset()
        assert len(vec.step(np.zeros(3, dtype=np.int64))[0]) == 3  # pinned workers still step
    finally:
        vec.close()
    assert os.sched_getaffinity(0) == set(cpus)  # the calling process is left as it was
    with pytest.raises(TypeError, match="SubprocVecEnv"):
        pin_workers(DummyVecEnv([lambda: gym.make("CartPole-v1")]))


def test_pin_workers_and_vec_env_flags_reach_the_config():
    import argparse

    from liquid_control.learn.ppo import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--env", TOY_ID, "--steps", "10", "--out", "x"]
    assert config_from_args(parser.parse_args(base))[0].pin_workers is False
    assert config_from_args(parser.parse_args([*base, "--pin-workers"]))[0].pin_workers is True
    assert config_from_args(parser.parse_args(base))[0].vec_env == "auto"
    assert config_from_args(parser.parse_args([*base, "--vec-env", "batched"]))[0].vec_env == "batched"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--vec-env", "threads"])
