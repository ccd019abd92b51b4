"""PPO for liquid (and any-core) recurrent policies inside stable-baselines3 / sb3-contrib.

:class:`LiquidPolicy` is a documented subclass of sb3-contrib's ``RecurrentActorCriticPolicy``, so
``RecurrentPPO(LiquidPolicy, env, policy_kwargs={"policy_config": {"core": "ltc"}})`` just works:

* **Actor** = the imitation :class:`~liquid_control.nets.policy.PolicyNet` itself (observation
  normalisation → encoder → recurrent core → head → tanh → env units), so a BC checkpoint loads into it
  unchanged and the PPO result exports to the very same checkpoint format. The action distribution is a
  diagonal Gaussian whose **mean is the PolicyNet output** (tanh head, de-normalised to the action box)
  and whose state-independent ``log_std`` is learnt (initialised to ``log_std_init + log(act_scale)``,
  i.e. relative to the action range). The deterministic action (the mean) is exactly what the exported
  checkpoint's ``PolicyNet`` / ``load_controller`` produce.
* **Critic** (``critic=``): ``"separate"`` (default): a second PolicyNet stack (same encoder kind, own
  core of the same kind unless ``critic_config`` says otherwise; its linear head, without tanh, is the
  value); ``"shared"``: a small MLP value head reading the actor's encoder features and core outputs,
  detached as in sb3-contrib's ``shared_lstm`` (the value loss never moves the actor) and with no second
  recurrent pass (about half the compute).
* **Recurrent state in the rollout buffer.** ``RecurrentPPO`` stores LSTM-shaped ``(h, c)`` pairs of shape
  ``(1, n_envs, hidden)`` for the actor and the critic. The adapter exposes ``lstm_actor.num_layers = 1`` and
  ``lstm_actor.hidden_size = H = max(actor, critic state size)``; a core's flat ``(B, S)`` state lives in
  ``h[0, :, :S]`` (``c`` is unused zeros). Flattened batches are cut back into ``(n_seq, T)`` sequences
  exactly as sb3-contrib does, and the buffer's ``episode_starts`` become the core's ``resets`` mask, so the
  state is zeroed before every episode's first step wherever it falls in a sequence (the buffer stores the
  state *before* each step, so the carried-over state of the previous episode is what gets reset).
* **Observation normalisation** lives in the PolicyNet buffers. From scratch, ``VecNormalize`` (clip 10)
  normalises observations during training while the actor's buffers stay at identity; the exported
  checkpoint gets VecNormalize's final statistics baked into ``obs_mean`` / ``obs_std`` (same clip), so it
  acts on raw observations. With ``--init`` the BC statistics are kept and VecNormalize only scales rewards
  (never both: no double normalisation).

Also serves ``liquid-control train ppo`` (see :func:`add_arguments`): SubprocVecEnv (one worker per core),
TensorBoard, progress bar, CheckpointCallback + ``--resume``, EvalCallback on the val split (the best
policy is exported to ``RUN/best``), optional critic pre-training on rollouts of a warm-started actor,
an optional training-only ``--alive-bonus`` (reward shaping for tasks whose reward makes an early crash
the cheapest return), and the final export to ``RUN`` (policy.pt/config.json/card.json) for
``evaluate`` and ``render``. Run layout: ``RUN/{policy.pt,config.json,card.json}`` (final policy),
``RUN/best/`` (best on val), ``RUN/ppo_run.json`` (options, for ``--resume``), ``RUN/sb3/checkpoints``
(SB3 zips + VecNormalize statistics), ``RUN/sb3/tb`` (TensorBoard), ``RUN/sb3/eval``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor, nn

from liquid_control.learn.demos import check_env_id
from liquid_control.nets.policy import PolicyConfig, PolicyNet, param_counts

CRITICS = ("separate", "shared")
OBS_CLIP = 10.0  # PolicyNet clamps normalised observations to [-10, 10]; VecNormalize must use the same


class _StateSpec:
    """What RecurrentPPO reads from ``policy.lstm_actor`` to shape its state buffers."""

    num_layers = 1

    def __init__(self, hidden_size: int) -> None:
        self.hidden_size = hidden_size


class LiquidPolicy(RecurrentActorCriticPolicy):
    """Recurrent actor-critic for sb3-contrib's ``RecurrentPPO`` with any core of ``nets.core`` (LTC default).

    :param policy_config: :class:`PolicyConfig` fields of the actor (``obs_dim``/``act_dim`` come from the
        spaces), e.g. ``{"core": "ltc", "budget": 20000, "encoder": "mlp"}``.
    :param critic: ``"separate"`` (own encoder + core + linear value head) or ``"shared"`` (MLP value
        head on the actor's detached encoder features and core outputs).
    :param critic_config: PolicyConfig overrides of the separate critic (e.g. ``{"core": "gru"}``).
    :param log_std_init: initial log std of the Gaussian, relative to the half-range of the action box.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        policy_config: dict[str, Any] | None = None,
        critic: str = "separate",
        critic_config: dict[str, Any] | None = None,
        log_std_init: float = -0.5,
        use_sde: bool = False,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"LiquidPolicy needs a flat Box observation space, got {observation_space}")
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"LiquidPolicy needs a flat Box action space, got {action_space}")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError("LiquidPolicy needs a bounded action box (the mean is a tanh output)")
        if use_sde:
            raise ValueError("LiquidPolicy does not support gSDE (use_sde=True)")
        if critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {critic!r}")
        self.policy_config = dict(policy_config or {})
        self.critic_mode = critic
        self.critic_config = dict(critic_config or {})
        # skip RecurrentActorCriticPolicy.__init__ (it builds nn.LSTMs); ActorCriticPolicy's calls our _build
        ActorCriticPolicy.__init__(
            self, observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False, use_sde=False,
            log_std_init=log_std_init, normalize_images=normalize_images, optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        self.shared_lstm = critic == "shared"
        self.enable_critic_lstm = critic == "separate"

    # ---------------------------------------------------------------- construction
    def _build(self, lr_schedule: Schedule) -> None:
        obs_dim, act_dim = int(self.observation_space.shape[0]), int(self.action_space.shape[0])
        cfg = {**self.policy_config, "obs_dim": obs_dim, "act_dim": act_dim}
        self.actor = PolicyNet(PolicyConfig.from_dict(cfg))
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        self.actor.set_normalization(np.zeros(obs_dim), np.ones(obs_dim), low, high)  # identity obs stats
        self._taps: dict[str, Tensor] = {}
        if self.critic_mode == "separate":
            ccfg = {**self.actor.config.to_dict(), "act_dim": 1, **self.critic_config}
            ccfg.update(obs_dim=obs_dim, act_dim=1)
            self.critic_net = PolicyNet(PolicyConfig.from_dict(ccfg))
            critic_state = self.critic_net.state_size
        else:
            width = self.actor.config.features + self.actor.core.output_size
            self.value_head = nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, 1))
            self.actor.encoder.register_forward_hook(partial(_tap, self._taps, "features"))
            self.actor.core.register_forward_hook(partial(_tap, self._taps, "core"))
            critic_state = self.actor.state_size
        self.action_dist = DiagGaussianDistribution(act_dim)
        rel = torch.log(self.actor.act_scale.detach().clone())
        self.log_std = nn.Parameter(torch.full((act_dim,), float(self.log_std_init)) + rel)
        self.state_width = max(self.actor.state_size, critic_state, 1)
        self.lstm_actor = _StateSpec(self.state_width)
        self.lstm_critic = None
        self.lstm_hidden_state_shape = (1, 1, self.state_width)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(
            observation_space=self.observation_space, action_space=self.action_space,
            lr_schedule=self._dummy_schedule, policy_config=self.policy_config, critic=self.critic_mode,
            critic_config=self.critic_config, log_std_init=self.log_std_init,
            optimizer_class=self.optimizer_class, optimizer_kwargs=self.optimizer_kwargs,
        )

    def critic_parameters(self) -> list[nn.Parameter]:
        """Parameters that only the value function uses (what critic pre-training optimises)."""
        module = self.critic_net if self.critic_mode == "separate" else self.value_head
        return [p for p in module.parameters() if p.requires_grad]

    # ---------------------------------------------------------------- state packing
    def _unpack(self, states: tuple[Tensor, ...], width: int) -> Tensor:
        """(h, c) of shape (1, B, H) -> the core's flat (B, width) state."""
        return states[0][0, :, :width]

    def _pack(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """The core's flat (B, S) state -> (h, c) of shape (1, B, H), zero-padded."""
        h = nn.functional.pad(state, (0, self.state_width - state.shape[1])).unsqueeze(0)
        return h, torch.zeros_like(h)

    @staticmethod
    def _sequences(obs: Tensor, episode_starts: Tensor, n_seq: int) -> tuple[Tensor, Tensor]:
        """Flat (n_seq*T, F) batch -> (n_seq, T, F) sequences and the (n_seq, T) reset mask."""
        x = obs.float().reshape(n_seq, -1, obs.shape[-1])
        return x, episode_starts.reshape(n_seq, -1) > 0.5

    # ---------------------------------------------------------------- networks
    def _actor(self, x: Tensor, state: Tensor, resets: Tensor) -> tuple[Tensor, Tensor]:
        mean, new_state = self.actor(x, state, resets)  # env units: what the exported checkpoint outputs
        return mean.reshape(-1, mean.shape[-1]), new_state

    def _value_separate(self, x: Tensor, state: Tensor, resets: Tensor) -> tuple[Tensor, Tensor]:
        net, a = self.critic_net, self.actor
        z = a.encoder_input(x, OBS_CLIP)
        y, new_state = net.core(net.encoder(z), state, resets)
        return net.head(y).reshape(-1, 1), new_state

    def _value_shared(self) -> Tensor:
        """Value from the features the last actor pass left in the taps (detached)."""
        feats, y = self._taps["features"].detach(), self._taps["core"].detach()
        return self.value_head(torch.cat([feats, y], dim=-1)).reshape(-1, 1)

    def _both(self, obs: Tensor, states: RNNStates, episode_starts: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n_seq = states.pi[0].shape[1]
        x, resets = self._sequences(obs, episode_starts, n_seq)
        mean, s_pi = self._actor(x, self._unpack(states.pi, self.actor.state_size), resets)
        if self.critic_mode == "separate":
            s_vf = self._unpack(states.vf, self.critic_net.state_size)
            values, s_vf = self._value_separate(x, s_vf, resets)
        else:
            values, s_vf = self._value_shared(), s_pi.detach()
        return mean, values, s_pi, s_vf

    # ---------------------------------------------------------------- the RecurrentActorCriticPolicy API
    def forward(self, obs: Tensor, lstm_states: RNNStates, episode_starts: Tensor,
                deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor, RNNStates]:
        mean, values, s_pi, s_vf = self._both(obs, lstm_states, episode_starts)
        dist = self.action_dist.proba_distribution(mean, self.log_std)
        actions = dist.get_actions(deterministic=deterministic)
        log_prob = dist.log_prob(actions)
        return actions, values, log_prob, RNNStates(self._pack(s_pi), self._pack(s_vf))

    def get_distribution(self, obs: Tensor, lstm_states: tuple[Tensor, ...], episode_starts: Tensor
                         ) -> tuple[DiagGaussianDistribution, tuple[Tensor, ...]]:
        x, resets = self._sequences(obs, episode_starts, lstm_states[0].shape[1])
        mean, s_pi = self._actor(x, self._unpack(lstm_states, self.actor.state_size), resets)
        return self.action_dist.proba_distribution(mean, self.log_std), self._pack(s_pi)

    def predict_values(self, obs: Tensor, lstm_states: tuple[Tensor, ...], episode_starts: Tensor) -> Tensor:
        x, resets = self._sequences(obs, episode_starts, lstm_states[0].shape[1])
        if self.critic_mode == "separate":
            return self._value_separate(x, self._unpack(lstm_states, self.critic_net.state_size), resets)[0]
        self._actor(x, self._unpack(lstm_states, self.actor.state_size), resets)
        return self._value_shared()

    def evaluate_actions(self, obs: Tensor, actions: Tensor, lstm_states: RNNStates, episode_starts: Tensor
                         ) -> tuple[Tensor, Tensor, Tensor]:
        mean, values, _, _ = self._both(obs, lstm_states, episode_starts)
        dist = self.action_dist.proba_distribution(mean, self.log_std)
        return values, dist.log_prob(actions), dist.entropy()

    # ---------------------------------------------------------------- warm start / export
    def load_actor(self, policy: PolicyNet) -> None:
        """Warm start: copy an imitation PolicyNet (normalisation, encoder, core, head) into the actor."""
        if policy.config.to_dict() != self.actor.config.to_dict():
            raise ValueError("the initial policy's architecture differs from this LiquidPolicy's actor "
                             f"({policy.config.to_dict()} vs {self.actor.config.to_dict()})")
        self.actor.load_state_dict(policy.state_dict())

    def export_net(self, obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None) -> PolicyNet:
        """A standalone copy of the actor as a PolicyNet (eval mode), optionally with normalisation baked in.

        ``obs_mean``/``obs_std`` (e.g. VecNormalize's ``mean`` and ``sqrt(var + eps)``) are composed with the
        actor's own statistics, so the copy acts on raw observations exactly as the trained policy acted on
        normalised ones.
        """
        net = PolicyNet(PolicyConfig.from_dict(self.actor.config.to_dict()))
        net.load_state_dict(self.actor.state_dict())
        if obs_mean is not None:
            m = torch.as_tensor(np.asarray(obs_mean), dtype=torch.float32)
            s = torch.as_tensor(np.asarray(obs_std), dtype=torch.float32)
            with torch.no_grad():  # raw -> (raw - m)/s -> ((...) - mean0)/std0
                net.obs_mean.copy_(m + s * self.actor.obs_mean)
                net.obs_std.copy_(s * self.actor.obs_std)
        return net.eval()


LtcPolicy = LiquidPolicy  # the name the issue uses: LiquidPolicy's default core is the LTC


def _tap(store: dict[str, Tensor], name: str, module: nn.Module, inputs: Any, output: Any) -> None:
    """Forward hook: keep a module's (first) output for the shared critic."""
    store[name] = output[0] if isinstance(output, tuple) else output


# ====================================================================================================
# training run
# ====================================================================================================

@dataclass
class PPOConfig:
    """Options of a ``train ppo`` run (stored as ``RUN/ppo_run.json`` for ``--resume``)."""

    env_id: str
    out: str
    steps: int
    policy: str = "ltc"
    init: str | None = None
    n_envs: int | None = None  # None: one worker per core
    seed: int = 0
    env_options: dict[str, Any] = field(default_factory=dict)
    budget: int | None = 20000
    encoder: str = "mlp"
    core_kwargs: dict[str, Any] = field(default_factory=dict)
    critic: str = "separate"
    critic_core: str | None = None
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 5
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    log_std_init: float | None = None  # None: -0.5 from scratch, -1.5 when warm-started
    normalize_reward: bool = True
    alive_bonus: float = 0.0  # added to every training step's reward (shaping; evaluation is unaffected)
    critic_warmup: int = 0  # rounds of critic-only fitting on rollouts of the (warm-started) actor
    eval_freq: int = 20000  # env steps between evaluations on the val split (0: none)
    eval_episodes: int = 10
    checkpoint_freq: int = 50000  # env steps between SB3 checkpoints (0: none)
    vec_env: str = "auto"  # one of VEC_ENVS (build_vec_env)
    pin_workers: bool = False  # each env worker process on a CPU of its own (pin_workers)
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "n_steps", "batch_size", "n_epochs", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_envs is not None and self.n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {self.n_envs}")
        for name in ("critic_warmup", "eval_freq", "checkpoint_freq"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {self.critic!r}")
        if self.vec_env not in VEC_ENVS:
            raise ValueError(f"vec_env must be one of {VEC_ENVS}, got {self.vec_env!r}")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1 or self.lr <= 0:
            raise ValueError("need 0 < gamma <= 1, 0 <= gae_lambda <= 1 and lr > 0")


def make_env(env_id: str, alive_bonus: float = 0.0, **options: Any):
    """Build one env by id (module-level, so it pickles into SubprocVecEnv workers).

    ``alive_bonus`` is added to every step's reward (training-time shaping; 0 leaves the env's reward).
    """
    import gymnasium as gym

    import liquid_control  # noqa: F401  (registers the ids in fresh worker processes)

    env = gym.make(env_id, **options)
    if alive_bonus:
        env = gym.wrappers.TransformReward(env, partial(_add, alive_bonus))
    return env


def _add(bonus: float, reward: float) -> float:
    return reward + bonus


VEC_ENVS = ("auto", "subproc", "batched", "dummy")


def build_vec_env(env_id: str, options: dict[str, Any], n_envs: int, seed: int, kind: str = "auto",
                  alive_bonus: float = 0.0, pin: bool = False, workers: int | None = None):
    """Monitor-wrapped VecEnv of ``kind`` (one of ``VEC_ENVS``): ``subproc`` is SB3's SubprocVecEnv (a
    process per env), ``batched`` a :class:`~liquid_control.learn.vec_env.BatchedSubprocVecEnv` (the envs
    shared among ``workers`` processes, default one per CPU, each stepping its share per message),
    ``dummy`` all envs in this process, ``auto`` subproc when ``n_envs > 1`` else dummy. ``pin`` puts
    every worker process on a CPU of its own (:func:`pin_workers`)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from liquid_control.learn.vec_env import BatchedSubprocVecEnv

    if kind not in VEC_ENVS:
        raise ValueError(f"vec env kind must be one of {VEC_ENVS}, got {kind!r}")
    if kind == "auto":
        kind = "subproc" if n_envs > 1 else "dummy"
    kwargs: dict[str, Any] | None = None
    cls: type = DummyVecEnv
    if kind == "subproc":
        cls, kwargs = SubprocVecEnv, {"start_method": "forkserver"}
    elif kind == "batched":
        n_workers = workers or min(n_envs, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                   else os.cpu_count() or 1)
        cls, kwargs = BatchedSubprocVecEnv, {"n_workers": n_workers, "start_method": "forkserver"}
    venv = make_vec_env(partial(make_env, env_id, alive_bonus), n_envs=n_envs, seed=seed, env_kwargs=options,
                        vec_env_cls=cls, vec_env_kwargs=kwargs)
    if pin and kind != "dummy":
        pin_workers(venv)
    return venv


def pin_workers(venv: Any) -> list[int] | None:
    """Pin each worker process of a SubprocVecEnv (or BatchedSubprocVecEnv) to one CPU, round robin over
    the CPUs this process may run on; returns the CPUs in worker order (None, with a warning, where the OS
    cannot pin).

    A worker sleeps between steps; unpinned, the scheduler wakes it on whichever core is free, often
    another one than last time, and every move costs the env's step a cold cache."""
    import warnings

    procs = getattr(venv, "processes", None)
    if procs is None:
        raise TypeError(f"pin_workers needs a SubprocVecEnv, got {type(venv).__name__}")
    if not hasattr(os, "sched_setaffinity"):
        warnings.warn("this OS cannot pin processes to CPUs; workers left unpinned", stacklevel=2)
        return None
    cpus = sorted(os.sched_getaffinity(0))
    chosen = [cpus[i % len(cpus)] for i in range(len(procs))]
    for proc, cpu in zip(procs, chosen, strict=True):
        os.sched_setaffinity(proc.pid, {cpu})
    return chosen


def policy_kwargs_for(cfg: PPOConfig, init_config: dict[str, Any] | None) -> dict[str, Any]:
    """``policy_kwargs`` of a run's LiquidPolicy (the BC checkpoint's architecture when warm-starting)."""
    if init_config is not None:
        pcfg = {k: v for k, v in init_config.items() if k not in ("obs_dim", "act_dim")}
    else:
        pcfg = {"core": cfg.policy, "budget": cfg.budget, "encoder": cfg.encoder,
                "core_kwargs": cfg.core_kwargs}
    log_std = cfg.log_std_init if cfg.log_std_init is not None else (-1.5 if init_config else -0.5)
    kw: dict[str, Any] = {"policy_config": pcfg, "critic": cfg.critic, "log_std_init": log_std}
    if cfg.critic_core:
        kw["critic_config"] = {"core": cfg.critic_core, "core_kwargs": {}}
    return kw


def _vecnormalize(venv, norm_obs: bool, norm_reward: bool, gamma: float, training: bool = True):
    from stable_baselines3.common.vec_env import VecNormalize

    return VecNormalize(venv, training=training, norm_obs=norm_obs, norm_reward=norm_reward,
                        clip_obs=OBS_CLIP, gamma=gamma)


def vecnormalize_of(venv):
    """The VecNormalize wrapper inside ``venv`` (or None)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecNormalize):
            return venv
        venv = venv.venv
    return None


def export_checkpoint(model: Any, out: str | os.PathLike, env_id: str, env_options: dict[str, Any],
                      card: dict[str, Any], extra_config: dict[str, Any] | None = None) -> Path:
    """Write the model's actor as a BC-format checkpoint (VecNormalize observation statistics baked in)."""
    from liquid_control.learn.checkpoint import save_checkpoint

    vn = vecnormalize_of(model.get_env()) if model.get_env() is not None else None
    if vn is not None and vn.norm_obs:
        if not math.isclose(vn.clip_obs, OBS_CLIP):
            raise ValueError(f"VecNormalize clip_obs must be {OBS_CLIP} (as PolicyNet), got {vn.clip_obs}")
        net = model.policy.export_net(vn.obs_rms.mean, np.sqrt(vn.obs_rms.var + vn.epsilon))
    else:
        net = model.policy.export_net()
    config = {"env_id": env_id, "env_options": env_options, "algorithm": "ppo", **(extra_config or {})}
    return save_checkpoint(out, net, config, card)


def pretrain_critic(model: Any, rounds: int, epochs: int = 5, lr: float = 1e-3, progress: bool = True
                    ) -> list[float]:
    """Fit only the value function on ``rounds`` rollouts of the current (e.g. BC) actor.

    Each round collects ``n_steps`` per env with RecurrentPPO's own collector (so VecNormalize's reward
    statistics warm up too), then regresses the value on the buffer's TD(λ) returns for ``epochs``
    passes; the returns bootstrap from the improving critic, so rounds converge. Returns the value loss
    per round. Environment steps taken here count in ``model.num_timesteps``.
    """
    from tqdm.auto import tqdm

    policy = model.policy
    params = policy.critic_parameters()
    opt = torch.optim.Adam(params, lr=lr)
    _, callback = model._setup_learn(rounds * model.n_steps * model.n_envs, None, True, "ppo", False)
    callback.on_training_start(locals(), globals())
    losses = []
    for _ in tqdm(range(rounds), desc="critic warm-up", disable=not progress, leave=False):
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
        policy.set_training_mode(True)
        round_loss = []
        for _ in range(epochs):
            for batch in model.rollout_buffer.get(model.batch_size):
                mask = batch.mask > 1e-8
                values = policy.predict_values(batch.observations, batch.lstm_states.vf,
                                               batch.episode_starts).flatten()
                loss = ((batch.returns - values) ** 2)[mask].mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, model.max_grad_norm)
                opt.step()
                round_loss.append(loss.item())
        losses.append(float(np.mean(round_loss)))
        model.logger.record("warmup/value_loss", losses[-1])
        model.logger.dump(model.num_timesteps)
    return losses


def _latest_checkpoint(run: Path) -> tuple[Path, Path | None]:
    ckdir = run / "sb3" / "checkpoints"
    zips = sorted(ckdir.glob("ppo_*_steps.zip"), key=lambda p: int(re.findall(r"_(\d+)_steps", p.name)[0]))
    if not zips:
        raise FileNotFoundError(f"no PPO checkpoint to resume in {ckdir}")
    steps = re.findall(r"_(\d+)_steps", zips[-1].name)[0]
    vn = ckdir / f"ppo_vecnormalize_{steps}_steps.pkl"
    return zips[-1], (vn if vn.exists() else None)


def train_ppo(cfg: PPOConfig, resume: str | None = None, callbacks: list | None = None) -> Path:
    """Run PPO as configured (optionally resuming ``resume``'s latest checkpoint); returns the export dir."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback

    from liquid_control.learn.checkpoint import atomic_write_json, load_policy
    from liquid_control.sim.options import merge

    check_env_id(cfg.env_id)  # one clear error here, not a traceback from every env worker process
    torch.set_num_threads(1)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sb3_dir = out / "sb3"
    n_envs = cfg.n_envs or max(1, os.cpu_count() or 1)
    init_net, init_cfg = (load_policy(cfg.init) if cfg.init else (None, None))
    if init_cfg is not None:  # train in the BC policy's env interface (e.g. action type); --set wins
        inherited = {k: v for k, v in (init_cfg.get("env_options") or {}).items() if k != "split"}
        cfg.env_options = merge(inherited, cfg.env_options)
    train_opts = merge(cfg.env_options, {"split": "train"})
    venv = build_vec_env(cfg.env_id, train_opts, n_envs, cfg.seed, cfg.vec_env, cfg.alive_bonus,
                         pin=cfg.pin_workers)
    norm_obs = init_net is None
    start = time.time()
    if resume:
        zip_path, vn_path = _latest_checkpoint(Path(resume))
        if vn_path is not None:
            from stable_baselines3.common.vec_env import VecNormalize

            venv = VecNormalize.load(str(vn_path), venv)
        elif norm_obs or cfg.normalize_reward:
            venv = _vecnormalize(venv, norm_obs, cfg.normalize_reward, cfg.gamma)
        model = RecurrentPPO.load(str(zip_path), env=venv, device="cpu", tensorboard_log=str(sb3_dir / "tb"))
        remaining = cfg.steps - model.num_timesteps
        if remaining <= 0:
            raise ValueError(f"{zip_path} already has {model.num_timesteps} steps >= --steps {cfg.steps}")
    else:
        if norm_obs or cfg.normalize_reward:
            venv = _vecnormalize(venv, norm_obs, cfg.normalize_reward, cfg.gamma)
        if init_net is not None:
            obs_dim, act_dim = venv.observation_space.shape[0], venv.action_space.shape[0]
            if (init_net.config.obs_dim, init_net.config.act_dim) != (obs_dim, act_dim):
                raise ValueError(f"--init policy is for obs/act dims {init_net.config.obs_dim}/"
                                 f"{init_net.config.act_dim}, the env has {obs_dim}/{act_dim}")
        model = RecurrentPPO(
            LiquidPolicy, venv, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
            target_kl=cfg.target_kl,
            tensorboard_log=str(sb3_dir / "tb"), seed=cfg.seed, device="cpu",
            policy_kwargs=policy_kwargs_for(cfg, init_net.config.to_dict() if init_net else None),
        )
        if init_net is not None:
            model.policy.load_actor(init_net)
        atomic_write_json(out / "ppo_run.json", asdict(cfg))
        remaining = cfg.steps
    card_base = {"algorithm": "ppo (sb3-contrib RecurrentPPO)", "command": cfg.command, "init": cfg.init,
                 "seed": cfg.seed, "n_envs": n_envs, "ppo": asdict(cfg), "resumed_from": resume}
    warmup_losses: list[float] = []
    if cfg.critic_warmup and not resume:
        warmup_losses = pretrain_critic(model, cfg.critic_warmup, progress=cfg.progress)
        remaining_reset = False
    else:
        remaining_reset = not resume
    cbs: list = list(callbacks or [])
    if cfg.checkpoint_freq:
        cbs.append(CheckpointCallback(max(cfg.checkpoint_freq // n_envs, 1), str(sb3_dir / "checkpoints"),
                                      name_prefix="ppo", save_vecnormalize=True))
    eval_cb = None
    if cfg.eval_freq:
        eval_opts = merge(cfg.env_options, {"split": "val"})
        eval_env = build_vec_env(cfg.env_id, eval_opts, 1, cfg.seed + 10_000, "dummy", cfg.alive_bonus)
        vn = vecnormalize_of(venv)
        if vn is not None:
            eval_env = _vecnormalize(eval_env, vn.norm_obs, False, cfg.gamma, training=False)
        best = _ExportBest(out / "best", cfg, card_base)
        eval_cb = EvalCallback(eval_env, callback_on_new_best=best, n_eval_episodes=cfg.eval_episodes,
                               eval_freq=max(cfg.eval_freq // n_envs, 1), log_path=str(sb3_dir / "eval"),
                               deterministic=True, verbose=0)
        best_card = out / "best" / "card.json"
        if resume and best_card.exists():  # a resumed run keeps the earlier segment's best as the bar
            earlier = json.loads(best_card.read_text()).get("val_mean_reward")
            if earlier is not None:
                eval_cb.best_mean_reward = float(earlier)
        cbs.append(eval_cb)
    model.learn(total_timesteps=remaining, callback=CallbackList(cbs), reset_num_timesteps=remaining_reset,
                progress_bar=cfg.progress, tb_log_name="ppo")
    card = {**card_base, "env_steps": int(model.num_timesteps), "wall_clock_s": round(time.time() - start, 1),
            "critic_warmup_value_loss": warmup_losses, "eval": _eval_summary(eval_cb)}
    path = export_checkpoint(model, out, cfg.env_id, cfg.env_options, card, {"init": cfg.init})
    if cfg.checkpoint_freq:
        model.save(str(sb3_dir / "checkpoints" / f"ppo_{model.num_timesteps}_steps"))
        vn = vecnormalize_of(model.get_env())
        if vn is not None:
            vn.save(str(sb3_dir / "checkpoints" / f"ppo_vecnormalize_{model.num_timesteps}_steps.pkl"))
    model.get_env().close()
    return path


def _eval_summary(eval_cb: Any) -> dict[str, Any] | None:
    if eval_cb is None or not eval_cb.evaluations_timesteps:
        return None
    rewards = [float(np.mean(r)) for r in eval_cb.evaluations_results]
    out: dict[str, Any] = {"split": "val", "timesteps": [int(t) for t in eval_cb.evaluations_timesteps],
                           "mean_reward": rewards, "best_mean_reward": float(eval_cb.best_mean_reward)}
    if eval_cb.evaluations_successes:
        out["success_rate"] = [float(np.mean(s)) for s in eval_cb.evaluations_successes]
    return out


class _ExportBest(BaseCallback):
    """Called by EvalCallback on a new best val reward: export that policy as a checkpoint."""

    def __init__(self, path: Path, cfg: PPOConfig, card: dict[str, Any]) -> None:
        super().__init__()
        self.path, self.cfg, self.card = path, cfg, card

    def _on_step(self) -> bool:
        best = getattr(self.parent, "best_mean_reward", None)
        card = {**self.card, "env_steps": int(self.model.num_timesteps),
                "selected_by": "best val mean reward",
                "val_mean_reward": None if best is None else float(best)}
        export_checkpoint(self.model, self.path, self.cfg.env_id, self.cfg.env_options, card,
                          {"init": self.cfg.init})
        return True


# ====================================================================================================
# CLI
# ====================================================================================================

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control train ppo``."""
    d = PPOConfig("", "", 1)
    parser.add_argument("--env", help="env id (read from ppo_run.json on --resume)")
    parser.add_argument("--policy", default="ltc", help="core: ltc|cfc|lstm|gru|mlp|euler (not with --init)")
    parser.add_argument("--init", default=None, help="warm start: a BC checkpoint directory")
    parser.add_argument("--steps", type=int, default=None, help="PPO env steps (total, incl. a resumed run)")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory (becomes the exported checkpoint)")
    parser.add_argument("--resume", default=None, metavar="RUN", help="continue RUN from its last checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env option override")
    parser.add_argument("--budget", type=int, default=d.budget, help="trainable parameters of the actor")
    parser.add_argument("--encoder", default=d.encoder, choices=["mlp", "conv"])
    parser.add_argument("--critic", default=d.critic, choices=list(CRITICS))
    parser.add_argument("--critic-core", default=None, help="core of a separate critic (default: actor's)")
    parser.add_argument("--critic-warmup", type=int, default=0, metavar="ROUNDS",
                        help="rounds of critic-only fitting on actor rollouts before PPO (use with --init)")
    parser.add_argument("--n-steps", type=int, default=d.n_steps, help="rollout steps per env per update")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--epochs", type=int, default=d.n_epochs, help="PPO epochs per update")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--gamma", type=float, default=d.gamma)
    parser.add_argument("--gae-lambda", type=float, default=d.gae_lambda)
    parser.add_argument("--clip-range", type=float, default=d.clip_range)
    parser.add_argument("--ent-coef", type=float, default=d.ent_coef)
    parser.add_argument("--target-kl", type=float, default=None)
    parser.add_argument("--log-std-init", type=float, default=None,
                        help="initial log std relative to the action half-range (-0.5 scratch, -1.5 --init)")
    parser.add_argument("--no-reward-norm", action="store_true", help="no reward normalisation")
    parser.add_argument("--alive-bonus", type=float, default=0.0,
                        help="reward added per training step (shaping: makes staying alive worth it)")
    parser.add_argument("--eval-freq", type=int, default=d.eval_freq, help="env steps between val evals")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes)
    parser.add_argument("--checkpoint-freq", type=int, default=d.checkpoint_freq, help="env steps (0: off)")
    parser.add_argument("--vec-env", default=d.vec_env, choices=VEC_ENVS,
                        help="auto: SB3 SubprocVecEnv with > 1 env; batched: the envs shared among one "
                             "process per CPU, each stepping its share per message (the fastest way to "
                             "step our envs; PPO on 2 CPUs is bound by the policy, where dummy is fastest)")
    parser.add_argument("--pin-workers", action="store_true",
                        help="pin each env worker process to a CPU of its own (faster on small machines; "
                             "not when other jobs share the CPUs)")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> tuple[PPOConfig, str | None]:
    """The run config (from ``RUN/ppo_run.json`` on ``--resume``) and the run to resume."""
    from liquid_control.sim.options import parse_overrides

    command = "liquid-control train ppo " + " ".join(sys.argv[3:] if len(sys.argv) > 3 else [])
    if args.resume:
        saved = Path(args.resume) / "ppo_run.json"
        if not saved.is_file():
            raise FileNotFoundError(f"{args.resume} is not a PPO run: missing ppo_run.json")
        d = json.loads(saved.read_text())
        d["out"] = args.out or args.resume
        if args.steps is not None:
            d["steps"] = args.steps
        d["progress"] = not args.no_progress
        d["command"] = command
        return PPOConfig(**d), args.resume
    if not args.env or args.steps is None or not args.out:
        raise ValueError("--env, --steps and --out are required (unless --resume RUN)")
    cfg = PPOConfig(
        env_id=args.env, out=args.out, steps=args.steps, policy=args.policy, init=args.init,
        n_envs=args.n_envs,
        seed=args.seed, env_options=parse_overrides(args.set), budget=args.budget, encoder=args.encoder,
        critic=args.critic, critic_core=args.critic_core, n_steps=args.n_steps, batch_size=args.batch_size,
        n_epochs=args.epochs, lr=args.lr, gamma=args.gamma, gae_lambda=args.gae_lambda,
        clip_range=args.clip_range, ent_coef=args.ent_coef, target_kl=args.target_kl,
        log_std_init=args.log_std_init, normalize_reward=not args.no_reward_norm,
        critic_warmup=args.critic_warmup, alive_bonus=args.alive_bonus, eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq, vec_env=args.vec_env, pin_workers=args.pin_workers,
        progress=not args.no_progress,
        command=command,
    )
    return cfg, None


def run(args: argparse.Namespace) -> int:
    """``liquid-control train ppo``: train, export RUN as a checkpoint, print its path and card as JSON."""
    cfg, resume = config_from_args(args)
    path = train_ppo(cfg, resume=resume)
    card = json.loads((path / "card.json").read_text())
    print(json.dumps({"checkpoint": str(path), "env_steps": card.get("env_steps"), "eval": card.get("eval"),
                      "params": card.get("params")}, indent=2))
    return 0


__all__ = ["LiquidPolicy", "LtcPolicy", "PPOConfig", "export_checkpoint", "pretrain_critic", "train_ppo",
           "param_counts"]
