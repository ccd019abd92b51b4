"""Privileged rover expert: a grid plan on the known layout + a steering law for the (v, w) action.

The planner's distance field to the goal is computed once per episode, so re-planning from wherever
the rover is (e.g. a state a learner drove into, for DAgger labels) costs only path extraction.

Two steering laws (``steering``):

* ``"pursuit"`` (default): pure pursuit of a look-ahead point on the smoothed path, turning in place
  above 50 degrees of heading error, with a safety check that slows down near obstacles. The path is
  kept until the rover drifts ``replan_distance`` off it, so its action depends on the history too.
* ``"arcs"``: scores a fan of constant-(v, w) arcs over ``arc_horizon`` seconds against the goal's
  cost-to-go field (clearance-aware, so it prefers the middle of passages) and the exact clearance of
  the body along each arc, and takes the best. A function of the pose alone (no path memory, no
  switching thresholds): where the pose gives the learner's observation, the label does too, which is
  what DAgger relabelling needs.

With ``arc_escape`` e > 0 the arcs law, closer than e to an obstacle (or boxed in), moves away from
it first: it creeps along the direction in which the clearance grows fastest when that lies within
45 degrees of its heading, else turns in place towards it (a recovery a learner can see in its lidar).

With ``slow_clearance`` c > 0 the pursuit law also scales its speed by the body's clearance over c (at
least 0.3) where that clearance is below c: a teacher that slows down near obstacles; the arcs law
scales the chosen arc's speed and turn rate (the same arc, driven slower) by the smallest clearance
along that arc the same way.

With ``sensing_rays`` n > 0 either law plans only on what a lidar fan of n rays (the env's field of view
and range, so n above the env's ray count sees what its rays see, densely) has shown it along the
drive so far: cells behind the first hit stay unknown and count as free. It looks every
``SENSE_EVERY`` control steps and replans when it sees an obstacle nearby or on its route: a teacher that
explores (heads for a doorway it has seen, drives along a wall towards the goal's side) where the
full-layout teacher drives straight to a doorway its lidar could not show, so its labels are a
function of what the learner has observed. With ``sensing_memory`` m > 0 (s) it also forgets: every
``FORGET_EVERY`` control steps the cells it has not seen for m seconds become unknown again (replanning if
that dropped an obstacle), a teacher whose map memory is as short as a learner's may be.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liquid_control.experts.planning import (
    Planner,
    SeenCells,
    arc_clearance_terms,
    check_sensing_rays,
    check_steering,
    connected_planner,
    lidar_fan,
    near_obstacle_speed_scale,
)

SENSE_EVERY = 2  # control steps between two looks of the sensing-limited teacher (sensing_rays > 0)
SENSE_NEAR = 1.0  # m: it replans when it sees an obstacle this close (where its arcs reach) or on its route
FORGET_EVERY = 20  # control steps between two forgettings of a teacher with a sensing_memory


class RoverExpert:
    """Controller protocol: ``reset(env, obs)``, ``act(obs)``, ``neuron_state()``."""

    def __init__(self, lookahead: float = 0.55, replan_distance: float = 0.35, k_turn: float = 2.5,
                 inflate: float = 0.36, clearance_weight: float = 0.0, clearance_range: float = 0.5,
                 steering: str = "pursuit", arc_horizon: float = 1.0, arc_margin: float = 0.04,
                 arc_clearance: float = 0.3, slow_clearance: float = 0.0, arc_escape: float = 0.0,
                 sensing_rays: int = 0, sensing_memory: float = 0.0) -> None:
        check_steering(steering, arc_horizon, arc_margin, arc_clearance)
        check_sensing_rays(sensing_rays)
        self.sensing_rays = sensing_rays  # > 0: plan only on what a lidar fan of this many rays has seen
        if not sensing_memory >= 0.0 or (sensing_memory > 0.0 and not sensing_rays):
            raise ValueError(f"sensing_memory must be >= 0 s (0: never forget) and needs sensing_rays > 0, "
                             f"got {sensing_memory} with sensing_rays={sensing_rays}")
        self.sensing_memory = float(sensing_memory)  # s; > 0: forget cells not seen for this long
        self.seen: SeenCells | None = None
        if not arc_escape >= 0.0:
            raise ValueError(f"arc_escape must be >= 0 (0: off), got {arc_escape}")
        self.arc_escape = float(arc_escape)  # m; arcs law: closer than this, move away first
        if not slow_clearance >= 0.0:
            raise ValueError(f"slow_clearance must be >= 0 (0: off), got {slow_clearance}")
        self.slow_clearance = float(slow_clearance)  # m; > 0: slow down closer than this (pursuit)
        self.steering = steering
        self.arc_horizon, self.arc_margin, self.arc_clearance = float(arc_horizon), float(arc_margin), \
            float(arc_clearance)
        if steering == "arcs" and clearance_weight == 0.0:  # the field keeps to the middle of passages
            clearance_weight, clearance_range = 2.0, 0.6
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
        if self.steering == "arcs":  # the field only needs the body to fit; clearance is scored per arc
            inflate = self.env.BODY_RADIUS + self.arc_margin
            self.planner = connected_planner(layout, start, inflate=inflate, **self.clearance)
            self._arcs = _arc_fan(self.env.state["spec"], self.arc_horizon)
        else:
            self.planner = connected_planner(layout, start, inflate=self.inflate, **self.clearance)
        self.replans = 0
        if self.sensing_rays:  # a fresh map every episode, on the full plan's grid (the true occupancy)
            self.seen = SeenCells(self.planner.grid)
            self.fan = lidar_fan(self.env, self.sensing_rays)
            self._plan_inflate = self.planner.inflate
            self._steps = 0
            self._sense(force=True)
        self.path = self.planner.path_from(start)

    def _sense(self, force: bool = False) -> None:
        """Look with the lidar fan (the env's field of view and range, ``sensing_rays`` rays); replan on
        what is known if that revealed an obstacle cell within ``SENSE_NEAR`` or on the current plan's
        route, or if ``force``."""
        env, st = self.env, self.env.state
        xy = np.asarray(st["position"][:2], dtype=float)
        self.seen.now = self._steps
        revealed = self.seen.see_fan(self.fan, xy, float(st["yaw"]))
        if self.sensing_memory and self._steps % FORGET_EVERY == 0:
            memory_steps = int(round(self.sensing_memory / env.dt))
            force = self.seen.forget(self._steps - memory_steps) > 0 or force
        if not force:
            if len(revealed) == 0:
                return
            nx = self.seen.known.shape[1]
            cells = self.seen.grid.to_xy(np.stack([revealed // nx, revealed % nx], 1))
            if not (np.hypot(*(cells - xy).T) < SENSE_NEAR).any():
                route = self.planner.cell_path(xy)
                if not np.isin(revealed, route[:, 0] * nx + route[:, 1]).any():
                    return
            self.replans += 1
        self.planner = connected_planner(env.layout, xy, inflate=self._plan_inflate, known=self.seen.known,
                                         **self.clearance)
        self.path = self.planner.path_from(xy)

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
        if self.sensing_rays:
            self._steps += 1
            if self._steps % SENSE_EVERY == 0:
                self._sense()
        if self.steering == "arcs":
            return self._act_arcs()
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
            if self.slow_clearance > 0.0:
                clear = float(self.env.scene.clearance(xy)) - self.env.BODY_RADIUS
                v *= near_obstacle_speed_scale(clear, self.slow_clearance)
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

    def _act_arcs(self) -> np.ndarray:
        """The best arc of the fan from the current pose (see the module docstring)."""
        env = self.env
        st = env.state
        spec = st["spec"]
        v, w, fx, fy, heading = self._arcs  # arc points in the body frame at yaw 0, (K, S)
        radius = env.BODY_RADIUS
        xy = np.asarray(st["position"][:2], dtype=float)
        yaw = float(st["yaw"])
        c, s = np.cos(yaw), np.sin(yaw)
        px, py = xy[0] + c * fx - s * fy, xy[1] + s * fx + c * fy
        clear = env.scene.clearance_many(np.stack([px.ravel(), py.ravel()], 1)).reshape(px.shape) - radius
        now = float(env.scene.clearance(xy)) - radius
        d_goal = float(np.hypot(*(np.asarray(st["goal"], dtype=float)[:2] - xy)))
        ok, crowding = arc_clearance_terms(clear, now, self.arc_margin, self.arc_clearance)
        end_h = yaw + heading
        ex, ey = px[:, -1], py[:, -1]
        d_end = self.planner.cost_to_go(ex, ey)
        reach = np.clip(np.nan_to_num(d_end, posinf=0.5), 0.0, 0.5)  # shorter near the goal
        with np.errstate(invalid="ignore"):
            d_ahead = self.planner.cost_to_go(ex + reach * np.cos(end_h), ey + reach * np.sin(end_h))
            facing = np.clip(np.nan_to_num(d_ahead - d_end, nan=0.5, posinf=0.5), -reach, reach)
        cost = d_end + 0.3 * facing + 0.5 * crowding + 0.05 * np.abs(w) / spec.max_turn
        cost = np.where(ok & np.isfinite(d_end), cost, np.inf)
        if self.arc_escape > 0.0 and (now < self.arc_escape or not np.isfinite(cost).any()):
            return self._escape(xy, yaw, spec)
        if not np.isfinite(cost).any():  # boxed in: turn in place towards the goal's side
            k = int(np.argmin(np.where(v == 0.0, np.nan_to_num(facing, nan=0.5), np.inf)))
        else:
            k = int(np.argmin(cost))
        vk, wk = min(float(v[k]), spec.max_speed * (0.25 + d_goal)), float(w[k])  # ease in on the goal
        if self.slow_clearance > 0.0:  # slower along arcs that pass close to obstacles (same curvature)
            scale = near_obstacle_speed_scale(float(clear[k].min()), self.slow_clearance)
            vk, wk = vk * scale, (wk * scale if vk > 0.0 else wk)
        return np.array([vk / spec.max_speed, wk / spec.max_turn], dtype=np.float32)

    def _escape(self, xy: np.ndarray, yaw: float, spec: Any) -> np.ndarray:
        """Move away from the nearest obstacle: creep along the direction in which the clearance grows
        fastest when it lies within 45 degrees of the heading, else turn in place towards it."""
        h = 0.02
        probe = xy + h * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        c = self.env.scene.clearance_many(probe)
        away = float(np.arctan2(c[2] - c[3], c[0] - c[1])) - yaw
        away = (away + np.pi) % (2 * np.pi) - np.pi
        if abs(away) <= np.pi / 4:
            v, w = 0.25 * spec.max_speed, float(np.clip(self.k_turn * away, -spec.max_turn, spec.max_turn))
        else:
            v, w = 0.0, float(np.sign(away)) * spec.max_turn
        return np.array([v / spec.max_speed, w / spec.max_turn], dtype=np.float32)

    def neuron_state(self) -> None:
        return None


def _arc_fan(spec: Any, horizon: float, steps: int = 10) -> tuple[np.ndarray, ...]:
    """Constant-(v, w) candidate arcs: (v, w) per arc, body-frame points (K, steps) after each of
    ``steps`` equal intervals of ``horizon`` seconds, and the heading change at the end."""
    vs = spec.max_speed * np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    ws = spec.max_turn * np.linspace(-1.0, 1.0, 13)
    v, w = (a.ravel() for a in np.meshgrid(vs, ws, indexing="ij"))
    t = horizon * np.arange(1, steps + 1) / steps
    th = w[:, None] * t[None]
    straight = np.abs(w) < 1e-9
    safe_w = np.where(straight, 1.0, w)[:, None]
    fx = np.where(straight[:, None], v[:, None] * t[None], v[:, None] * np.sin(th) / safe_w)
    fy = np.where(straight[:, None], 0.0, v[:, None] * (1.0 - np.cos(th)) / safe_w)
    return v, w, fx, fy, w * horizon
