"""Privileged experts: planners on the known layout plus controllers (numpy, no torch)."""

from __future__ import annotations

import importlib
from typing import Any

# env class name -> "module:ExpertClass"; each expert class takes the (unwrapped) env.
_EXPERTS = {
    "DroneHoverEnv": "liquid_control.experts.drone:HoverExpert",
    "DroneNavEnv": "liquid_control.experts.drone:NavExpert",
    "RoverNavEnv": "liquid_control.experts.rover:RoverExpert",
}


def make_expert(env: Any) -> Any:
    """Return the privileged expert Controller for ``env`` (any wrapper around a liquid-control env)."""
    name = type(env.unwrapped).__name__
    if name not in _EXPERTS:
        raise ValueError(f"no expert for environment class {name!r}; known: {sorted(_EXPERTS)}")
    module, cls = _EXPERTS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
