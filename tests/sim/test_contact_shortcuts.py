"""The contact queries the envs skip must be the ones that cannot find anything.

``NavTask._collided`` asks PyBullet for obstacle contacts only when the 2D clearance is at most
``NO_CONTACT_CLEARANCE``, and the drones ask for ground contacts only below ``NO_GROUND_CONTACT_Z``.
These tests drive random actions into obstacles and the ground and check, at every step, that the full
queries never find a contact outside those bounds (so the shortcuts never change an answer)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest

import liquid_control  # noqa: F401  (registers the ids)
from liquid_control.sim.tasks.base import NO_CONTACT_CLEARANCE
from liquid_control.sim.tasks.drone_common import NO_GROUND_CONTACT_Z


@pytest.mark.parametrize("env_id,options", [
    ("LiquidControl/RoverNav-v0", {"layout": {"family": ["rooms", "maze"], "density": 1.5}}),
    ("LiquidControl/DroneNav-v0", {"layout": {"family": ["forest", "walls"], "density": 1.5},
                                   "action_type": "ctbr"}),
])
def test_no_contact_outside_the_shortcut_bounds(env_id, options):
    env = gym.make(env_id, **options)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    contacts = ground = 0
    try:
        for seed in range(6):
            env.reset(seed=seed)
            for _ in range(150):
                _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
                if u.world.contacts(u.body_id):
                    contacts += 1
                    assert u._last_clearance <= NO_CONTACT_CLEARANCE
                if hasattr(u, "rig") and p.getContactPoints(bodyA=u.body_id, bodyB=u.world.ground,
                                                            physicsClientId=u.world.client):
                    ground += 1
                    assert u.rig.quad.pos[2] <= NO_GROUND_CONTACT_Z
                if term or trunc:
                    break
    finally:
        env.close()
    assert contacts > 0  # the rollouts do reach obstacles, so the check above was exercised


def test_hover_ground_contact_only_near_the_ground():
    env = gym.make("LiquidControl/DroneHover-v0", action_type="rpm")
    u = env.unwrapped
    rng = np.random.default_rng(1)
    hits = 0
    try:
        for seed in range(10):
            env.reset(seed=seed)
            for _ in range(120):
                # low rpm on all motors: the drone drops and hits the ground fast (slow descents end at the
                # 5 cm crash height before any contact point exists)
                _, _, term, trunc, _ = env.step(rng.uniform(-1.0, -0.9, 4).astype(np.float32))
                if p.getContactPoints(bodyA=u.rig.quad.body, bodyB=u.world.ground,
                                      physicsClientId=u.world.client):
                    hits += 1
                    assert u.rig.quad.pos[2] <= NO_GROUND_CONTACT_Z
                if term or trunc:
                    break
    finally:
        env.close()
    assert hits > 0
