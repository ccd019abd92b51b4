"""Privileged drone experts (Controller protocol): :class:`HoverExpert` and :class:`NavExpert`.

Both decide a world-frame velocity setpoint from the env's privileged state and emit it through the
env's action interface: directly for ``velocity``; for ``ctbr`` and ``rpm`` through their own copy of
the flight controller's outer loops (evaluated once per control step), which is less precise than the
env's 240 Hz cascade but keeps the expert usable on every action type.

:class:`NavExpert` plans on the known layout (grid shortest path + line-of-sight smoothing, from
``experts.planning``), tracks the path at the flight altitude by pure pursuit, faces its direction of
travel, and replans from wherever the drone is when it drifts off the path, so it can label any state
a learner visits (DAgger). With ``sensing_range`` r > 0 it plans only on what a sensor of range r has
seen along the flight so far (every cell within r of a visited position, occlusion ignored; unknown
cells count as free) and replans when that reveals new obstacle cells: a teacher whose choices the
learner's own range sensors can explain (e.g. following a wall to a gap it cannot yet see), where the
full-layout planner heads straight for a gap beyond sensor range. With ``sensing_rays`` n > 0 instead,
what it has seen is what a fan of n rays with the env's lidar geometry showed (nothing behind a hit).
The arena edge counts as known unless ``knows_edge=False``: then it plans on the arena padded by
``EDGE_PAD`` m of unknown (free) space, so, like the learner, which cannot see the edge, it may go
round a wall outside the arena (and fail there); its success measures what the learner's information
allows.

With ``steering="arcs"`` it instead scores a fan of horizontal velocity commands (directions x speeds,
held for ``arc_horizon`` seconds with a first-order lag from the current velocity) against the goal's
cost-to-go field (clearance-aware: it prefers the middle of gaps) and the exact clearance of the body
along each, and flies the best one, facing it: no path memory and no replan thresholds, so its label is
a function of the drone's state (what DAgger relabelling needs; the rover expert's ``"arcs"`` law is
the same idea for a differential drive).

With ``slow_clearance`` c > 0 the pursuit law scales its speed by the body's clearance over c (at least
0.3) where that clearance is below c: a teacher that slows down near obstacles.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from liquid_control.experts.planning import (
    Planner,
    SeenCells,
    arc_clearance_terms,
    check_sensing_rays,
    check_steering,
    lidar_fan,
    near_obstacle_speed_scale,
)
from liquid_control.sim.flight_control import FlightController
from liquid_control.sim.quadrotor import CF2X

CF2X_RADIUS = CF2X.collision_radius
EDGE_PAD = 10.0  # m of unknown space a teacher that does not know the arena edge plans beyond it
_LAG = 0.3  # s, time constant of the velocity response assumed by the arcs law


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


class _VelocityExpert:
    """Shared part: world-frame velocity + yaw-rate setpoint -> an action of the env's type."""

    def __init__(self) -> None:
        self.env: Any = None
        self._ctrl: FlightController | None = None

    def reset(self, env: Any, obs: np.ndarray) -> None:
        self.env = env.unwrapped
        rig = self.env.rig
        self._ctrl = FlightController(rig.quad, rig.ctrl.gains)

    def neuron_state(self) -> None:
        return None

    def _emit(self, vx: float, vy: float, vz: float, yaw_rate: float) -> np.ndarray:
        rig = self.env.rig
        quad, iface = rig.quad, rig.actions
        if iface.action_type == "velocity":
            yaw = quad.yaw
            c, s = math.cos(yaw), math.sin(yaw)
            return iface.from_velocity(c * vx + s * vy, -s * vx + c * vy, vz, yaw_rate)
        ctrl = self._ctrl
        ctrl.set_world_velocity(vx, vy, vz, yaw_rate)
        thrust, p_, q_, r_ = ctrl.velocity_to_ctbr(rig.dt)
        if iface.action_type == "ctbr":
            return iface.from_ctbr(thrust, p_, q_, r_)
        return iface.from_rpm(ctrl.ctbr_to_rpm(thrust, p_, q_, r_))


class HoverExpert(_VelocityExpert):
    """Flies to the hover target with a saturated proportional velocity law, then holds it."""

    def __init__(self, gain: float = 1.5, max_speed: float = 1.5) -> None:
        super().__init__()
        self.gain = gain
        self.max_speed = max_speed

    def act(self, obs: np.ndarray) -> np.ndarray:
        st = self.env.state
        e = st["target"] - st["position"]
        v = self.gain * e
        n = float(np.linalg.norm(v[:2]))
        if n > self.max_speed:
            v[:2] *= self.max_speed / n
        v[2] = float(np.clip(v[2], -0.8, 0.8))
        return self._emit(float(v[0]), float(v[1]), float(v[2]), 0.0)  # keep the heading


class NavExpert(_VelocityExpert):
    """Tracks the planner's path at flight altitude; replans when off the path (see module docstring)."""

    def __init__(self, speed: float = 1.5, lookahead: float = 0.8, inflate: float = 0.35,
                 replan_distance: float = 0.35, yaw_gain: float = 2.0, clearance_weight: float = 0.0,
                 clearance_range: float = 0.5, sensing_range: float = 0.0, steering: str = "pursuit",
                 arc_horizon: float = 1.0, arc_margin: float = 0.1, arc_clearance: float = 0.5,
                 slow_clearance: float = 0.0, sensing_rays: int = 0, knows_edge: bool = True) -> None:
        super().__init__()
        if not slow_clearance >= 0.0:
            raise ValueError(f"slow_clearance must be >= 0 (0: off), got {slow_clearance}")
        self.slow_clearance = float(slow_clearance)
        check_steering(steering, arc_horizon, arc_margin, arc_clearance)
        check_sensing_rays(sensing_rays)
        if steering == "arcs" and (sensing_range > 0.0 or sensing_rays > 0):
            raise ValueError("steering='arcs' plans on the known layout (sensing_range and sensing_rays must "
                             "be 0)")
        self.steering = steering
        self.arc_horizon, self.arc_margin, self.arc_clearance = float(arc_horizon), float(arc_margin), \
            float(arc_clearance)
        if steering == "arcs":  # the field only needs the body to fit; clearance is scored per arc
            inflate = CF2X_RADIUS + self.arc_margin
            if clearance_weight == 0.0:  # keep to the middle of gaps
                clearance_weight, clearance_range = 2.0, 0.6
        if not sensing_range >= 0.0:
            raise ValueError(f"sensing_range must be >= 0 (0: the layout is known), got {sensing_range}")
        if sensing_range > 0.0 and sensing_rays > 0:
            raise ValueError("give sensing_range (a disk) or sensing_rays (a lidar fan), not both")
        self.sensing_range = float(sensing_range)
        self.sensing_rays = sensing_rays
        self.sensing = self.sensing_range > 0.0 or sensing_rays > 0
        if not knows_edge and not self.sensing:
            raise ValueError("knows_edge=False needs a sensing-limited teacher (sensing_range or "
                             "sensing_rays)")
        self.knows_edge = bool(knows_edge)
        self._plan_layout: Any = None
        self.seen: SeenCells | None = None  # cells seen so far (sensing)
        self._seen_at = np.full(2, np.inf)
        # clearance-aware planning (experts.planning.Planner; 0 = plain shortest paths, the default)
        self.clearance = {"clearance_weight": float(clearance_weight),
                          "clearance_range": float(clearance_range)}
        self.speed = speed
        self.lookahead = lookahead
        self.inflate = inflate
        self.replan_distance = replan_distance
        self.yaw_gain = yaw_gain
        self.planner: Planner | None = None
        self.path = np.zeros((0, 2))
        self._layout_key: tuple | None = None

    def reset(self, env: Any, obs: np.ndarray) -> None:
        super().reset(env, obs)
        layout = self.env.layout
        xy = self.env.state["position"][:2]
        self.replans = 0
        if self.sensing:  # a fresh map every episode
            self._plan_layout = layout if self.knows_edge else replace(
                layout, bounds=tuple(np.add(layout.bounds, [-EDGE_PAD, -EDGE_PAD, EDGE_PAD, EDGE_PAD])))
            self.planner = self._make_planner(self._plan_layout, xy)  # the full grid, for the true occupancy
            self.seen = SeenCells(self.planner.grid)
            self.fan = lidar_fan(self.env, self.sensing_rays) if self.sensing_rays else None
            self._seen_at = np.full(2, np.inf)
            self._layout_key = None
            self._sense(xy, force=True)
        else:
            key = (layout.layout_id, layout.fingerprint())
            if key != self._layout_key:  # planner (grid + distance field) is per layout
                self.planner = self._make_planner(layout, xy)
                self._layout_key = key
        self.path = self.planner.path_from(xy)

    def _sense(self, xy: np.ndarray, force: bool = False) -> bool:
        """Mark the cells within ``sensing_range`` of xy (or those the ``sensing_rays`` fan shows) as known;
        rebuild the planner on the known map (True) if that revealed an obstacle cell, or if ``force``.
        Looks again only after 0.25 m of travel."""
        if not force and np.hypot(*(xy - self._seen_at)) < 0.25:
            return False
        self._seen_at = np.array(xy, dtype=float)
        if self.sensing_rays:
            revealed = self.seen.see_fan(self.fan, xy, self.env.rig.quad.yaw)
        else:
            revealed = self.seen.see_disk(xy, self.sensing_range)
        if not force and len(revealed) == 0:
            return False
        self.planner = Planner(self._plan_layout, inflate=self.planner.inflate, known=self.seen.known,
                               **self.clearance)  # fmt: skip
        return True

    def _make_planner(self, layout: Any, start: np.ndarray) -> Planner:
        """Planner at the preferred clearance; narrower ones only if the start cannot reach the goal."""
        planner = None
        for inflate in (self.inflate, 0.25, 0.15):
            if inflate > self.inflate:
                continue
            planner = Planner(layout, inflate=inflate, **self.clearance)
            if np.isfinite(planner.dist[planner.grid.to_cell(start)]):
                break
        return planner

    def _closest(self, xy: np.ndarray) -> tuple[int, float, float]:
        """Segment index, parameter along it (m) and distance of the closest path point to ``xy``."""
        a, b = self.path[:-1], self.path[1:]
        d = b - a
        L = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        t = np.clip(((xy - a) * d).sum(1) / L, 0.0, L)
        proj = a + d * (t / L)[:, None]
        dist = np.hypot(*(xy - proj).T)
        k = int(np.argmin(dist))
        return k, float(t[k]), float(dist[k])

    def _carrot(self, k: int, t: float) -> np.ndarray:
        """Point ``lookahead`` metres along the path after (segment k, t)."""
        rest = self.lookahead
        path = self.path
        while k < len(path) - 1:
            seg = path[k + 1] - path[k]
            L = float(np.hypot(*seg))
            if t + rest <= L:
                return path[k] + seg * ((t + rest) / max(L, 1e-9))
            rest -= L - t
            k += 1
            t = 0.0
        return path[-1]

    def act(self, obs: np.ndarray) -> np.ndarray:
        env = self.env
        st = env.state
        pos = st["position"]
        xy = pos[:2]
        if self.steering == "arcs":
            return self._act_arcs(pos)
        if self.sensing and self._sense(xy):
            self.path = self.planner.path_from(xy)
            self.replans += 1
        if len(self.path) < 2:
            self.path = self.planner.path_from(xy)
        k, t, off = self._closest(xy)
        if off > self.replan_distance:
            self.path = self.planner.path_from(xy)
            self.replans += 1
            k, t, off = self._closest(xy)
        carrot = self._carrot(k, t)
        goal = np.asarray(env.layout.goal, dtype=float)
        dvec = carrot - xy
        n = float(np.hypot(*dvec))
        to_goal = float(np.hypot(*(goal - xy)))
        speed = min(self.speed, 1.2 * to_goal + 0.2)
        if self.slow_clearance > 0.0:
            clear = float(env.scene.clearance(xy)) - env.BODY_RADIUS
            speed *= near_obstacle_speed_scale(clear, self.slow_clearance)
        v = dvec / n * speed if n > 1e-6 else np.zeros(2)
        return self._fly(v, pos, dvec)

    def _fly(self, v: np.ndarray, pos: np.ndarray, facing: np.ndarray) -> np.ndarray:
        """The action for horizontal velocity ``v`` at the flight altitude, turning to face ``facing``
        (a direction; the current heading is kept where it is ~0)."""
        env = self.env
        vz = float(np.clip(1.5 * (env.flight_altitude - pos[2]), -0.8, 0.8))
        n = float(np.hypot(*facing))
        heading = math.atan2(facing[1], facing[0]) if n > 1e-6 else env.rig.quad.yaw
        yaw_rate = float(np.clip(self.yaw_gain * _wrap(heading - env.rig.quad.yaw), -1.5, 1.5))
        return self._emit(float(v[0]), float(v[1]), vz, yaw_rate)

    def _act_arcs(self, pos: np.ndarray) -> np.ndarray:
        """The best velocity command of the fan from the current state (see the module docstring)."""
        env = self.env
        xy = pos[:2]
        vel = np.asarray(env.rig.quad.vel[:2], dtype=float)
        goal = np.asarray(env.layout.goal, dtype=float)
        to_goal = float(np.hypot(*(goal - xy)))
        speed = min(self.speed, 1.2 * to_goal + 0.2)
        ang = np.linspace(0.0, 2.0 * np.pi, 32, endpoint=False)
        speeds = speed * np.array([1.0 / 3.0, 2.0 / 3.0, 1.0])
        cmd = np.concatenate([np.zeros((1, 2)), (speeds[:, None, None] * np.stack(
            [np.cos(ang), np.sin(ang)], 1)[None]).reshape(-1, 2)])  # (K, 2), hover first
        t = self.arc_horizon * np.arange(1, 11) / 10.0
        lag = _LAG * (1.0 - np.exp(-t / _LAG))  # first-order velocity response
        pts = xy + cmd[:, None] * t[None, :, None] + (vel - cmd)[:, None] * lag[None, :, None]
        clear = env.scene.clearance_many(pts.reshape(-1, 2)).reshape(pts.shape[:2]) - env.BODY_RADIUS
        now = float(env.scene.clearance(xy)) - env.BODY_RADIUS
        ok, crowding = arc_clearance_terms(clear, now, self.arc_margin, self.arc_clearance)
        d_end = self.planner.cost_to_go(pts[:, -1, 0], pts[:, -1, 1])
        change = np.hypot(*(cmd - vel).T) / max(self.speed, 1e-6)
        cost = d_end + 0.5 * crowding + 0.1 * change
        cost = np.where(ok & np.isfinite(d_end), cost, np.inf)
        k = int(np.argmin(cost)) if np.isfinite(cost).any() else 0  # boxed in: hover
        return self._fly(cmd[k], pos, cmd[k])
