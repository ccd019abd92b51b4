"""Policy networks: observation normalisation → encoder → recurrent core → linear head → tanh → actions.

One class serves every core (``ltc`` default, ``cfc``, ``lstm``, ``gru``, ``mlp``, ``euler``, …) so that
comparisons are fair: ``PolicyConfig.budget`` is the trainable-parameter budget of the WHOLE policy, and
the core gets whatever the encoder and head leave (``make_core(..., budget=rest)``). Normalisation
statistics are buffers, so they travel with the state dict and the checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

CORE_KINDS = ("ltc", "cfc", "lstm", "gru", "mlp", "euler", "esn", "lsm")


LOG_RAYS_EPS = 0.01  # log_rays: log(x + eps) of a range feature x in [0, 1]
HEADS = ("tanh", "bins")
BIN_SIGMA = 0.75  # bins head: std of the Gaussian-smoothed target, in bin widths
MODE_WINDOW = 2  # bins head: the action is the mean over the most probable window of bins, +- this many


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a :class:`PolicyNet` (JSON-serialisable, stored in config.json)."""

    obs_dim: int
    act_dim: int
    core: str = "ltc"
    budget: int | None = 20000  # trainable parameters of the whole policy; None: core at its own default
    encoder: str = "mlp"  # "mlp" over the flat observation, or "conv": 1-D conv over the ray block
    encoder_hidden: list[int] = field(default_factory=lambda: [64])
    features: int = 32  # encoder output width = core input size
    ray_slice: list[int] | None = None  # [start, stop) of the ray block inside the observation (conv)
    conv_channels: list[int] = field(default_factory=lambda: [8, 8])
    core_kwargs: dict[str, Any] = field(default_factory=dict)
    timespan: float | None = None  # elapsed time per step given to the core (None: the core's 1.0)
    # observation features the policy does not see (zeroed after normalisation), e.g. the proprioceptive
    # ones (wheel speeds, body velocity) that let a cloned policy copy its own last action
    drop_obs: list[int] = field(default_factory=list)
    # [start, stop) of range features (rays normalised to [0, 1]) that enter as log(x + LOG_RAYS_EPS) before
    # normalisation: near obstacles, where a linear range feature hardly changes, get a steep feature
    log_rays: list[int] | None = None
    # action head: "tanh" (regression; BC's loss is the MSE) or "bins": per action dimension a categorical
    # distribution over ``bins`` values evenly spaced in [-1, 1], trained with cross-entropy against a
    # Gaussian-smoothed target, acting with the mean of the window of bins that holds the most
    # probability, so where the teacher's labels of similar observations split (left or right of an
    # obstacle) the policy commits to one of them instead of averaging them
    head: str = "tanh"
    bins: int = 21
    motors: int | None = None  # core output width (None: the action width, one motor neuron per action)

    def __post_init__(self) -> None:
        if self.obs_dim < 1 or self.act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got {self.obs_dim}, {self.act_dim}")
        if self.encoder not in ("mlp", "conv"):
            raise ValueError(f"encoder must be 'mlp' or 'conv', got {self.encoder!r}")
        if self.encoder == "conv":
            if self.ray_slice is None or len(self.ray_slice) != 2:
                raise ValueError("a conv encoder needs ray_slice=[start, stop] of the ray block")
            start, stop = self.ray_slice
            if not 0 <= start < stop <= self.obs_dim or stop - start < 8:
                raise ValueError(f"ray_slice {self.ray_slice} must lie inside [0, {self.obs_dim}] "
                                 "and hold >= 8 rays")
        bad = [i for i in self.drop_obs if not 0 <= int(i) < self.obs_dim]
        if bad or len(set(self.drop_obs)) != len(self.drop_obs) or len(self.drop_obs) == self.obs_dim:
            raise ValueError(f"drop_obs {self.drop_obs} must be distinct indices in [0, {self.obs_dim}) "
                             "that leave at least one feature")
        if self.log_rays is not None and (len(self.log_rays) != 2
                                          or not 0 <= self.log_rays[0] < self.log_rays[1] <= self.obs_dim):
            raise ValueError(f"log_rays {self.log_rays} must be [start, stop) inside [0, {self.obs_dim}]")
        if self.timespan is not None and not self.timespan > 0:
            raise ValueError(f"timespan must be positive, got {self.timespan}")
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"budget must be positive, got {self.budget}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.head == "bins" and not 3 <= self.bins <= 255:
            raise ValueError(f"bins must be in [3, 255], got {self.bins}")
        if self.motors is not None and self.motors < 1:
            raise ValueError(f"motors must be >= 1, got {self.motors}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown PolicyConfig fields {sorted(extra)}")
        return cls(**d)


def _core_factory():
    """The core builder of nets/core.py (looked up lazily; tests may substitute it)."""
    from liquid_control.nets.core import make_core

    return make_core


def _n_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class _ConvEncoder(nn.Module):
    """1-D conv over the ray block, concatenated with the remaining (non-ray) features."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        start, stop = cfg.ray_slice  # type: ignore[misc]
        self.start, self.stop = start, stop
        layers: list[nn.Module] = []
        c_in, length = 1, stop - start
        for c in cfg.conv_channels:
            layers += [nn.Conv1d(c_in, c, kernel_size=5, stride=2, padding=2), nn.ELU()]
            c_in, length = c, (length - 1) // 2 + 1
        self.conv = nn.Sequential(*layers)
        n_rest = cfg.obs_dim - (stop - start)
        self.out = nn.Sequential(nn.Linear(c_in * length + n_rest, cfg.features), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        rays = x[..., self.start:self.stop].reshape(-1, 1, self.stop - self.start)
        rest = torch.cat([x[..., : self.start], x[..., self.stop:]], dim=-1).reshape(rays.shape[0], -1)
        h = self.conv(rays).flatten(1)
        return self.out(torch.cat([h, rest], dim=-1)).reshape(*lead, -1)


def _mlp_encoder(cfg: PolicyConfig) -> nn.Module:
    layers: list[nn.Module] = []
    width = cfg.obs_dim
    for h in cfg.encoder_hidden:
        layers += [nn.Linear(width, h), nn.ELU()]
        width = h
    layers += [nn.Linear(width, cfg.features), nn.Tanh()]
    return nn.Sequential(*layers)


class PolicyNet(nn.Module):
    """Recurrent policy: ``forward(obs (B,T,F), state, resets) -> (actions (B,T,A), state)``.

    Actions come out in the env's units (tanh output de-normalised by the action buffers); pass
    ``normalized=True`` to get the tanh output in [-1, 1] (what BC's loss compares against).
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))
        self.register_buffer("act_center", torch.zeros(config.act_dim))
        self.register_buffer("act_scale", torch.ones(config.act_dim))
        # indices from the config (not a buffer: state dicts and parameter counts stay as they were)
        self._drop_idx = torch.tensor(sorted(int(i) for i in config.drop_obs), dtype=torch.long)
        self.encoder = _ConvEncoder(config) if config.encoder == "conv" else _mlp_encoder(config)
        make_core = _core_factory()
        a = config.act_dim
        motors = config.motors or a
        head_out = a if config.head == "tanh" else a * config.bins
        if config.budget is None:
            self.core = make_core(config.core, config.features, motors, **config.core_kwargs)
        else:  # the head's size depends on the core's output width: iterate to a fixed point
            enc, out_width = _n_trainable(self.encoder), motors
            for _ in range(4):
                rest = config.budget - enc - (out_width * head_out + head_out)
                if rest < 16:
                    raise ValueError(
                        f"budget {config.budget} leaves {rest} parameters for the core after the encoder "
                        f"({enc}) and head; raise the budget or shrink the encoder")
                self.core = make_core(config.core, config.features, motors, budget=rest, **config.core_kwargs)
                if self.core.output_size == out_width:
                    break
                out_width = self.core.output_size
        self.head = nn.Linear(self.core.output_size, head_out)
        if config.head == "bins":
            self.register_buffer("bin_centers", torch.linspace(-1.0, 1.0, config.bins), persistent=False)
        if config.head == "tanh" and self.core.output_size == a:  # motor neurons drive the actions: identity
            with torch.no_grad():
                self.head.weight.copy_(torch.eye(a))
                self.head.bias.zero_()

    @property
    def state_size(self) -> int:
        """Width of the recurrent state (0 for feed-forward cores)."""
        return int(self.core.state_size)

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state of shape (batch, state_size)."""
        return self.core.initial_state(batch)

    def set_normalization(self, obs_mean: np.ndarray, obs_std: np.ndarray,
                          act_low: np.ndarray, act_high: np.ndarray) -> None:
        """Set observation statistics and the action range (stored as buffers)."""
        std = np.maximum(np.asarray(obs_std, np.float64), 1e-3)
        low, high = np.asarray(act_low, np.float64), np.asarray(act_high, np.float64)
        if low.shape != (self.config.act_dim,) or high.shape != low.shape or np.any(high <= low):
            raise ValueError(f"action range must be two ({self.config.act_dim},) arrays with high > low")
        if np.asarray(obs_mean).shape != (self.config.obs_dim,) or std.shape != (self.config.obs_dim,):
            raise ValueError(f"observation statistics must have shape ({self.config.obs_dim},)")
        for name, value in (("obs_mean", obs_mean), ("obs_std", std),
                            ("act_center", (high + low) / 2), ("act_scale", (high - low) / 2)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))

    def normalization(self) -> dict[str, list[float]]:
        """The normalisation buffers as plain lists (recorded in config.json)."""
        return {
            "obs_mean": self.obs_mean.tolist(), "obs_std": self.obs_std.tolist(),
            "act_low": (self.act_center - self.act_scale).tolist(),
            "act_high": (self.act_center + self.act_scale).tolist(),
        }

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Env-unit actions → [-1, 1] (the space the tanh head predicts)."""
        return ((actions - self.act_center) / self.act_scale).clamp(-1.0, 1.0)

    def transform_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations -> the features the statistics are taken over (``log_rays``; else as they are)."""
        if self.config.log_rays is None:
            return obs
        a, b = self.config.log_rays
        rays = torch.log(obs[..., a:b].clamp(min=0.0) + LOG_RAYS_EPS)
        return torch.cat([obs[..., :a], rays, obs[..., b:]], dim=-1)

    def encoder_input(self, obs: torch.Tensor, clip: float = 10.0) -> torch.Tensor:
        """What the encoder sees of raw observations: transformed (``log_rays``), normalised, clipped to
        +-clip, dropped features 0."""
        x = ((self.transform_obs(obs) - self.obs_mean) / self.obs_std).clamp(-clip, clip)
        return x.index_fill(-1, self._drop_idx, 0.0) if self.config.drop_obs else x

    def head_outputs(self, obs: torch.Tensor, state: torch.Tensor | None = None,
                     resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's raw output (B, T, H) for observations (B, T, F): pre-tanh actions, or bin logits
        (H = act_dim * bins, action-major), and the new recurrent state."""
        if obs.dim() != 3 or obs.shape[-1] != self.config.obs_dim:
            raise ValueError(f"obs must be (B, T, {self.config.obs_dim}), got {tuple(obs.shape)}")
        x = self.encoder_input(obs)
        ts = None if self.config.timespan is None else torch.full(obs.shape[:2], self.config.timespan)
        y, state = self.core(self.encoder(x), state, resets, ts)
        return self.head(y), state

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Head output -> actions in [-1, 1]: tanh, or (per action dimension) the probability-weighted
        mean of the window of 2 * ``MODE_WINDOW`` + 1 bins that holds the most probability."""
        if self.config.head == "tanh":
            return torch.tanh(raw)
        p = torch.softmax(raw.unflatten(-1, (self.config.act_dim, self.config.bins)), dim=-1)
        width = 2 * MODE_WINDOW + 1  # the window of bins holding the most probability, then its mean
        mass = torch.nn.functional.avg_pool1d(p.reshape(-1, 1, p.shape[-1]), width, 1, MODE_WINDOW,
                                              count_include_pad=True).reshape(p.shape)
        k = torch.arange(self.config.bins, device=raw.device)
        p = p * ((k - mass.argmax(-1, keepdim=True)).abs() <= MODE_WINDOW)
        return (p * self.bin_centers).sum(-1) / p.sum(-1).clamp(min=1e-12)

    def action_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-step imitation loss (B, T) of head outputs against target actions in [-1, 1] (B, T, A):
        the MSE of the tanh actions, or the cross-entropy of the bins against the Gaussian-smoothed
        target, both averaged over the action dimensions."""
        if self.config.head == "tanh":
            return ((torch.tanh(raw) - target) ** 2).mean(-1)
        logp = torch.log_softmax(raw.unflatten(-1, (self.config.act_dim, self.config.bins)), dim=-1)
        return -(bin_targets(target, self.bin_centers) * logp).sum(-1).mean(-1)

    def forward(self, obs: torch.Tensor, state: torch.Tensor | None = None,
                resets: torch.Tensor | None = None, normalized: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        raw, state = self.head_outputs(obs, state, resets)
        a = self.decode(raw)
        return (a if normalized else a * self.act_scale + self.act_center), state


def bin_targets(target: torch.Tensor, centers: torch.Tensor, sigma: float = BIN_SIGMA) -> torch.Tensor:
    """Soft class targets (..., K) of values ``target`` (...) in [-1, 1] for bins centred at ``centers``
    (K, evenly spaced): the mass of a Gaussian of ``sigma`` bin widths around each value that falls in
    each bin (outer bins reach to +-infinity), so neighbouring bins share the credit."""
    width = float(centers[1] - centers[0])
    edges = torch.cat([centers[:1] - width / 2, centers + width / 2])
    cdf = torch.special.ndtr((edges - target.unsqueeze(-1)) / (sigma * width))
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf[..., 1:-1], torch.ones_like(cdf[..., :1])], -1)
    return cdf[..., 1:] - cdf[..., :-1]


def param_counts(policy: nn.Module) -> dict[str, int | None]:
    """Trainable / effective / buffer counts of a policy (effective counts only unmasked weights)."""
    try:
        from liquid_control.nets.params import count_params
    except ImportError:  # nets/params.py not there: report what can be counted without it
        return {"trainable": _n_trainable(policy), "effective": None,
                "buffers": sum(b.numel() for b in policy.buffers())}
    return {k: int(v) for k, v in count_params(policy).items()}


def apply_constraints(policy: nn.Module) -> None:
    """Parameter constraints of the core after an optimiser step (LTC clip mode; a no-op otherwise)."""
    fn = getattr(getattr(policy, "core", None), "apply_constraints", None)
    if fn is not None:
        fn()
