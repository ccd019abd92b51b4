"""Sequence behaviour cloning with truncated BPTT (+ DAgger rounds), for any recurrent core.

Read :func:`train_bc` top to bottom: load demos → split episodes (train/val by seed) → fit the
observation normalisation → cut episodes into chunks (``burn_in`` warm-up steps + ``chunk_len``
trained steps; padded, masked, with ``resets`` marking episode starts) → epochs of Adam with gradient
clipping, validation, early stopping → checkpoint every epoch (the best weights are the run's
checkpoint; ``train_state.pt`` holds the last epoch for ``--resume``). With ``dagger_rounds > 0``, each
round rolls out the current policy (β-mixed with the expert), relabels every visited state with the
expert, adds the episodes to ``RUN/dagger`` and retrains from the current weights; with
``select_last`` the final policy is the best of the last rounds on the val split (closed loop).
Also serves the ``train bc`` command.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from liquid_control.learn.checkpoint import atomic_torch_save, load_policy, save_checkpoint
from liquid_control.learn.demos import Dataset, load_dataset, parse_expert_options
from liquid_control.nets.policy import PolicyConfig, PolicyNet, apply_constraints

STATE_FILE = "train_state.pt"


@dataclass
class BCConfig:
    """Options of a BC (+ DAgger) run; every field is a ``train bc`` option."""

    env_id: str
    demos: list[str]
    out: str
    policy: str = "ltc"
    budget: int | None = 20000
    encoder: str = "mlp"
    ray_slice: list[int] | None = None  # conv encoder: [start, stop) of the rays (default: the leading rays)
    encoder_hidden: list[int] = field(default_factory=lambda: [64])
    features: int = 32
    core_kwargs: dict[str, Any] = field(default_factory=dict)
    timespan: float | None = None  # core's elapsed time per step (e.g. the env's control period)
    # observation features the policy ignores: indices, or names of the env's ``obs_slices`` parts
    # (e.g. "wheels", "velocity": proprioception that lets a cloned policy repeat its last action)
    drop_obs: list[int | str] = field(default_factory=list)
    log_rays: bool = False  # the env's "rays" part enters as log(range) (PolicyConfig.log_rays)
    head: str = "tanh"  # action head: "tanh" (MSE) or "bins" (cross-entropy, commits to one mode)
    bins: int = 21
    motors: int | None = None  # core output width (None: one motor neuron per action dimension)
    epochs: int = 40
    minutes: float | None = None  # wall-clock cap for the whole run (BC + DAgger)
    seed: int = 0
    chunk_len: int = 32
    burn_in: int = 16
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # input noise while training (not validation): Gaussian, std = obs_noise x each feature's std over
    # the training steps; a smoothness regulariser for states a little off the demonstrated ones
    obs_noise: float = 0.0
    # loss weight 1 + near_weight on steps whose closest ray reads below near_range (a fraction of the
    # sensor range): the steps where a small error becomes a collision
    near_weight: float = 0.0
    near_range: float = 0.25
    # loss weight of DAgger episodes (the learner's own states, relabelled) against expert demos, in
    # training and validation alike: the states the learner will meet are what it is scored on
    dagger_weight: float = 1.0
    val_every: int = 10  # every episode whose seed % val_every == val_every - 1 is held out
    patience: int = 8  # early stopping: epochs without a validation improvement
    successful_only: bool = True  # drop expert demos that did not reach the goal
    dagger_rounds: int = 0
    dagger_episodes: int = 20
    dagger_epochs: int = 10
    dagger_beta: float = 0.5  # β of round r is dagger_beta ** r (the expert's share of actions)
    expert_options: dict[str, Any] | None = None  # DAgger teacher's options (None: the demos' expert)
    # DAgger rollouts gated instead of beta-mixed: the learner drives and the teacher takes over where it
    # is about to fail (learn.rollout.GateController options, e.g. {"clearance": 0.1, "patience": 5})
    dagger_gate: dict[str, Any] | None = None
    # env options of the DAgger rollouts on top of the demos' (nested, e.g. more of the hard family:
    # {"layout": {"family": ["rooms", "rooms", "forest"]}}; families go round-robin over episode seeds)
    dagger_options: dict[str, Any] = field(default_factory=dict)
    # the final policy: the last round's (0), or the best of the last ``select_last`` rounds' checkpoints
    # by closed-loop success on ``select_episodes`` episodes of the val split (learn.dagger.select_round)
    select_last: int = 0
    select_episodes: int = 100
    # keep the latest candidate round within this much val success of the best (0: the best itself), so
    # that an earlier round must win by more than the evaluation noise to replace a later one
    select_margin: float = 0.0
    workers: int | None = None
    resume: bool = False
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        for name in ("epochs", "chunk_len", "batch_size", "val_every", "patience", "dagger_episodes",
                     "dagger_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.burn_in < 0 or self.dagger_rounds < 0 or self.select_last < 0:
            raise ValueError("burn_in, dagger_rounds and select_last must be >= 0")
        if self.select_episodes < 1:
            raise ValueError(f"select_episodes must be >= 1, got {self.select_episodes}")
        if not 0.0 <= self.select_margin <= 1.0:
            raise ValueError(f"select_margin must be in [0, 1], got {self.select_margin}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.obs_noise < 0 or self.near_weight < 0:
            raise ValueError("obs_noise and near_weight must be >= 0")
        if self.dagger_weight <= 0:
            raise ValueError(f"dagger_weight must be > 0, got {self.dagger_weight}")
        if not 0.0 < self.near_range <= 1.0:
            raise ValueError(f"near_range must be in (0, 1], got {self.near_range}")
        if not 0.0 <= self.dagger_beta <= 1.0:
            raise ValueError(f"dagger_beta must be in [0, 1], got {self.dagger_beta}")
        if not self.demos:
            raise ValueError("at least one demonstration dataset is needed")


# ---- data: episodes → padded, masked chunks ------------------------------------------------------

@dataclass
class Chunks:
    """Fixed-width windows over episodes: ``burn_in`` warm-up steps then ``chunk_len`` trained steps."""

    obs: torch.Tensor  # (N, W, F)
    act: torch.Tensor  # (N, W, A) target actions (env units)
    mask: torch.Tensor  # (N, W) 1 on real, trained steps (never on padding or burn-in)
    resets: torch.Tensor  # (N, W) 1 at an episode's first step (state is zeroed before it)

    def __len__(self) -> int:
        return self.obs.shape[0]


def make_chunks(episodes: list[tuple[np.ndarray, np.ndarray]], chunk_len: int, burn_in: int) -> Chunks:
    """Cut (observations, actions) episodes into windows; chunk k trains steps [k·L, (k+1)·L).

    Window steps before an episode's start are left padding (zeros, and the reset at step 0 wipes
    whatever state they produced); steps after its end are right padding. Both have mask 0.
    """
    if not episodes:
        raise ValueError("no episodes to chunk")
    width = burn_in + chunk_len
    f_dim, a_dim = episodes[0][0].shape[1], episodes[0][1].shape[1]
    n = sum(math.ceil(len(o) / chunk_len) for o, _ in episodes)
    obs = np.zeros((n, width, f_dim), np.float32)
    act = np.zeros((n, width, a_dim), np.float32)
    mask = np.zeros((n, width), np.float32)
    resets = np.zeros((n, width), np.float32)
    i = 0
    for o, a in episodes:
        steps = len(o)
        for start in range(0, steps, chunk_len):
            idx = np.arange(start - burn_in, start + chunk_len)
            valid = (idx >= 0) & (idx < steps)
            obs[i, valid], act[i, valid] = o[idx[valid]], a[idx[valid]]
            mask[i, burn_in:] = valid[burn_in:]
            resets[i] = idx == 0
            i += 1
    return Chunks(*(torch.from_numpy(x) for x in (obs, act, mask, resets)))


def chunk_loss(policy: PolicyNet, obs: torch.Tensor, act: torch.Tensor, mask: torch.Tensor,
               resets: torch.Tensor, burn_in: int) -> torch.Tensor:
    """Masked imitation loss (``PolicyNet.action_loss``: the MSE of a tanh head, the cross-entropy of a
    bins head) of predicted against target actions in the normalised [-1, 1] action space.

    The burn-in steps only warm up the recurrent state (no gradient, no loss).
    """
    state = None
    if burn_in > 0:
        with torch.no_grad():
            _, state = policy.head_outputs(obs[:, :burn_in], None, resets[:, :burn_in])
    raw, _ = policy.head_outputs(obs[:, burn_in:], state, resets[:, burn_in:])
    err = policy.action_loss(raw, policy.normalize_actions(act[:, burn_in:]))
    m = mask[:, burn_in:]
    return (err * m).sum() / m.sum().clamp(min=1.0)


def split_episodes(datasets: list[Dataset], val_every: int, successful_only: bool
                   ) -> tuple[list[dict], list[dict]]:
    """Train/val episodes: an episode is held out when its seed % val_every == val_every - 1.

    The rule depends on the seed alone, so growing a dataset (resume, DAgger) never moves an episode.
    """
    train, val = [], []
    for ds in datasets:
        eps = [e for e in ds.episodes if e["success"] or not successful_only or ds.manifest.get("labeler")]
        if not eps:
            raise ValueError(f"dataset of {ds.manifest['env_id']} has no usable (successful) episodes")
        held = [e for e in eps if e["seed"] % val_every == val_every - 1]
        if not held and len(eps) > 1:
            held = [eps[-1]]
        held_ids = {id(e) for e in held}
        val += held
        train += [e for e in eps if id(e) not in held_ids]
    return train, val


def fit_normalization(policy: PolicyNet, episodes: list[dict], manifest: dict) -> None:
    """Observation mean/std from the training episodes; action range from the env's action space."""
    raw = torch.from_numpy(np.concatenate([e["observations"] for e in episodes]).astype(np.float32))
    with torch.no_grad():
        obs = policy.transform_obs(raw).numpy().astype(np.float64)
    low, high = np.asarray(manifest["action_low"], float), np.asarray(manifest["action_high"], float)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):  # unbounded space: use the data
        acts = np.concatenate([e["actions"] for e in episodes])
        span = np.maximum(acts.max(0) - acts.min(0), 1e-3)
        low, high = acts.min(0) - 0.1 * span, acts.max(0) + 0.1 * span
    policy.set_normalization(obs.mean(0), obs.std(0), low, high)


# ---- training ------------------------------------------------------------------------------------

def _evaluate(policy: PolicyNet, chunks: Chunks, cfg: BCConfig) -> float:
    policy.eval()
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for s in range(0, len(chunks), 256):
            sl = slice(s, s + 256)
            m = chunks.mask[sl, cfg.burn_in:].sum().item()
            if m > 0:
                loss = chunk_loss(policy, chunks.obs[sl], chunks.act[sl], chunks.mask[sl], chunks.resets[sl],
                                  cfg.burn_in)
                total, weight = total + loss.item() * m, weight + m
    return total / max(weight, 1.0)


def _load_all(cfg: BCConfig, obs_dim: int | None = None) -> list[Dataset]:
    sets = [load_dataset(d, expect_env=cfg.env_id, expect_obs_dim=obs_dim) for d in cfg.demos]
    first = sets[0].manifest
    for ds in sets[1:]:
        if ds.obs_dim != sets[0].obs_dim or ds.act_dim != sets[0].act_dim:
            raise ValueError("demonstration datasets disagree on observation/action sizes")
    dagger_dir = Path(cfg.out) / "dagger"
    if (dagger_dir / "manifest.json").exists():
        sets.append(load_dataset(dagger_dir, expect_env=cfg.env_id, expect_obs_dim=first["obs_dim"]))
    return sets


def _ray_slice(cfg: BCConfig, manifest: dict) -> list[int]:
    """Where the ray block sits: ``cfg.ray_slice``, else the env's leading ``rays.count`` features."""
    if cfg.ray_slice is not None:
        return list(cfg.ray_slice)
    count = manifest.get("resolved_options", {}).get("rays", {}).get("count")
    if not count:
        raise ValueError("a conv encoder needs --ray-slice START:STOP (the env reports no rays.count)")
    return [0, int(count)]


def parse_drop_obs(text: str) -> list[str]:
    """The entries of a ``--drop-obs`` value ("wheels,3" -> ["wheels", "3"])."""
    return [d for d in text.split(",") if d]


def resolve_drop_obs(env_id: str, options: dict, drop: list[int | str]) -> list[int]:
    """Sorted observation indices of ``drop``: integers, or names of parts of the env's
    ``obs_slices`` (the env made with ``options``, e.g. a dataset manifest's)."""
    out: set[int] = set()
    is_index = [str(d).lstrip("-").isdigit() for d in drop]
    slices = {} if all(is_index) else observation_parts(env_id, options)
    for d, index in zip(drop, is_index, strict=True):
        if index:
            out.add(int(d))
        elif d in slices:
            out.update(range(slices[d].start, slices[d].stop))
        else:
            raise ValueError(f"drop_obs: {d!r} is neither an index nor a part of {env_id}'s observation "
                             f"(parts: {sorted(slices)})")
    return sorted(out)


def observation_parts(env_id: str, options: dict) -> dict[str, slice]:
    """The named parts of the env's observation (its ``obs_slices``; {} for an env without them)."""
    from liquid_control.learn.rollout import cached_env

    return getattr(cached_env(env_id, options).unwrapped, "obs_slices", None) or {}


def ray_part(env_id: str, options: dict) -> list[int]:
    """[start, stop) of the "rays" part of the env's observation (``obs_slices``)."""
    slices = observation_parts(env_id, options)
    if "rays" not in slices:
        raise ValueError(f"log_rays: {env_id}'s observation has no 'rays' part (parts: {sorted(slices)})")
    return [slices["rays"].start, slices["rays"].stop]


def near_obstacle_weights(obs: torch.Tensor, rays: list[int], near_range: float,
                          near_weight: float) -> torch.Tensor:
    """Per-step loss weights (..., W) for observations (..., W, F): 1 + ``near_weight`` where the
    smallest reading of the normalised rays ``rays`` = [start, stop) is below ``near_range``."""
    closest = obs[..., rays[0]:rays[1]].amin(-1)
    return 1.0 + near_weight * (closest < near_range).to(obs.dtype)


def episode_chunk_weights(episodes: list[dict], chunk_len: int, weights: list[float]) -> torch.Tensor:
    """(N, 1) weight of every chunk :func:`make_chunks` cuts from ``episodes``: its episode's weight."""
    per_chunk = [w for e, w in zip(episodes, weights, strict=True)
                 for _ in range(math.ceil(len(e["observations"]) / chunk_len))]
    return torch.tensor(per_chunk, dtype=torch.float32)[:, None]


def feature_std(chunks: Chunks) -> torch.Tensor:
    """Std (F,) of every observation feature over the chunks' trained steps."""
    sel = chunks.obs[chunks.mask > 0]
    return sel.std(0) if len(sel) > 1 else torch.zeros(chunks.obs.shape[-1])


def _round_end(cfg: BCConfig, elapsed: float, rnd: int) -> float:
    """Elapsed seconds at which round ``rnd``'s training stops (``rnd`` 0 = BC on the demos).

    BC gets 40% of ``--minutes`` when DAgger rounds follow; a DAgger round, once its rollouts are done,
    trains for an equal share of what is left among itself and the rounds after it.
    """
    if cfg.minutes is None:
        return math.inf
    total = cfg.minutes * 60.0
    if rnd == 0:
        return total if cfg.dagger_rounds == 0 else 0.4 * total
    return elapsed + max(total - elapsed, 0.0) / (cfg.dagger_rounds - rnd + 1)


def train_bc(cfg: BCConfig, on_epoch_end: Any = None) -> Path:
    """Train a policy by sequence BC (+ DAgger); returns the checkpoint directory ``cfg.out``.

    ``on_epoch_end(epoch, record)`` is called after every saved epoch (tests use it to interrupt).
    Reservoir cores (esn, lsm) get their readout in closed form instead (``learn.readout``).
    """
    if cfg.policy in ("esn", "lsm"):
        from liquid_control.learn.readout import train_readout

        return train_readout(cfg)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = _load_all(cfg)
    manifest = datasets[0].manifest
    options = manifest["options"]

    # -- the network (fresh, or the interrupted run's last epoch) --
    resume_state = None
    if cfg.resume:
        if not (out / STATE_FILE).exists():
            raise FileNotFoundError(f"--resume: no {STATE_FILE} in {out}")
        resume_state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=False)
        if resume_state["config"]["policy"] != cfg.policy or resume_state["config"]["env_id"] != cfg.env_id:
            raise ValueError(f"--resume: {out} was trained with a different policy or env")
    pcfg = PolicyConfig(obs_dim=datasets[0].obs_dim, act_dim=datasets[0].act_dim, core=cfg.policy,
                        budget=cfg.budget, encoder=cfg.encoder, encoder_hidden=list(cfg.encoder_hidden),
                        features=cfg.features, core_kwargs=dict(cfg.core_kwargs), timespan=cfg.timespan,
                        drop_obs=resolve_drop_obs(cfg.env_id, options, list(cfg.drop_obs)),
                        log_rays=ray_part(cfg.env_id, options) if cfg.log_rays else None,
                        head=cfg.head, bins=cfg.bins, motors=cfg.motors,
                        ray_slice=_ray_slice(cfg, manifest) if cfg.encoder == "conv" else None)
    policy = PolicyNet(pcfg)
    train_eps, val_eps = split_episodes(datasets, cfg.val_every, cfg.successful_only)
    if resume_state is None:
        fit_normalization(policy, train_eps, manifest)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    st = {"round": 0, "epoch": 0, "round_epoch": 0, "best_val": math.inf, "bad_epochs": 0,
          "history": [], "elapsed_s": 0.0, "dagger": [], "done": False}
    if resume_state is not None:
        policy.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        gen.set_state(resume_state["generator"])
        st = resume_state["progress"]
        if st["done"]:
            return out
    start = time.monotonic() - st["elapsed_s"]
    writer = _tensorboard(out / "tb")
    ckpt_config = {"env_id": cfg.env_id, "env_options": options,
                   "resolved_env_options": manifest.get("resolved_options", options)}

    # -- rounds: 0 = BC on the demos, r >= 1 = DAgger round r --
    while st["round"] <= cfg.dagger_rounds:
        rnd = st["round"]
        max_epochs = cfg.epochs if rnd == 0 else cfg.dagger_epochs
        if rnd > 0 and st["round_epoch"] == 0:
            if cfg.minutes is not None and time.monotonic() - start >= cfg.minutes * 60.0:
                break
            from liquid_control.learn.dagger import run_round

            stats = run_round(cfg, rnd, out)  # roll out the current checkpoint, relabel, store
            st["dagger"].append(stats)
            writer.add_scalar("dagger/rollout_success", stats["success_rate"], rnd)
            datasets = _load_all(cfg)
            train_eps, val_eps = split_episodes(datasets, cfg.val_every, cfg.successful_only)
            best, _ = load_policy(out)  # continue from the best weights so far
            policy.load_state_dict(best.state_dict())
        train_chunks = make_chunks([(e["observations"], e["actions"]) for e in train_eps],
                                   cfg.chunk_len, cfg.burn_in)
        val_set = val_eps or train_eps[:1]
        val_chunks = make_chunks([(e["observations"], e["actions"]) for e in val_set], cfg.chunk_len,
                                 cfg.burn_in)
        if cfg.dagger_weight != 1.0:
            relabelled = {id(e) for ds in datasets if ds.manifest.get("labeler") for e in ds.episodes}
            for chunks, eps in ((train_chunks, train_eps), (val_chunks, val_set)):
                chunks.mask = chunks.mask * episode_chunk_weights(
                    eps, cfg.chunk_len, [cfg.dagger_weight if id(e) in relabelled else 1.0 for e in eps])
        if cfg.near_weight > 0:  # weights folded into the mask: chunk_loss is a weighted mean
            train_chunks.mask = train_chunks.mask * near_obstacle_weights(
                train_chunks.obs, ray_part(cfg.env_id, options), cfg.near_range, cfg.near_weight)
        noise_std = cfg.obs_noise * feature_std(train_chunks) if cfg.obs_noise > 0 else None
        if st["round_epoch"] == 0:  # a round starts: its time share, and the incumbent's validation loss
            st["round_end_s"] = _round_end(cfg, time.monotonic() - start, rnd)
            st["best_val"] = math.inf if rnd == 0 else _evaluate(policy, val_chunks, cfg)
            st["bad_epochs"] = 0
            st["round_updated"] = False  # does an epoch of this round beat the incumbent's val loss?
        deadline = start + st["round_end_s"]
        bar = tqdm(total=max_epochs, initial=st["round_epoch"], desc=f"{cfg.policy} round {rnd}",
                   disable=not cfg.progress, leave=False)
        while st["round_epoch"] < max_epochs and st["bad_epochs"] < cfg.patience:
            if time.monotonic() >= deadline and st["round_epoch"] > 0:  # a round trains >= 1 epoch
                break
            t0 = time.monotonic()
            policy.train()
            order = torch.randperm(len(train_chunks), generator=gen)
            losses = []
            for b in range(0, len(order), cfg.batch_size):
                idx = order[b:b + cfg.batch_size]
                tc = train_chunks
                obs = tc.obs[idx]
                if noise_std is not None:
                    obs = obs + torch.randn(obs.shape, generator=gen) * noise_std
                loss = chunk_loss(policy, obs, tc.act[idx], tc.mask[idx], tc.resets[idx], cfg.burn_in)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                optimizer.step()
                apply_constraints(policy)
                losses.append(loss.item())
                if st["round_epoch"] > 0 and time.monotonic() >= deadline + 60.0:  # bounded overrun
                    break
            val = _evaluate(policy, val_chunks, cfg)
            st["epoch"] += 1
            st["round_epoch"] += 1
            improved = val < st["best_val"]
            st["best_val"] = min(st["best_val"], val)
            st["bad_epochs"] = 0 if improved else st["bad_epochs"] + 1
            st["elapsed_s"] = time.monotonic() - start
            record = {"epoch": st["epoch"], "round": rnd, "train_loss": float(np.mean(losses)),
                      "val_loss": val, "epoch_s": time.monotonic() - t0, "elapsed_s": st["elapsed_s"]}
            st["history"].append(record)
            for key in ("train_loss", "val_loss", "epoch_s"):
                writer.add_scalar(f"bc/{key}", record[key], st["epoch"])
            if improved:
                st["round_updated"] = True
                save_checkpoint(out, policy, ckpt_config, _card(cfg, st, datasets))
            _save_state(out, policy, optimizer, gen, st, cfg)
            bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{val:.4f}")
            bar.update()
            if on_epoch_end is not None:
                on_epoch_end(st["epoch"], record)
        bar.close()
        if rnd > 0:  # False: no epoch beat the incumbent on val, the round's checkpoint is the previous one
            st["dagger"][-1]["updated"] = bool(st.get("round_updated", True))
        if cfg.select_last > 0:
            from liquid_control.learn.dagger import snapshot_round

            snapshot_round(out, rnd)
        st["round"] += 1
        st["round_epoch"], st["bad_epochs"] = 0, 0
        _save_state(out, policy, optimizer, gen, st, cfg)
    final = out
    if cfg.select_last > 0:  # the final policy: the best recent round on the val split, not the last
        from liquid_control.learn.dagger import round_dir, select_round

        st["selection"] = select_round(cfg, out, st["round"] - 1, options)
        final = round_dir(out, st["selection"]["round"])
    best, _ = load_policy(final)
    st["done"] = True
    st["elapsed_s"] = time.monotonic() - start
    _save_state(out, policy, optimizer, gen, st, cfg)
    save_checkpoint(out, best, ckpt_config, _card(cfg, st, datasets))  # final card: full history
    writer.close()
    return out


def _card(cfg: BCConfig, st: dict, datasets: list[Dataset]) -> dict[str, Any]:
    return {
        "trainer": "bc" if cfg.dagger_rounds == 0 else "bc+dagger",
        "command": cfg.command or " ".join(sys.argv),
        "config": asdict(cfg),
        "data": [{"dir": str(ds.manifest.get("dir", "")), "env_id": ds.manifest["env_id"],
                  "counts": ds.manifest["counts"], "controller": ds.manifest.get("controller")}
                 for ds in datasets],
        "wall_clock_s": st["elapsed_s"],
        "metrics": {"best_val_loss": st["best_val"] if math.isfinite(st["best_val"]) else None,
                    "epochs": st["epoch"],
                    "history": st["history"], "dagger": st["dagger"],
                    **({"selection": st["selection"]} if "selection" in st else {})},
    }


def _save_state(out: Path, policy: PolicyNet, optimizer: torch.optim.Optimizer, gen: torch.Generator,
                st: dict, cfg: BCConfig) -> None:
    atomic_torch_save(out / STATE_FILE, {"model": policy.state_dict(), "optimizer": optimizer.state_dict(),
                                         "generator": gen.get_state(), "progress": st,
                                         "config": asdict(cfg)})


class _NullWriter:
    def add_scalar(self, *a: Any, **k: Any) -> None: ...

    def close(self) -> None: ...


def _tensorboard(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        return _NullWriter()
    return SummaryWriter(log_dir=str(log_dir))


# ---- CLI -----------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control train bc``."""
    parser.add_argument("--env", required=True, help="env id the demos were collected on")
    parser.add_argument("--policy", default="ltc",
                        help="core: ltc|cfc|lstm|gru|mlp|euler|esn|lsm (esn|lsm: ridge readout)")
    parser.add_argument("--budget", type=int, default=20000, help="trainable parameters of the whole policy")
    parser.add_argument("--encoder", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--ray-slice", default=None, metavar="START:STOP",
                        help="conv encoder: ray block in the observation (default: the env's leading rays)")
    parser.add_argument("--timespan", type=float, default=None,
                        help="elapsed time per step fed to the core (default 1.0; e.g. 0.05 for 20 Hz)")
    parser.add_argument("--log-rays", action="store_true",
                        help="feed the ray ranges as log(range): steep near obstacles")
    parser.add_argument("--drop-obs", default="", metavar="PART,...",
                        help="observation parts (e.g. wheels, velocity) or indices the policy ignores")
    add_head_arguments(parser)
    parser.add_argument("--demos", required=True, action="append", help="dataset directory (repeatable)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock cap (BC + DAgger)")
    parser.add_argument("--dagger-rounds", type=int, default=0)
    parser.add_argument("--dagger-episodes", type=int, default=20, help="learner rollouts per DAgger round")
    parser.add_argument("--dagger-epochs", type=int, default=10, help="training epochs per DAgger round")
    parser.add_argument("--dagger-beta", type=float, default=0.5, help="expert share in round r = beta**r")
    add_rollout_arguments(parser)
    parser.add_argument("--expert-options", default=None, metavar="JSON",
                        help="DAgger teacher's options, e.g. '{\"clearance_weight\": 2.0}' "
                             "(default: the expert recorded in the first --demos dataset)")
    parser.add_argument("--chunk-len", type=int, default=32)
    parser.add_argument("--burn-in", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=8)
    add_loss_arguments(parser)
    parser.add_argument("--all-demos", action="store_true", help="keep expert demos that failed")
    parser.add_argument("--workers", type=int, default=None, help="DAgger rollout workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--out", required=True, help="run directory (becomes the checkpoint)")


def add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    """How DAgger rolls out: ``--dagger-gate JSON`` (``BCConfig.dagger_gate`` via
    ``learn.dagger.parse_gate``) and ``--dagger-set KEY=VALUE`` (``BCConfig.dagger_options``), shared by
    ``train bc`` and ``scripts/train_imitation.py``; :func:`rollout_options` reads them back."""
    parser.add_argument("--dagger-gate", default=None, metavar="JSON",
                        help="gated DAgger rollouts instead of the beta-mix (the learner drives, the teacher "
                             "takes over near obstacles or when lost), e.g. "
                             "'{\"clearance\": 0.1, \"patience\": 5}'")
    parser.add_argument("--dagger-set", action="append", default=[], metavar="KEY=VALUE",
                        help="env option of the DAgger rollouts only (repeatable), e.g. "
                             "'layout.family=[rooms, rooms, forest]' (families go round-robin)")
    parser.add_argument("--select-last", type=int, default=0, metavar="K",
                        help="final policy: the best of the last K rounds' checkpoints by closed-loop "
                             "success on the val split (default 0: the last round's)")
    parser.add_argument("--select-episodes", type=int, default=100, metavar="N",
                        help="val episodes per candidate round (--select-last)")
    parser.add_argument("--select-margin", type=float, default=0.0, metavar="M",
                        help="--select-last: keep the latest round within M val success of the best "
                             "(default 0: the best, ties to the later round)")


def rollout_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_rollout_arguments` values as ``BCConfig`` keyword arguments."""
    from liquid_control.learn.dagger import parse_gate  # dagger imports this module
    from liquid_control.sim.options import parse_overrides

    return {"dagger_gate": parse_gate(args.dagger_gate), "dagger_options": parse_overrides(args.dagger_set),
            "select_last": args.select_last, "select_episodes": args.select_episodes,
            "select_margin": args.select_margin}


def add_head_arguments(parser: argparse.ArgumentParser) -> None:
    """The action-head options (``BCConfig.head``, ``bins``, ``motors``), shared by ``train bc`` and
    ``scripts/train_imitation.py``; :func:`head_options` reads them back."""
    parser.add_argument("--head", default="tanh", choices=["tanh", "bins"],
                        help="action head: tanh regression (MSE) or bins (cross-entropy; commits to one "
                             "mode where the teacher's labels split)")
    parser.add_argument("--bins", type=int, default=21, help="bins per action dimension (--head bins)")
    parser.add_argument("--motors", type=int, default=None,
                        help="core output width (default: one motor neuron per action dimension)")


def head_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_head_arguments` values as ``BCConfig`` keyword arguments."""
    return {"head": args.head, "bins": args.bins, "motors": args.motors}


def add_loss_arguments(parser: argparse.ArgumentParser) -> None:
    """The BC loss options (``BCConfig.obs_noise``, ``near_weight``, ``near_range``, ``dagger_weight``),
    shared by ``train bc`` and ``scripts/train_imitation.py``; :func:`loss_options` reads them back."""
    parser.add_argument("--obs-noise", type=float, default=0.0, metavar="SIGMA",
                        help="training input noise, std = SIGMA x each feature's std (0: off)")
    parser.add_argument("--near-weight", type=float, default=0.0,
                        help="extra loss weight on steps with a ray below --near-range (0: off)")
    parser.add_argument("--near-range", type=float, default=0.25,
                        help="fraction of the sensor range counted as near an obstacle")
    parser.add_argument("--dagger-weight", type=float, default=1.0,
                        help="loss weight of DAgger (relabelled learner) episodes against expert demos")


def loss_options(args: argparse.Namespace) -> dict[str, float]:
    """The :func:`add_loss_arguments` values as ``BCConfig`` keyword arguments."""
    return {"obs_noise": args.obs_noise, "near_weight": args.near_weight, "near_range": args.near_range,
            "dagger_weight": args.dagger_weight}


def config_from_args(args: argparse.Namespace) -> BCConfig:
    """A :class:`BCConfig` from parsed ``train bc`` arguments."""
    return BCConfig(env_id=args.env, demos=list(args.demos), out=args.out, policy=args.policy,
                    budget=args.budget, encoder=args.encoder, ray_slice=_parse_slice(args.ray_slice),
                    timespan=args.timespan, epochs=args.epochs, minutes=args.minutes,
                    drop_obs=parse_drop_obs(args.drop_obs), log_rays=args.log_rays, seed=args.seed,
                    chunk_len=args.chunk_len, burn_in=args.burn_in,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    **loss_options(args), **head_options(args), **rollout_options(args),
                    successful_only=not args.all_demos, dagger_rounds=args.dagger_rounds,
                    dagger_episodes=args.dagger_episodes, dagger_epochs=args.dagger_epochs,
                    dagger_beta=args.dagger_beta, workers=args.workers, resume=args.resume,
                    expert_options=parse_expert_options(args.expert_options),
                    command="liquid-control " + " ".join(sys.argv[1:]))


def _parse_slice(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--ray-slice must look like START:STOP, got {text!r}") from None
    return [start, stop]


def run(args: argparse.Namespace) -> int:
    """``liquid-control train bc``: train, then print the checkpoint's summary as JSON."""
    torch.set_num_threads(1)
    out = train_bc(config_from_args(args))
    card = json.loads((out / "card.json").read_text())
    print(json.dumps({"checkpoint": str(out), "params": card["params"], "wall_clock_s": card["wall_clock_s"],
                      "best_val_loss": card["metrics"]["best_val_loss"], "epochs": card["metrics"]["epochs"],
                      "dagger": card["metrics"]["dagger"]}, indent=2))
    return 0
