"""Checkpoints: a directory with ``policy.pt`` (state dict), ``config.json`` and ``card.json``.

``config.json`` rebuilds the network (``policy``: a :class:`PolicyConfig`), names the env it was trained
for (``env_id``, ``env_options``) and records the observation/action normalisation; ``card.json`` is
the provenance (parameter counts, training command, data, wall-clock, metrics). Every file is written
atomically (temp file + rename), so a crash never leaves a half-written checkpoint. Also serves the
``info`` command.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liquid_control.fileio import atomic_write_bytes, atomic_write_json, read_json_object
from liquid_control.nets.policy import PolicyConfig, PolicyNet, param_counts

__all__ = ["atomic_write_bytes", "atomic_write_json"]  # re-exported: scripts import them from here

FORMAT_VERSION = 1
FILES = ("policy.pt", "config.json", "card.json")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through a temp file + rename."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_checkpoint(directory: str | os.PathLike, policy: PolicyNet, config: dict[str, Any],
                    card: dict[str, Any]) -> Path:
    """Write ``policy`` as a checkpoint directory; returns its path.

    ``config`` carries at least ``env_id`` and ``env_options``; the network config and the
    normalisation are taken from ``policy`` itself. ``card`` is stored with the parameter counts added.
    """
    if "env_id" not in config:
        raise ValueError("checkpoint config needs an 'env_id'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    full_config = {
        **config,
        "format_version": FORMAT_VERSION,
        "env_options": config.get("env_options", {}),
        "policy": policy.config.to_dict(),
        "normalization": policy.normalization(),
    }
    full_card = {**card, "params": param_counts(policy)}
    state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
    atomic_torch_save(directory / "policy.pt", state)
    atomic_write_json(directory / "config.json", full_config)
    atomic_write_json(directory / "card.json", full_card)
    return directory


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, f"{path.parent} is not a checkpoint: missing {path.name}")


def load_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's config.json (FileNotFoundError/ValueError if missing or corrupt)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    cfg = _read_json(directory / "config.json")
    if "policy" not in cfg or "env_id" not in cfg:
        raise ValueError(f"corrupt {directory / 'config.json'}: needs 'policy' and 'env_id'")
    return cfg


def load_policy(directory: str | os.PathLike) -> tuple[PolicyNet, dict[str, Any]]:
    """Rebuild the network of a checkpoint directory and load its weights (eval mode)."""
    directory = Path(directory)
    cfg = load_config(directory)
    policy = PolicyNet(PolicyConfig.from_dict(cfg["policy"]))
    weights = directory / "policy.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint: missing policy.pt")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    except Exception as exc:  # any unpickling/shape failure means a bad file
        raise ValueError(f"corrupt or mismatched {weights}: {str(exc).splitlines()[0]}") from None
    policy.eval()
    return policy, cfg


class PolicyController:
    """A learned policy as a Controller (batch 1, stateful across ``act`` calls, no gradients)."""

    def __init__(self, policy: PolicyNet, config: dict[str, Any] | None = None) -> None:
        self.policy, self.config = policy.eval(), config or {}
        self._state: torch.Tensor | None = None

    def reset(self, env: Any = None, obs: np.ndarray | None = None) -> None:
        self._state = self.policy.initial_state(1)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, 1, -1)
        action, self._state = self.policy(x, self._state)
        return action[0, 0].numpy().astype(np.float32)

    def neuron_state(self) -> np.ndarray | None:
        if self._state is None or self._state.numel() == 0:
            return None
        return self._state[0].detach().numpy().copy()


def load_controller(directory: str | os.PathLike) -> PolicyController:
    """A checkpoint directory as a Controller (see docs/internals.md)."""
    policy, cfg = load_policy(directory)
    return PolicyController(policy, cfg)


def describe(directory: str | os.PathLike) -> dict[str, Any]:
    """Architecture, parameter counts and provenance of a checkpoint (what ``info`` prints)."""
    policy, cfg = load_policy(directory)
    card_path = Path(directory) / "card.json"
    card = _read_json(card_path) if card_path.exists() else {}
    core = policy.core
    arch = {
        "core": policy.config.core,
        "core_class": type(core).__name__,
        "obs_dim": policy.config.obs_dim,
        "act_dim": policy.config.act_dim,
        "encoder": policy.config.encoder,
        "encoder_hidden": policy.config.encoder_hidden,
        "features": policy.config.features,
        "state_size": policy.state_size,
        "budget": policy.config.budget,
    }
    if callable(getattr(core, "config", None)):
        arch["core_config"] = core.config()
    wiring = getattr(core, "wiring", None)
    if wiring is not None:
        arch["wiring"] = {"type": type(wiring).__name__, "units": int(wiring.units),
                          "motor": int(wiring.output_dim),
                          "groups": {k: len(v) for k, v in wiring.neuron_groups().items()},
                          "synapses": int(wiring.synapse_count), "sensory_synapses":
                          int(wiring.sensory_synapse_count)}
    provenance = {k: v for k, v in card.items() if k != "params"}
    return {"checkpoint": str(directory), "env_id": cfg["env_id"], "env_options": cfg.get("env_options", {}),
            "architecture": arch, "params": param_counts(policy), "provenance": provenance}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control info``."""
    parser.add_argument("checkpoint", help="checkpoint directory (policy.pt + config.json + card.json)")


def run(args: argparse.Namespace) -> int:
    """``liquid-control info CKPT``: print the checkpoint's description as JSON."""
    print(json.dumps(describe(args.checkpoint), indent=2, sort_keys=True))
    return 0
