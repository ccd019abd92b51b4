#!/usr/bin/env python
"""Where a rover learner's collisions come from: its fit of the teacher near obstacles, and the contacts.

    python scripts/near_obstacle_gap.py runs/r12/rover-ltc-s0 --last 40
    python scripts/near_obstacle_gap.py runs/r12/rover-ltc-s0 --collisions

For a RoverNav run of ``scripts/train_imitation.py`` (RUN/policy with its DAgger data in RUN/policy/dagger):

* by the closest lidar ray of each step of the last ``--last`` DAgger episodes (the learner's own states,
  labelled by the teacher): the share of steps, the share labelled as an escape (stop and turn in place,
  ``v`` = 0 and ``|w|`` = 1), the policy's mean |error| in ``v`` and ``w`` and how often it turns the
  labelled way (the policy run over each episode's observations from a zero state); and, for the escape
  labels closer than ``--escape-range``, how often the labelled turn is away from the closest ray's side
  (whether the lidar shows which way to turn);
* with ``--collisions``: the learner's test episodes that ended in a collision (RUN/eval-learner.json) are
  replayed and the contact's bearing off the heading, the closest ray and the last actions are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

BANDS = (0.0, 0.25, 0.3, 0.4, 0.6, 1.0, math.inf)


def is_escape(actions: np.ndarray) -> np.ndarray:
    """Steps whose (v, w) in [-1, 1] is the escape's turn in place: v = 0, |w| = 1."""
    return (np.abs(actions[:, 0]) < 0.05) & (np.abs(actions[:, 1]) > 0.95)


def ray_bearings(count: int, fov_deg: float) -> np.ndarray:
    """Bearing (deg, body frame, left positive) of each of the env's ``count`` rays over ``fov_deg``."""
    from liquid_control.sim.sensors import ring_directions

    d = ring_directions(count, fov_deg)
    return np.degrees(np.arctan2(d[:, 1], d[:, 0]))


def band_table(closest: np.ndarray, labels: np.ndarray, actions: np.ndarray) -> list[dict]:
    """Per band of the closest ray (m): share of steps and of escape labels, the policy's errors."""
    rows = []
    for lo, hi in zip(BANDS[:-1], BANDS[1:], strict=True):
        s = (closest >= lo) & (closest < hi)
        if not s.any():
            continue
        turn = np.abs(labels[s, 1]) > 0.1  # steps that are labelled to turn: does the policy turn that way?
        same = np.sign(actions[s][turn, 1]) == np.sign(labels[s][turn, 1])
        rows.append({"band_m": [lo, hi], "steps": int(s.sum()), "share": float(s.mean()),
                     "escape_labels": float(is_escape(labels[s]).mean()),
                     "abs_err_v": float(np.abs(actions[s, 0] - labels[s, 0]).mean()),
                     "abs_err_w": float(np.abs(actions[s, 1] - labels[s, 1]).mean()),
                     "turns_labelled_way": float(same.mean()) if turn.any() else None})
    return rows


def escape_sides(closest: np.ndarray, bearing: np.ndarray, labels: np.ndarray, escape_range: float) -> dict:
    """Escape labels closer than ``escape_range``: the share whose turn is away from the closest ray (a
    wall on the right, negative bearing, turns left, w > 0), apart from obstacles within 15 deg ahead."""
    esc = is_escape(labels) & (closest < escape_range)
    side = esc & (np.abs(bearing) >= 15.0)
    away = np.sign(labels[side, 1]) == -np.sign(bearing[side])
    return {"escape_steps": int(esc.sum()), "ahead": int((esc & ~side).sum()),
            "turn_away_from_closest_ray": float(away.mean()) if side.any() else None}


def fit_report(run: Path, last: int, escape_range: float) -> dict:
    from liquid_control.learn.bc import ray_part
    from liquid_control.learn.checkpoint import load_policy
    from liquid_control.learn.demos import load_dataset

    policy, config = load_policy(run / "policy")
    policy.eval()
    episodes = load_dataset(run / "policy" / "dagger").episodes[-last:]
    rays = ray_part(config["env_id"], config["env_options"])
    rng, fov = (float(config["resolved_env_options"]["rays"][k]) for k in ("range", "fov"))
    closest, bearing, labels, actions = [], [], [], []
    for ep in episodes:
        obs = ep["observations"]
        with torch.no_grad():
            act, _ = policy(torch.as_tensor(obs[None], dtype=torch.float32))
        r = obs[:, rays[0]:rays[1]]
        closest.append(r.min(1) * rng)
        bearing.append(ray_bearings(r.shape[1], fov)[r.argmin(1)])
        labels.append(ep["actions"])
        actions.append(act[0].numpy())
    closest, bearing, labels, actions = map(np.concatenate, (closest, bearing, labels, actions))
    return {"run": str(run), "episodes": len(episodes), "steps": len(closest),
            "bands": band_table(closest, labels, actions),
            "escapes": escape_sides(closest, bearing, labels, escape_range)}


def collisions(run: Path) -> None:
    import gymnasium as gym
    import pybullet as p

    import liquid_control  # noqa: F401  (registers the envs)
    from liquid_control.learn.rollout import make_controller, run_episode

    results = json.loads((run / "eval-learner.json").read_text())
    env = gym.make(results["env"], **results["options"])
    controller = make_controller(str(run / "policy"))
    for e in (e for e in results["per_episode"] if e["collision"]):
        ep = run_episode(env, controller, e["seed"])
        u = env.unwrapped
        rays = ep.observations[-1][u.obs_slices["rays"]]
        off = []
        for c in p.getContactPoints(bodyA=u.body_id, physicsClientId=u.world.client):
            if c[2] == u.world.ground:  # the wheels on the ground plane
                continue
            d = np.asarray(c[5][:2]) - u.position[:2]
            off.append(round((math.degrees(math.atan2(d[1], d[0]) - u.yaw) + 180.0) % 360.0 - 180.0))
        print(json.dumps({"family": e["family"], "seed": e["seed"], "steps": e["steps"],
                          "contact_bearing_deg": sorted(set(off)),
                          "closest_ray_m": round(float(rays.min()) * float(u.options["rays"]["range"]), 3),
                          "last_actions": np.round(np.asarray(ep.actions[-5:]), 2).tolist()}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run directory of scripts/train_imitation.py (RoverNav)")
    p.add_argument("--last", type=int, default=40, help="DAgger episodes to read (the last N)")
    p.add_argument("--escape-range", type=float, default=0.265, help="closest ray (m) of the escape check")
    p.add_argument("--collisions", action="store_true", help="replay the learner's test collisions")
    args = p.parse_args(argv)
    if not (args.run / "policy" / "dagger").is_dir():
        p.error(f"{args.run}: no policy/dagger (a run directory of scripts/train_imitation.py with DAgger)")
    if args.collisions:
        collisions(args.run)
    else:
        print(json.dumps(fit_report(args.run, args.last, args.escape_range), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
