"""Grid path planning on a layout's inflated occupancy grid (numpy + scipy, no torch).

A :class:`Planner` rasterises the layout once (obstacles grown by ``inflate``), computes the 8-connected
shortest-path field to the goal once (Dijkstra over the whole grid, vectorised in scipy; equivalent to
A* from every start at once), and then answers ``path_from(xy)`` for any position in microseconds, which
is what an expert needs to relabel states visited by a learner. Paths are smoothed by line-of-sight
shortcutting. :func:`shortest_path_length` gives the SPL reference length.

Opt-in *clearance-aware* planning (``clearance_weight`` w > 0): every move costs its length times
``1 + w·f(d)``, with ``d`` the distance (m) of the cells to the nearest inflated obstacle and
``f(d) = (1 - min(d, R)/R)²`` for ``R = clearance_range``, so paths run through the middle of doorways
and gaps and keep up to ``R`` beyond the inflation band where there is room; shortcuts then never bring
the path closer than ``min(R, the clearance of the stretch they replace)`` to an obstacle. With w = 0
(the default) nothing of this runs: grids, fields and paths are exactly the plain shortest paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt

from liquid_control.sim.layouts import (
    GRID_RESOLUTION,
    Grid,
    Layout,
    distance_field,
    edge_band,
    occupancy_grid,
)
from liquid_control.sim.sensors import PlanarRangeSensor, ring_directions


class Planner:
    """Shortest paths to one goal on one layout (grid and distance field cached)."""

    def __init__(self, layout: Layout, goal: Sequence[float] | None = None, inflate: float = 0.3,
                 resolution: float = GRID_RESOLUTION, clearance_weight: float = 0.0,
                 clearance_range: float = 0.5, known: np.ndarray | None = None) -> None:
        if not clearance_weight >= 0.0:
            raise ValueError(f"clearance_weight must be >= 0, got {clearance_weight}")
        if not clearance_range > 0.0:
            raise ValueError(f"clearance_range must be > 0, got {clearance_range}")
        self.layout = layout
        self.goal = np.asarray(layout.goal if goal is None else goal, dtype=float)[:2]
        self.inflate = float(inflate)
        self.clearance_weight = float(clearance_weight)
        self.clearance_range = float(clearance_range)
        self.grid: Grid = occupancy_grid(layout, resolution, inflate=self.inflate)
        if known is not None:  # plan on what is known: unknown cells count as free (the arena edge is known)
            if known.shape != self.grid.occ.shape:
                raise ValueError(f"known mask has shape {known.shape}, the grid {self.grid.occ.shape}")
            edge = edge_band(known.shape, self.inflate, resolution)
            self.grid = Grid(self.grid.occ & (known | edge), self.grid.origin, self.grid.res)
        goal_cell = self.grid.to_cell(self.goal)
        if self.grid.occ[goal_cell]:  # goal inside the inflated band: plan to the nearest free cell
            goal_cell = self._nearest_free(goal_cell)
        target = self.grid.to_xy(np.array([goal_cell]))[0]
        self.clearance: np.ndarray | None = None  # m from each free cell to the inflated band (w > 0)
        if self.clearance_weight > 0.0:
            self.clearance = distance_transform_edt(~self.grid.occ) * self.grid.res
            near = 1.0 - np.minimum(self.clearance, self.clearance_range) / self.clearance_range
            cost = 1.0 + self.clearance_weight * near**2
            self.dist, self.pred = distance_field(self.grid, target, cost=cost)
        else:
            self.dist, self.pred = distance_field(self.grid, target)
        self._finite = np.isfinite(self.dist)

    def _nearest_free(self, cell: tuple[int, int], mask: np.ndarray | None = None) -> tuple[int, int]:
        ok = ~self.grid.occ if mask is None else mask
        cand = np.argwhere(ok)
        if len(cand) == 0:
            raise ValueError(f"layout {self.layout.layout_id}: no free cell at inflation {self.inflate}")
        k = np.argmin(((cand - np.asarray(cell)) ** 2).sum(1))
        return int(cand[k, 0]), int(cand[k, 1])

    def cell_path(self, start: Sequence[float]) -> np.ndarray:
        """Grid cells (k, 2) from the (nearest reachable) start cell to the goal cell."""
        cell = self.grid.to_cell(start)
        if not self._finite[cell]:
            cell = self._nearest_free(cell, self._finite)
        nx = self.grid.occ.shape[1]
        pred = self.pred.ravel()
        cur = cell[0] * nx + cell[1]
        out = [cur]
        while pred[cur] >= 0:
            cur = int(pred[cur])
            out.append(cur)
        flat = np.asarray(out)
        return np.stack([flat // nx, flat % nx], axis=1)

    def line_free(self, p: np.ndarray, q: np.ndarray, keep: float = 0.0) -> bool:
        """True if the segment p-q crosses no occupied (inflated) cell, nor (``keep`` > 0, needs a
        clearance-aware planner) a cell closer than ``keep`` m to one."""
        n = int(np.ceil(np.hypot(*(q - p)) / (self.grid.res * 0.5))) + 1
        t = np.linspace(0.0, 1.0, n)[:, None]
        pts = p[None] + t * (q - p)[None]
        ix = ((pts[:, 0] - self.grid.origin[0]) / self.grid.res).astype(int)
        iy = ((pts[:, 1] - self.grid.origin[1]) / self.grid.res).astype(int)
        ny, nx = self.grid.occ.shape
        if ix.min() < 0 or iy.min() < 0 or ix.max() >= nx or iy.max() >= ny:
            return False
        if keep > 0.0:
            return bool(self.clearance[iy, ix].min() >= keep)
        return not self.grid.occ[iy, ix].any()

    def path_from(self, start: Sequence[float], smooth: bool = True) -> np.ndarray:
        """Waypoints (k, 2) from ``start`` (x, y) to the goal, smoothed by line-of-sight shortcuts."""
        start = np.asarray(start, dtype=float)[:2]
        cells = self.cell_path(start)
        pts = self.grid.to_xy(cells)
        at = np.arange(len(cells))  # index into ``cells`` of each point
        if len(cells) > 2:  # keep only the corners of the cell chain
            step = np.diff(cells, axis=0)
            turn = np.concatenate([[True], np.any(step[1:] != step[:-1], axis=1), [True]])
            pts, at = pts[turn], at[turn]
        pts = np.concatenate([start[None], pts[1:] if len(pts) > 1 else pts, self.goal[None]])
        at = np.concatenate([at[:1], at[1:] if len(at) > 1 else at, at[-1:]])
        if not smooth:
            return pts
        chain = None if self.clearance is None else self.clearance[cells[:, 0], cells[:, 1]]
        out = [pts[0]]
        i = 0
        while i < len(pts) - 1:
            j = i + 1
            while j + 1 < len(pts) and self._shortcut_ok(pts, at, chain, i, j + 1):
                j += 1
            out.append(pts[j])
            i = j
        return np.asarray(out)

    def _shortcut_ok(self, pts: np.ndarray, at: np.ndarray, chain: np.ndarray | None, i: int, j: int) -> bool:
        """May the path go straight from point i to point j? Plain planner: line of sight. Clearance-aware:
        also keep min(R, the clearance of the cell chain it replaces) from the inflated band."""
        if chain is None:
            return self.line_free(pts[i], pts[j])
        keep = min(self.clearance_range, float(chain[at[i]:at[j] + 1].min()))
        return self.line_free(pts[i], pts[j], keep=max(keep - 0.5 * self.grid.res, 1e-9))

    def cost_to_go(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of the distance field at points (x, y arrays), over the finite corners
        of their cell's neighbourhood (inf where all four are obstacle or unreachable)."""
        g, dist = self.grid, self.dist
        fx = (np.asarray(x, dtype=float) - g.origin[0]) / g.res - 0.5
        fy = (np.asarray(y, dtype=float) - g.origin[1]) / g.res - 0.5
        ny, nx = dist.shape
        ix = np.clip(np.floor(fx).astype(int), 0, nx - 2)
        iy = np.clip(np.floor(fy).astype(int), 0, ny - 2)
        tx, ty = np.clip(fx - ix, 0.0, 1.0), np.clip(fy - iy, 0.0, 1.0)
        num = np.zeros_like(tx)
        den = np.zeros_like(tx)
        for oy, ox, wgt in ((0, 0, (1 - tx) * (1 - ty)), (0, 1, tx * (1 - ty)), (1, 0, (1 - tx) * ty),
                            (1, 1, tx * ty)):
            d = dist[iy + oy, ix + ox]
            fin = np.isfinite(d)
            num += np.where(fin, d, 0.0) * wgt
            den += np.where(fin, wgt, 0.0)
        return np.where(den > 1e-9, num / np.maximum(den, 1e-9), np.inf)

    def length_from(self, start: Sequence[float]) -> float:
        """Length (m) of the smoothed path from ``start`` to the goal."""
        return path_length(self.path_from(start))


class SeenCells:
    """The cells of a planning grid that a range sensor has seen so far, for teachers that plan only on what
    their sensors could have told them (``Planner(known=seen.known)``: unseen cells count as free).

    ``grid`` is the true (inflated) occupancy grid; the ``see_*`` methods mark cells as seen and return the
    flat indices of the occupied cells they revealed, from which the expert decides whether to replan.
    A teacher with a bounded memory sets ``now`` (its clock, any unit) before looking and calls
    :meth:`forget` to drop the cells it has not seen since a given time."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.known = np.zeros_like(grid.occ)
        self.now = 0
        self.last_seen = np.full(grid.occ.shape, -1, dtype=np.int64)

    def _reveal(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        flat = np.unique(iy * self.known.shape[1] + ix)
        known, occ = self.known.ravel(), self.grid.occ.ravel()
        self.last_seen.ravel()[flat] = self.now
        new = flat[~known[flat]]
        known[new] = True
        return new[occ[new]]

    def forget(self, before: int) -> int:
        """Mark unknown every known cell last seen before time ``before``; return how many occupied cells
        that dropped (a plan that relied on them is stale)."""
        stale = self.known & (self.last_seen < before)
        self.known[stale] = False
        return int((stale & self.grid.occ).sum())

    def see_disk(self, xy: np.ndarray, radius: float) -> np.ndarray:
        """Every cell whose centre lies within ``radius`` of ``xy`` (occlusion ignored)."""
        g = self.grid
        (iy0, ix0), (iy1, ix1) = g.to_cell(xy - radius), g.to_cell(xy + radius)
        iy, ix = np.mgrid[iy0 : iy1 + 1, ix0 : ix1 + 1]
        cy = g.origin[1] + (iy + 0.5) * g.res - xy[1]
        cx = g.origin[0] + (ix + 0.5) * g.res - xy[0]
        inside = cy**2 + cx**2 <= radius * radius
        return self._reveal(iy[inside], ix[inside])

    def see_fan(self, fan: PlanarRangeSensor, xy: np.ndarray, heading: float) -> np.ndarray:
        """:meth:`see_rays` for the rays of ``fan`` (its scene, ray angles and range: see
        :func:`lidar_fan`) from ``xy`` with the body at ``heading``."""
        angles = fan.theta0 + heading + fan.dtheta * np.arange(fan.n)
        return self.see_rays(xy, angles, fan.cast_from(xy, heading), fan.max_range)

    def see_rays(self, xy: np.ndarray, angles: np.ndarray, hits: np.ndarray, max_range: float) -> np.ndarray:
        """The cells along horizontal rays from ``xy`` at world ``angles`` up to their hit distances
        ``hits`` (m), plus one cell past each hit (the obstacle's surface); nothing behind a hit."""
        g = self.grid
        t = np.arange(0.0, max_range + g.res, 0.5 * g.res)
        reach = np.minimum(np.asarray(hits, dtype=float) + g.res, max_range)
        px = xy[0] + np.cos(angles)[:, None] * t[None]
        py = xy[1] + np.sin(angles)[:, None] * t[None]
        ny, nx = self.known.shape
        ix = np.floor((px - g.origin[0]) / g.res).astype(int)
        iy = np.floor((py - g.origin[1]) / g.res).astype(int)
        keep = (t[None] <= reach[:, None]) & (ix >= 0) & (iy >= 0) & (ix < nx) & (iy < ny)
        return self._reveal(iy[keep], ix[keep])


def lidar_fan(env: Any, n: int) -> PlanarRangeSensor:
    """A ``PlanarRangeSensor`` of ``n`` horizontal rays with a nav env's lidar field of view and range (the
    angles of its own lidar when ``n`` is its ray count), cast on the env's scene: the eyes of a
    sensing-limited teacher (:meth:`SeenCells.see_fan`). Build one per episode (the scene changes)."""
    rays = env.options["rays"]
    return PlanarRangeSensor(env.scene, ring_directions(n, float(rays["fov"])), float(rays["range"]))


def path_length(points: np.ndarray) -> float:
    """Polyline length (m)."""
    points = np.asarray(points, dtype=float)
    return float(np.hypot(*np.diff(points[:, :2], axis=0).T).sum()) if len(points) > 1 else 0.0


def check_steering(steering: str, horizon: float, margin: float, soft: float) -> None:
    """ValueError unless the nav experts' steering options are valid ("pursuit" or "arcs"; an arc horizon
    > 0 s, a hard clearance margin >= 0 m and a soft clearance above it)."""
    if steering not in ("pursuit", "arcs"):
        raise ValueError(f"steering must be 'pursuit' or 'arcs', got {steering!r}")
    if not (horizon > 0.0 and margin >= 0.0 and soft > margin):
        raise ValueError("need arc_horizon > 0 and arc_clearance > arc_margin >= 0")


def check_sensing_rays(n: Any) -> None:
    """ValueError unless ``n`` (the nav experts' ``sensing_rays``: rays of the sensing-limited teacher's
    lidar fan, 0 = the layout is known) is an int >= 0."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sensing_rays must be an int >= 0 (0: the layout is known), got {n!r}")


def near_obstacle_speed_scale(clear: float, slow_clearance: float, floor: float = 0.3) -> float:
    """Speed factor of the experts' opt-in ``slow_clearance`` law: 1 with ``slow_clearance`` <= 0 (off) or
    a body clearance ``clear`` (m) above it, else ``clear / slow_clearance`` but at least ``floor``: a
    teacher that slows down near obstacles, so a learner's small steering errors cost less there."""
    if slow_clearance <= 0.0:
        return 1.0
    return float(min(1.0, max(floor, clear / slow_clearance)))


def arc_clearance_terms(clear: np.ndarray, now: float, margin: float, soft: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The clearance part of the experts' "arcs" steering, from the body's clearance (m) at the S points
    of K candidate motions (K, S) and where it is now: which candidates are allowed (they keep
    ``margin``, or, where a learner drove closer, do not get closer than ``now``) and each one's mean
    squared shortfall below ``soft``, in units of ``soft - margin``."""
    worst = clear.min(1)
    ok = (worst >= margin) | (worst >= now - 1e-3)
    near = np.clip((soft - clear) / (soft - margin), 0.0, None)
    return ok, (near**2).mean(1)


def connected_planner(layout: Layout, start: Sequence[float], goal: Sequence[float] | None = None,
                      inflate: float | None = None, resolution: float = GRID_RESOLUTION,
                      known: np.ndarray | None = None, **clearance: float) -> Planner:
    """A planner whose inflated grid connects ``start`` to the goal.

    Tries ``inflate`` (default: the layout's generation clearance), then values down to that clearance
    (at which generation guarantees the layout's own start and goal connect on this grid), then smaller
    ones (e.g. for a start a learner drove next to an obstacle). ``known``, ``clearance``: the
    :class:`Planner`'s known-cell mask and ``clearance_weight`` / ``clearance_range`` (default: the whole
    layout is known, plain shortest paths)."""
    clear = float(layout.knobs.get("clearance", 0.3))
    inflate = clear if inflate is None else float(inflate)
    tries = [inflate]
    if inflate > clear:
        tries += [0.5 * (inflate + clear), clear]
    tries += [f * min(inflate, clear) for f in (0.8, 0.6, 0.4, 0.2, 0.0)]
    for value in tries:
        planner = Planner(layout, goal, inflate=value, resolution=resolution, known=known, **clearance)
        if np.isfinite(planner.dist[planner.grid.to_cell(start)]):
            return planner
    raise ValueError(f"layout {layout.layout_id}: start {tuple(start)} cannot reach the goal")


def plan(layout: Layout, start: Sequence[float] | None = None, goal: Sequence[float] | None = None,
         inflate: float | None = None, resolution: float = GRID_RESOLUTION) -> np.ndarray:
    """Smoothed waypoints (k, 2) from start (default: the layout's) to goal on the inflated grid."""
    start = layout.start[:2] if start is None else start
    return connected_planner(layout, start, goal, inflate, resolution).path_from(start)


def shortest_path_length(layout: Layout, start: Sequence[float] | None = None,
                         goal: Sequence[float] | None = None, inflate: float | None = None,
                         resolution: float = GRID_RESOLUTION) -> float:
    """ℓ for SPL: the smoothed shortest collision-free path length (m) at clearance ``inflate``
    (default: the clearance the layout was generated for, i.e. the body radius plus a margin)."""
    return path_length(plan(layout, start, goal, inflate=inflate, resolution=resolution))
