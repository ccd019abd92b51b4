"""Privileged rover expert: a grid plan on the known layout + pure pursuit through the (v, w) action.

The planner's distance field to the goal is computed once per episode, so re-planning from wherever
the rover is (e.g. a state a learner drove into, for DAgger labels) costs only path extraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liquid_control.experts.planning import Planner, connected_planner


class RoverExpert:
    """Controller protocol: ``reset(env, obs)``, ``act(obs)``, ``neuron_state()``."""

    def __init__(self, lookahead: float = 0.55, replan_distance: float = 0.35, k_turn: float = 2.5,
                 inflate: float = 0.36, clearance_weight: float = 0.0, clearance_range: float = 0.5) -> None:
        self.inflate = float(inflate)  # m, obstacle growth for the plan (shrunk if the start is cut off)
        # clearance-aware planning (experts.planning.Planner; 0 = plain shortest paths, the default)
        self.clearance = {"clearance_weight": float(clearance_weight),
                          "clearance_range": float(clearance_range)}
        self.lookahead = float(lookahead)
        self.replan_distance = float(replan_distance)
        self.k_turn = float(k_turn)
        self.horizon = 0.4  # s, look-ahead of the safety check
        self.margin = 0.08  # m, clearance the safety check keeps
        self.env: Any = None
        self.planner: Planner | None = None
        self.path = np.zeros((0, 2))

    def reset(self, env: Any, obs: Any = None) -> None:
        """Plan on the episode's layout (the env must have been reset)."""
        self.env = env.unwrapped
        layout = self.env.layout
        start = np.asarray(self.env.state["position"][:2])
        self.planner = connected_planner(layout, start, inflate=self.inflate, **self.clearance)
        self.path = self.planner.path_from(start)

    def _off_path(self, xy: np.ndarray) -> tuple[float, float]:
        """(distance to the path, arc length of the closest point)."""
        a, b = self.path[:-1], self.path[1:]
        ab = b - a
        seg = np.maximum((ab * ab).sum(1), 1e-12)
        t = np.clip(((xy - a) * ab).sum(1) / seg, 0.0, 1.0)
        proj = a + t[:, None] * ab
        d = np.hypot(*(proj - xy).T)
        k = int(np.argmin(d))
        cum = np.concatenate([[0.0], np.cumsum(np.sqrt(seg))])
        return float(d[k]), float(cum[k] + t[k] * np.sqrt(seg[k]))

    def _point_at(self, s: float) -> np.ndarray:
        seg = np.hypot(*np.diff(self.path, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        if s >= cum[-1]:
            return self.path[-1]
        k = int(np.searchsorted(cum, s, side="right") - 1)
        t = (s - cum[k]) / max(seg[k], 1e-12)
        return self.path[k] + t * (self.path[k + 1] - self.path[k])

    def act(self, obs: Any = None) -> np.ndarray:
        """One normalised (v, w) action."""
        st = self.env.state
        xy = np.asarray(st["position"][:2], dtype=float)
        yaw = float(st["yaw"])
        spec = st["spec"]
        if len(self.path) < 2:
            self.path = self.planner.path_from(xy)
        off, s = self._off_path(xy)
        if off > self.replan_distance:
            self.path = self.planner.path_from(xy)
            off, s = self._off_path(xy)
        goal = np.asarray(st["goal"], dtype=float)
        d_goal = float(np.hypot(*(goal - xy)))
        target = self._point_at(s + self.lookahead) if len(self.path) > 1 else goal
        dx, dy = target - xy
        alpha = float(np.arctan2(dy, dx)) - yaw
        alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
        w = float(np.clip(self.k_turn * alpha, -spec.max_turn, spec.max_turn))
        if abs(alpha) > np.radians(50):  # turn (almost) in place first
            v = 0.0
        else:
            v = spec.max_speed * max(0.0, np.cos(alpha)) ** 2
            v *= min(1.0, 0.25 + d_goal / 1.0)  # ease in on the goal
            v = self._safe_speed(xy, yaw, v, w)
        return np.array([v / spec.max_speed, w / spec.max_turn], dtype=np.float32)

    def _safe_speed(self, xy: np.ndarray, yaw: float, v: float, w: float) -> float:
        """Slow down (or back off) if the next ``horizon`` s would bring the body closer than ``margin``
        to an obstacle while getting closer than it is now (e.g. after a learner drove next to a wall)."""
        scene, radius = self.env.scene, self.env.BODY_RADIUS
        now = scene.clearance(xy) - radius
        if now > 0.3:
            return v
        heading = yaw + 0.5 * w * self.horizon
        step = self.horizon * np.array([np.cos(heading), np.sin(heading)])
        for cand in (v, 0.5 * v):
            after = scene.clearance(xy + cand * step) - radius
            if after >= self.margin or after >= now:
                return cand
        back = -0.3 * self.env.state["spec"].max_speed  # blocked ahead: back off if that frees us
        if scene.clearance(xy + back * step) - radius > now:
            return back
        return 0.0

    def neuron_state(self) -> None:
        return None
