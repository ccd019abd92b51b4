"""Reservoir readouts: closed-form ridge fit over demonstrations, and RLS adaptation during deployment.

* :func:`fit_readout` runs a reservoir policy (normalisation → encoder → frozen reservoir) over the
  demonstration episodes, accumulates the ridge statistics of its readout inputs against the expert's
  actions (in the pre-tanh space: ``atanh`` of the normalised action, clipped), solves for a grid of
  regularisation strengths and keeps the one with the lowest BC loss (MSE after tanh, as in
  :func:`liquid_control.learn.bc.chunk_loss`) on the held-out episodes. The encoder stays at its random
  initialisation (a fixed random projection); the policy head is set to the identity.
* :func:`train_readout` is what ``train bc --policy esn|lsm`` runs instead of gradient epochs: the same
  data split, normalisation, checkpoint and card as BC, and DAgger rounds that refit the readout.
* :class:`RLSController` adapts the readout online ("learning on the job"): every step it acts with the
  current readout, then asks a teacher available at run time (the privileged expert) for its action on
  the same observation and makes one bounded, forgetting recursive-least-squares step towards it. The
  readout restarts from the checkpoint's at every episode (episodes stay independent of each other and
  of the worker count). ``evaluate --adapt rls`` uses it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from liquid_control.nets.reservoir import RLS, RidgeAccumulator, is_reservoir

if TYPE_CHECKING:
    from liquid_control.learn.bc import BCConfig
    from liquid_control.nets.policy import PolicyNet

ALPHAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # ridge strength per sample (features are O(1))
TARGET_CLIP = 0.97  # normalised actions are clipped to ±this before atanh (saturated actions stay finite)


def _check_reservoir(policy: PolicyNet) -> None:
    if not is_reservoir(policy):
        raise ValueError(f"a closed-form or RLS readout needs a reservoir core (esn, lsm), "
                         f"not {policy.config.core!r}")


def readout_targets(policy: PolicyNet, actions: torch.Tensor, clip: float = TARGET_CLIP) -> torch.Tensor:
    """Env-unit actions → the readout's target (pre-tanh; the head must be the identity)."""
    return torch.atanh(policy.normalize_actions(actions).clamp(-clip, clip))


@torch.no_grad()
def episode_features(policy: PolicyNet, episodes: list[dict], batch: int = 64, progress: bool = False,
                     desc: str = "reservoir states"):
    """Yield ``(phi (N, D), actions (N, A))`` over the valid steps of batches of episodes."""
    _check_reservoir(policy)
    policy.eval()
    order = sorted(range(len(episodes)), key=lambda i: len(episodes[i]["observations"]))  # little padding
    bar = tqdm(total=sum(len(e["observations"]) for e in episodes), desc=desc, disable=not progress,
               leave=False, unit="step")
    for s in range(0, len(order), batch):
        group = [episodes[i] for i in order[s:s + batch]]
        lengths = [len(e["observations"]) for e in group]
        t_max = max(lengths)
        obs = np.zeros((len(group), t_max, policy.config.obs_dim), np.float32)
        act = np.zeros((len(group), t_max, policy.config.act_dim), np.float32)
        for i, e in enumerate(group):
            obs[i, :lengths[i]], act[i, :lengths[i]] = e["observations"], e["actions"]
        x = policy.encoder_input(torch.from_numpy(obs))
        phi, _ = policy.core.readout_inputs(policy.encoder(x))
        bar.update(sum(lengths))
        if min(lengths) == t_max:  # no padding: a view, not a copy of the (B T, D) features
            yield phi.reshape(-1, phi.shape[-1]), torch.from_numpy(act).reshape(-1, act.shape[-1])
            continue
        valid = torch.from_numpy(np.arange(t_max)[None, :] < np.asarray(lengths)[:, None])
        yield phi[valid], torch.from_numpy(act)[valid]
    bar.close()


def fit_readout(policy: PolicyNet, train_eps: list[dict], val_eps: list[dict] | None = None,
                alphas: tuple[float, ...] = ALPHAS, clip: float = TARGET_CLIP, progress: bool = False
                ) -> dict[str, Any]:
    """Fit the reservoir policy's readout by ridge regression; alpha chosen on ``val_eps``.

    Returns fit statistics (chosen alpha, validation loss per alpha, steps, seconds). Without held-out
    episodes the smallest-loss alpha on the training episodes is used.
    """
    _check_reservoir(policy)
    if not train_eps:
        raise ValueError("no training episodes to fit the readout on")
    if not alphas or any(a < 0 for a in alphas):
        raise ValueError(f"alphas must be a non-empty list of values >= 0, got {alphas}")
    t0, c0 = time.monotonic(), time.process_time()
    core = policy.core
    acc = RidgeAccumulator(core.readout_features, policy.config.act_dim)
    for phi, act in episode_features(policy, train_eps, progress=progress, desc="readout: train states"):
        acc.add(phi, readout_targets(policy, act, clip))
    acc.centred()  # fold the last buffered rows in (timed with the accumulation)
    t_states = time.monotonic() - t0
    held = val_eps or train_eps
    val = [(phi, policy.normalize_actions(act)) for phi, act in
           episode_features(policy, held, progress=progress, desc="readout: val states")]
    losses, solutions = {}, acc.solve_many(alphas)
    for alpha, (w, b) in solutions.items():
        wt, bt = torch.as_tensor(w.T, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
        se = sum(float(((torch.tanh(p @ wt + bt) - a) ** 2).mean(-1).sum()) for p, a in val)
        losses[alpha] = se / max(sum(len(p) for p, _ in val), 1)
    best = min(losses, key=lambda a: (losses[a] if math.isfinite(losses[a]) else math.inf))
    w, b = solutions[best]
    with torch.no_grad():
        core.readout.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        core.readout.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        policy.head.weight.copy_(torch.eye(policy.config.act_dim))
        policy.head.bias.zero_()
    return {"alpha": best, "val_loss": losses[best],
            "val_loss_by_alpha": {str(k): v for k, v in losses.items()},
            "selected_on": "val" if val_eps else "train", "train_steps": acc.n,
            "features": core.readout_features, "states_s": t_states, "fit_s": time.monotonic() - t0,
            "fit_cpu_s": time.process_time() - c0}


def train_readout(cfg: BCConfig) -> Path:
    """``train bc`` for reservoir cores: closed-form readout (+ DAgger rounds that refit it) → checkpoint."""
    from liquid_control.learn import bc
    from liquid_control.learn.checkpoint import save_checkpoint
    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    torch.manual_seed(cfg.seed)
    start = time.monotonic()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = bc._load_all(cfg)
    manifest = datasets[0].manifest
    pcfg = PolicyConfig(obs_dim=datasets[0].obs_dim, act_dim=datasets[0].act_dim, core=cfg.policy,
                        budget=cfg.budget, encoder=cfg.encoder, encoder_hidden=list(cfg.encoder_hidden),
                        features=cfg.features, core_kwargs=dict(cfg.core_kwargs),
                        ray_slice=bc._ray_slice(cfg, manifest) if cfg.encoder == "conv" else None)
    policy = PolicyNet(pcfg)
    ckpt_config = {"env_id": cfg.env_id, "env_options": manifest["options"],
                   "resolved_env_options": manifest.get("resolved_options", manifest["options"])}
    st: dict[str, Any] = {"history": [], "dagger": [], "epoch": 0, "best_val": math.inf, "elapsed_s": 0.0}
    for rnd in range(cfg.dagger_rounds + 1):
        if rnd > 0:
            if cfg.minutes is not None and time.monotonic() - start > cfg.minutes * 60.0:
                break
            from liquid_control.learn.dagger import run_round

            st["dagger"].append(run_round(cfg, rnd, out))
            datasets = bc._load_all(cfg)
        train_eps, val_eps = bc.split_episodes(datasets, cfg.val_every, cfg.successful_only)
        if rnd == 0:
            bc.fit_normalization(policy, train_eps, manifest)
        stats = fit_readout(policy, train_eps, val_eps, progress=cfg.progress)
        st["epoch"] += 1
        st["best_val"] = stats["val_loss"]
        st["elapsed_s"] = time.monotonic() - start
        st["history"].append({"round": rnd, "epoch": st["epoch"], **stats, "elapsed_s": st["elapsed_s"]})
        card = bc._card(cfg, st, datasets)
        card["trainer"] = "ridge" if cfg.dagger_rounds == 0 else "ridge+dagger"
        save_checkpoint(out, policy, ckpt_config, card)
    return out


# ---- online adaptation ----------------------------------------------------------------------------

class RLSController:
    """A reservoir policy whose readout keeps learning during the episode by RLS towards a teacher.

    ``teacher`` is any controller available at run time (the privileged expert in simulation). The
    action returned each step is computed *before* that step's update (the teacher never acts).
    """

    def __init__(self, policy: PolicyNet, teacher: Any, forgetting: float = 0.995, delta: float = 1.0,
                 max_error: float = 1.0, clip: float = TARGET_CLIP, teach_steps: int | None = None) -> None:
        _check_reservoir(policy)
        if teach_steps is not None and (isinstance(teach_steps, bool) or int(teach_steps) < 0):
            raise ValueError(f"teach_steps must be a non-negative int or None, got {teach_steps!r}")
        self.teach_steps = None if teach_steps is None else int(teach_steps)
        head = policy.head.weight.detach().double().numpy()
        if head.shape[0] != head.shape[1]:
            raise ValueError("RLS adaptation needs a square policy head (core output = action width)")
        self.policy, self.teacher = policy.eval(), teacher
        self._head_inv = np.linalg.inv(head)
        self._head_b = policy.head.bias.detach().double().numpy()
        self.options = {"forgetting": forgetting, "delta": delta, "max_error": max_error}
        self.clip = clip
        RLS(np.zeros((1, 1)), np.zeros(1), **self.options)  # validate the options now
        self.rls: RLS | None = None
        self._state: torch.Tensor | None = None
        self.errors: list[float] = []

    def reset(self, env: Any, obs: np.ndarray) -> None:
        readout = self.policy.core.readout
        self.rls = RLS(readout.weight.detach().numpy(), readout.bias.detach().numpy(), **self.options)
        self._state = self.policy.initial_state(1)
        self.errors = []
        self.teacher.reset(env, obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.rls is None:
            raise RuntimeError("reset() first")
        p = self.policy
        x = torch.as_tensor(np.asarray(obs, np.float32)).reshape(1, 1, -1)
        x = p.encoder_input(x)
        phi, self._state = p.core.readout_inputs(p.encoder(x), self._state)
        phi_np = phi[0, 0].double().numpy()
        u = self.rls.predict(phi_np)
        a = np.tanh(u @ p.head.weight.detach().double().numpy().T + self._head_b)
        action = a * p.act_scale.double().numpy() + p.act_center.double().numpy()
        if self.teach_steps is None or self.rls.updates < self.teach_steps:  # teacher present: one RLS step
            target_a = torch.as_tensor(np.asarray(self.teacher.act(obs), np.float32))
            z = readout_targets(p, target_a, self.clip).double().numpy()
            err = self.rls.update(phi_np, self._head_inv @ (z - self._head_b))
            self.errors.append(float(np.mean(err ** 2)))
        return action.astype(np.float32)

    def neuron_state(self) -> np.ndarray | None:
        return None if self._state is None else self._state[0].numpy().copy()


# teach_steps: the teacher is present for the first N steps of an episode, then the adapted readout is
# frozen (None: the teacher is present all episode long, so the learner tracks it with a one-step lag)
ADAPT_DEFAULTS = {"method": "rls", "teacher": "expert", "forgetting": 0.995, "delta": 1.0, "max_error": 1.0,
                  "teach_steps": None}


def adapt_options(method: str | None, **overrides: Any) -> dict[str, Any] | None:
    """The adaptation spec stored in results.json (None = frozen readout)."""
    if method in (None, "none"):
        return None
    if method != "rls":
        raise ValueError(f"unknown adaptation {method!r}: use 'rls' or 'none'")
    spec = {**ADAPT_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(spec) - set(ADAPT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown adaptation options {sorted(unknown)}")
    return spec


def make_adaptive_controller(policy_spec: str, adapt: dict[str, Any]) -> RLSController:
    """An :class:`RLSController` for a reservoir checkpoint directory and an adaptation spec."""
    from liquid_control.learn.checkpoint import load_policy
    from liquid_control.learn.rollout import make_controller

    if not isinstance(policy_spec, str) or policy_spec in ("expert", "random"):
        raise ValueError("--adapt needs a checkpoint of a reservoir policy (esn, lsm)")
    policy, _ = load_policy(policy_spec)
    spec = {**ADAPT_DEFAULTS, **adapt}
    return RLSController(policy, make_controller(spec["teacher"]), forgetting=float(spec["forgetting"]),
                         delta=float(spec["delta"]), max_error=float(spec["max_error"]),
                         teach_steps=spec["teach_steps"])


def adapt_key(adapt: dict[str, Any]) -> str:
    """A hashable form of an adaptation spec (cache key)."""
    return json.dumps(adapt, sort_keys=True)
