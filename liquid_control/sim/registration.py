"""Registers the namespaced, versioned Gymnasium ids of liquid-control."""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = {
    "LiquidControl/DroneHover-v0": "liquid_control.sim.tasks.drone_hover:DroneHoverEnv",
    "LiquidControl/DroneNav-v0": "liquid_control.sim.tasks.drone_nav:DroneNavEnv",
    "LiquidControl/RoverNav-v0": "liquid_control.sim.tasks.rover_nav:RoverNavEnv",
}


def register_all() -> None:
    """Register every env id once (idempotent)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, disable_env_checker=True)


register_all()
