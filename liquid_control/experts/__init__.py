"""Privileged experts: planners on the known layout plus controllers (numpy, no torch)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

# env class name -> "module:ExpertClass"; each expert class takes the (unwrapped) env.
_EXPERTS = {
    "DroneHoverEnv": "liquid_control.experts.drone:HoverExpert",
    "DroneNavEnv": "liquid_control.experts.drone:NavExpert",
    "RoverNavEnv": "liquid_control.experts.rover:RoverExpert",
}


def make_expert(env: Any, options: dict[str, Any] | None = None) -> Any:
    """Return the privileged expert Controller for ``env`` (any wrapper around a liquid-control env).

    ``options`` are keyword arguments of the expert class (e.g. ``{"clearance_weight": 2.0}`` for the
    clearance-aware planner of the nav experts); None or {} gives the default expert.
    """
    name = type(env.unwrapped).__name__
    if name not in _EXPERTS:
        raise ValueError(f"no expert for environment class {name!r}; known: {sorted(_EXPERTS)}")
    module, cls_name = _EXPERTS[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    if not options:
        return cls()
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{cls_name} has no option(s) {unknown}; known: {sorted(known)}")
    return cls(**options)
