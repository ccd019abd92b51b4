"""Procedural layouts: a :class:`Layout` is a pure function of (family, layout seed, knobs).

Obstacles are vertical extrusions from the ground (cylinders and yawed boxes) at least ``ceiling`` tall,
so planning in 2D is exact for the rover and for a drone flying below the ceiling. The grid helpers here
(:func:`occupancy_grid`, :func:`distance_field`) are the planner's grid: generation uses them to
guarantee that start and goal are free and connected, and ``experts.planning`` builds paths on them.

Families by body kind: rover ``forest`` / ``rooms`` / ``maze`` (with perimeter walls); drone ``forest`` /
``walls`` / ``city`` (``kind="drone"``: tall obstacles, no perimeter walls, the arena edge is a planning
border). Splits own disjoint layout-seed ranges (:data:`SPLITS`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import distance_transform_edt, label
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "val": (1_000_000, 2_000_000),
    "test": (2_000_000, 3_000_000),
}

ROVER_FAMILIES = ("forest", "rooms", "maze")
DRONE_FAMILIES = ("forest", "walls", "city")
FAMILIES = {"rover": ROVER_FAMILIES, "drone": DRONE_FAMILIES}

# per kind: arena side (m), obstacle ceiling (m), clearance used for the connectivity check (m)
KIND_DEFAULTS = {
    "rover": {"arena": 24.0, "ceiling": 1.0, "clearance": 0.3, "goal_distance": (5.0, 25.0)},
    "drone": {"arena": 30.0, "ceiling": 4.0, "clearance": 0.35, "goal_distance": (8.0, 20.0)},
}
GRID_RESOLUTION = 0.1  # m, the planner's default grid
MAX_ATTEMPTS = 50


@dataclass
class Layout:
    """A static scene: arena bounds, obstacles, start pose and goal (all in metres / radians)."""

    family: str
    seed: int
    kind: str
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax
    cylinders: np.ndarray  # (n, 4): x, y, radius, height
    boxes: np.ndarray  # (m, 6): x, y, yaw, half_x, half_y, half_z (box spans z in [0, 2*half_z])
    start: tuple[float, float, float]  # x, y, yaw
    goal: tuple[float, float]
    ceiling: float  # every obstacle is at least this tall
    geodesic: float = 0.0  # grid shortest-path length start -> goal at the generation clearance (m)
    knobs: dict = field(default_factory=dict)
    # geodesic distance-to-goal field on the generation grid (for reward shaping / time limits)
    geo_grid: Grid | None = field(default=None, repr=False)
    geo_dist: np.ndarray | None = field(default=None, repr=False)
    geo_pred: np.ndarray | None = field(default=None, repr=False)  # next cell towards the goal (flat)

    def geodesic_to_goal(self, xy: Sequence[float]) -> float:
        """Grid shortest-path distance (m) from ``xy`` to the goal; straight-line where unknown."""
        straight = math.hypot(xy[0] - self.goal[0], xy[1] - self.goal[1])
        if self.geo_grid is None or self.geo_dist is None:
            return straight
        d = float(self.geo_dist[self.geo_grid.to_cell(xy)])
        return max(d, straight) if np.isfinite(d) else straight

    @property
    def layout_id(self) -> str:
        return layout_id(self.family, self.seed)

    @property
    def n_obstacles(self) -> int:
        return len(self.cylinders) + len(self.boxes)

    def fingerprint(self) -> str:
        """A digest of the geometry (to compare layouts for equality)."""
        h = zlib.crc32(np.ascontiguousarray(self.cylinders, dtype=np.float64).tobytes())
        h = zlib.crc32(np.ascontiguousarray(self.boxes, dtype=np.float64).tobytes(), h)
        h = zlib.crc32(np.array([*self.start, *self.goal, *self.bounds]).tobytes(), h)
        return f"{h:08x}"


def layout_id(family: str, seed: int) -> str:
    """The id of a layout, e.g. ``"forest:2000017"``."""
    return f"{family}:{seed}"


def layout_seed_for(split: str, episode_seed: int) -> int:
    """Map any episode seed into the split's layout-seed range (so splits never share a layout)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    lo, hi = SPLITS[split]
    return lo + int(episode_seed) % (hi - lo)


def split_of(layout_seed: int) -> str:
    """The split owning a layout seed."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= layout_seed < hi:
            return name
    raise ValueError(f"layout seed {layout_seed} is outside every split")


# --------------------------------------------------------------------------------------------- grid
@dataclass
class Grid:
    """A boolean occupancy grid over the arena: ``occ[iy, ix]`` is cell centre (x0+(ix+.5)res, ...)."""

    occ: np.ndarray
    origin: tuple[float, float]
    res: float

    def to_cell(self, xy: Sequence[float]) -> tuple[int, int]:
        ny, nx = self.occ.shape
        ix = min(max(int((float(xy[0]) - self.origin[0]) / self.res), 0), nx - 1)
        iy = min(max(int((float(xy[1]) - self.origin[1]) / self.res), 0), ny - 1)
        return iy, ix

    def to_xy(self, cells: np.ndarray) -> np.ndarray:
        """(k, 2) array of (iy, ix) -> (k, 2) array of cell-centre (x, y)."""
        cells = np.asarray(cells)
        return np.stack([self.origin[0] + (cells[:, 1] + 0.5) * self.res,
                         self.origin[1] + (cells[:, 0] + 0.5) * self.res], axis=1)

    def free_at(self, xy: Sequence[float]) -> bool:
        return not self.occ[self.to_cell(xy)]


def occupancy_grid(layout: Layout, resolution: float = GRID_RESOLUTION, inflate: float = 0.0,
                   border: bool = True) -> Grid:
    """Rasterise the obstacles (grown by ``inflate``) and, if ``border``, the arena edge band."""
    xmin, ymin, xmax, ymax = layout.bounds
    nx = int(np.ceil((xmax - xmin) / resolution))
    ny = int(np.ceil((ymax - ymin) / resolution))
    occ = np.zeros((ny, nx), dtype=bool)
    xs = xmin + (np.arange(nx) + 0.5) * resolution
    ys = ymin + (np.arange(ny) + 0.5) * resolution

    def window(cx: float, cy: float, reach: float):
        ix0 = max(int((cx - reach - xmin) / resolution), 0)
        ix1 = min(int((cx + reach - xmin) / resolution) + 2, nx)
        iy0 = max(int((cy - reach - ymin) / resolution), 0)
        iy1 = min(int((cy + reach - ymin) / resolution) + 2, ny)
        return ix0, ix1, iy0, iy1

    for x, y, r, _ in layout.cylinders:
        ix0, ix1, iy0, iy1 = window(x, y, r + inflate)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        dx = xs[ix0:ix1][None, :] - x
        dy = ys[iy0:iy1][:, None] - y
        occ[iy0:iy1, ix0:ix1] |= dx * dx + dy * dy <= (r + inflate) ** 2
    for x, y, yaw, hx, hy, _ in layout.boxes:
        ix0, ix1, iy0, iy1 = window(x, y, np.hypot(hx, hy) + inflate)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        dx = xs[ix0:ix1][None, :] - x
        dy = ys[iy0:iy1][:, None] - y
        c, s = np.cos(yaw), np.sin(yaw)
        qx = np.abs(c * dx + s * dy) - hx
        qy = np.abs(-s * dx + c * dy) - hy
        dist = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
        occ[iy0:iy1, ix0:ix1] |= (dist <= inflate) & (np.maximum(qx, qy) <= inflate)
    if border:
        occ |= edge_band(occ.shape, inflate, resolution)
    return Grid(occ, (xmin, ymin), resolution)


def edge_band(shape: tuple[int, int], inflate: float, resolution: float) -> np.ndarray:
    """The cells of the arena-edge band of an occupancy grid (at least one cell, ``inflate`` wide)."""
    band = max(int(np.ceil(inflate / resolution)), 1)
    edge = np.zeros(shape, dtype=bool)
    edge[:band, :] = edge[-band:, :] = True
    edge[:, :band] = edge[:, -band:] = True
    return edge


def distance_field(grid: Grid, target: Sequence[float], cost: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Shortest 8-connected path length (m) from every cell to ``target`` (x, y), and predecessors.

    Returns ``(dist, pred)`` as (ny, nx) arrays; ``dist`` is inf where unreachable, ``pred`` holds the
    flat index of the next cell towards the target (-9999 at the target and unreachable cells).
    Diagonal moves never cut an occupied corner. ``cost`` (ny, nx; >= 1, optional) scales every move's
    length by the mean cost of its two cells (clearance-aware planning); None = plain lengths.
    """
    occ = grid.occ
    ny, nx = occ.shape
    free = ~occ
    idx = np.arange(ny * nx).reshape(ny, nx)
    diag = free[:-1, :-1] & free[1:, 1:] & free[:-1, 1:] & free[1:, :-1]
    s2 = np.sqrt(2.0)
    # E, N, NE, NW neighbours (undirected graph)
    moves = ((np.s_[:, :-1], np.s_[:, 1:], free[:, :-1] & free[:, 1:], 1.0),
             (np.s_[:-1, :], np.s_[1:, :], free[:-1, :] & free[1:, :], 1.0),
             (np.s_[:-1, :-1], np.s_[1:, 1:], diag, s2), (np.s_[:-1, 1:], np.s_[1:, :-1], diag, s2))
    rows, cols, wts = [], [], []
    for a, b, mask, length in moves:
        rows.append(idx[a][mask])
        cols.append(idx[b][mask])
        wts.append(np.full(int(mask.sum()), length) if cost is None
                   else length * 0.5 * (cost[a][mask] + cost[b][mask]))
    w = np.concatenate(wts) * grid.res
    graph = coo_matrix((w, (np.concatenate(rows), np.concatenate(cols))), shape=(ny * nx, ny * nx)).tocsr()
    iy, ix = grid.to_cell(target)
    dist, pred = dijkstra(graph, directed=False, indices=iy * nx + ix, return_predecessors=True)
    dist = dist.reshape(ny, nx)
    if occ[iy, ix]:
        dist[:] = np.inf
    return dist, pred.reshape(ny, nx)


def route_ahead(layout: Layout, metres: float) -> np.ndarray:
    """For every cell of the layout's geodesic grid, the cell about ``metres`` further along the shortest
    route to the goal, as (ny, nx, 2) cell-centre coordinates: a route command (privileged, from the map).

    Cells inside the inflated obstacles, from which no route starts, take the value of their nearest
    free cell; cells whose route ends sooner (near the goal) point at the goal."""
    grid, pred, dist = layout.geo_grid, layout.geo_pred, layout.geo_dist
    if grid is None or pred is None or dist is None:
        raise ValueError("this layout has no geodesic field (route_ahead needs one from generate())")
    ny, nx = pred.shape
    flat = np.arange(ny * nx)
    nxt = pred.ravel().copy()
    stay = nxt < 0  # the goal cell and unreachable cells
    nxt[stay] = flat[stay]
    ahead = flat.copy()
    for _ in range(max(0, int(round(metres / grid.res)))):
        ahead = nxt[ahead]
    reach = np.isfinite(dist)
    if reach.any() and not reach.all():  # unreachable cells (inside obstacles): their nearest reachable cell
        _, (iy, ix) = distance_transform_edt(~reach, return_indices=True)
        ahead = ahead.reshape(ny, nx)[iy, ix].ravel()
    cells = np.stack(np.unravel_index(ahead, (ny, nx)), axis=1)
    xy = grid.to_xy(cells).reshape(ny, nx, 2)
    gcell = grid.to_cell(layout.goal)
    xy[ahead.reshape(ny, nx) == gcell[0] * nx + gcell[1]] = layout.goal
    return xy


# --------------------------------------------------------------------------------------- families
def _rng(family: str, seed: int, attempt: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(family.encode()), int(seed), attempt])


def _wall(x0: float, y0: float, x1: float, y1: float, half_t: float, h: float) -> list[float]:
    """A box wall from (x0, y0) to (x1, y1)."""
    length = float(np.hypot(x1 - x0, y1 - y0))
    yaw = float(np.arctan2(y1 - y0, x1 - x0))
    return [(x0 + x1) / 2, (y0 + y1) / 2, yaw, length / 2 + half_t, half_t, h / 2]


def _perimeter(a: float, h: float, half_t: float = 0.1) -> list[list[float]]:
    m = a / 2 + half_t
    return [_wall(-m, -m, m, -m, half_t, h), _wall(-m, m, m, m, half_t, h),
            _wall(-m, -m, -m, m, half_t, h), _wall(m, -m, m, m, half_t, h)]


def _scatter(rng, n: int, a: float, scale: float, h: float, cyl_frac: float = 0.6,
             rmin: float = 0.15, rmax: float = 0.45, margin: float = 0.5) -> tuple[list, list]:
    """``n`` mixed cylinders and yawed boxes uniformly in the arena."""
    cyl, box = [], []
    for _ in range(n):
        x, y = rng.uniform(-a / 2 + margin, a / 2 - margin, size=2)
        if rng.random() < cyl_frac:
            cyl.append([x, y, rng.uniform(rmin, rmax) * scale, h * rng.uniform(1.0, 1.5)])
        else:
            hx, hy = rng.uniform(rmin, rmax * 1.3, size=2) * scale
            box.append([x, y, rng.uniform(-np.pi, np.pi), hx, hy, h * rng.uniform(1.0, 1.5) / 2])
    return cyl, box


def _gen_forest(rng, a, density, scale, h, kind):
    n = int(round(density * a * a * (0.35 if kind == "rover" else 0.25)))
    if kind == "rover":
        cyl, box = _scatter(rng, n, a, scale, h)
        return cyl, box + _perimeter(a, h)
    cyl, _ = _scatter(rng, n, a, scale, h, cyl_frac=1.0, rmin=0.15, rmax=0.4)
    return cyl, []


def _gen_rooms(rng, a, density, scale, h, kind):
    n = int(rng.integers(4, 6))  # rooms per side
    size = a / n
    half_t = 0.08
    edges = []  # (cell a, cell b, orientation) for internal walls
    for i in range(n):
        for j in range(n):
            if i + 1 < n:
                edges.append(((i, j), (i + 1, j)))
            if j + 1 < n:
                edges.append(((i, j), (i, j + 1)))
    # spanning tree by randomized Kruskal -> every room reachable; extra doors make loops
    parent = {(i, j): (i, j) for i in range(n) for j in range(n)}

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    door = set()
    for k in rng.permutation(len(edges)):
        u, v = edges[k]
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            door.add(k)
        elif rng.random() < 0.3:
            door.add(k)
    box = _perimeter(a, h)
    lo = -a / 2
    for k, ((i, j), (i2, _)) in enumerate(edges):
        if i2 == i + 1:  # wall at x = lo + (i+1) size, spanning y of row j
            x = lo + (i + 1) * size
            y0, y1 = lo + j * size, lo + (j + 1) * size
            segs = [(x, y0, x, y1)]
        else:
            y = lo + (j + 1) * size
            x0, x1 = lo + i * size, lo + (i + 1) * size
            segs = [(x0, y, x1, y)]
        for (sx0, sy0, sx1, sy1) in segs:
            length = np.hypot(sx1 - sx0, sy1 - sy0)
            if k in door:
                w = rng.uniform(1.0, 1.4)
                c = rng.uniform(0.4 + w / 2, length - 0.4 - w / 2)
                ux, uy = (sx1 - sx0) / length, (sy1 - sy0) / length
                for p0, p1 in ((0.0, c - w / 2), (c + w / 2, length)):
                    box.append(_wall(sx0 + ux * p0, sy0 + uy * p0, sx0 + ux * p1, sy0 + uy * p1, half_t, h))
            else:
                box.append(_wall(sx0, sy0, sx1, sy1, half_t, h))
    # clutter (furniture) inside rooms, kept off the walls
    cyl = []
    for i in range(n):
        for j in range(n):
            for _ in range(rng.poisson(density * 4)):
                x = lo + i * size + rng.uniform(1.0, size - 1.0)
                y = lo + j * size + rng.uniform(1.0, size - 1.0)
                if rng.random() < 0.5:
                    cyl.append([x, y, rng.uniform(0.15, 0.35) * scale, h])
                else:
                    hx, hy = rng.uniform(0.15, 0.45, size=2) * scale
                    box.append([x, y, rng.uniform(-np.pi, np.pi), hx, hy, h / 2])
    return cyl, box


def _gen_maze(rng, a, density, scale, h, kind):
    cell = 2.0
    n = int(a // cell)
    lo = -n * cell / 2
    half_t = 0.08
    # walls: vertical v[i, j] between cell (i-1, j) and (i, j), i in 0..n; horizontal hz[i, j], j in 0..n
    v = np.ones((n + 1, n), dtype=bool)
    hz = np.ones((n, n + 1), dtype=bool)
    seen = np.zeros((n, n), dtype=bool)
    stack = [(int(rng.integers(n)), int(rng.integers(n)))]
    seen[stack[0]] = True
    while stack:
        i, j = stack[-1]
        nbrs = [(di, dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
                if 0 <= i + di < n and 0 <= j + dj < n and not seen[i + di, j + dj]]
        if not nbrs:
            stack.pop()
            continue
        di, dj = nbrs[int(rng.integers(len(nbrs)))]
        if di:
            v[max(i, i + di), j] = False
        else:
            hz[i, max(j, j + dj)] = False
        seen[i + di, j + dj] = True
        stack.append((i + di, j + dj))
    # a few loops: knock out ~8% of the inner walls
    v[1:-1][rng.random((n - 1, n)) < 0.08] = False
    hz[:, 1:-1][rng.random((n, n - 1)) < 0.08] = False
    box = []
    # merge runs of consecutive wall segments into long boxes
    for i in range(n + 1):
        j = 0
        while j < n:
            if v[i, j]:
                k = j
                while k + 1 < n and v[i, k + 1]:
                    k += 1
                x = lo + i * cell
                box.append(_wall(x, lo + j * cell, x, lo + (k + 1) * cell, half_t, h))
                j = k + 1
            else:
                j += 1
    for j in range(n + 1):
        i = 0
        while i < n:
            if hz[i, j]:
                k = i
                while k + 1 < n and hz[k + 1, j]:
                    k += 1
                y = lo + j * cell
                box.append(_wall(lo + i * cell, y, lo + (k + 1) * cell, y, half_t, h))
                i = k + 1
            else:
                i += 1
    cyl = []
    for _ in range(rng.poisson(density * n * n * 0.15)):
        i, j = rng.integers(n, size=2)
        x = lo + (i + 0.5) * cell + rng.uniform(-0.4, 0.4)
        y = lo + (j + 0.5) * cell + rng.uniform(-0.4, 0.4)
        cyl.append([x, y, rng.uniform(0.08, 0.2) * scale, h])
    return cyl, box


def _gen_walls(rng, a, density, scale, h, kind):
    """Drone: walls across the arena (along y) with 1-2 gaps each, plus a few pillars."""
    n_walls = max(1, int(round(2 + density * 8)))
    xs = np.sort(rng.uniform(-a / 2 + 3.0, a / 2 - 3.0, size=n_walls))
    keep = [xs[0]]
    for x in xs[1:]:
        if x - keep[-1] >= 2.0:
            keep.append(x)
    box = []
    half_t = 0.1 * max(scale, 0.5)
    for x in keep:
        gaps = sorted(rng.uniform(-a / 2 + 2, a / 2 - 2, size=int(rng.integers(1, 3))))
        widths = rng.uniform(1.4, 2.2, size=len(gaps))
        y = -a / 2
        for g, w in zip(gaps, widths, strict=True):
            if g - w / 2 > y + 0.2:
                box.append(_wall(x, y, x, g - w / 2, half_t, h * 1.5))
            y = max(y, g + w / 2)
        if a / 2 - y > 0.2:
            box.append(_wall(x, y, x, a / 2, half_t, h * 1.5))
    cyl, _ = _scatter(rng, int(round(density * a * a * 0.03)), a, scale, h, cyl_frac=1.0,
                      rmin=0.15, rmax=0.35)
    return cyl, box


def _gen_city(rng, a, density, scale, h, kind):
    """Drone: boxes ('buildings') of varied footprint and height on a jittered block grid."""
    block = 4.0
    n = int(a // block)
    lo = -n * block / 2
    box = []
    for i in range(n):
        for j in range(n):
            if rng.random() > 0.25 + 0.6 * density:
                continue
            hx, hy = rng.uniform(0.4, 1.3, size=2) * scale
            x = lo + (i + 0.5) * block + rng.uniform(-0.5, 0.5)
            y = lo + (j + 0.5) * block + rng.uniform(-0.5, 0.5)
            box.append([x, y, rng.uniform(-0.3, 0.3), hx, hy, h * rng.uniform(1.0, 2.5) / 2])
    return [], box


_GENERATORS = {
    ("rover", "forest"): _gen_forest, ("rover", "rooms"): _gen_rooms, ("rover", "maze"): _gen_maze,
    ("drone", "forest"): _gen_forest, ("drone", "walls"): _gen_walls, ("drone", "city"): _gen_city,
}


def generate(family: str, seed: int, kind: str = "rover", density: float = 0.3, obstacle_scale: float = 1.0,
             goal_distance: Sequence[float] | None = None, arena: float | None = None,
             clearance: float | None = None, ceiling: float | None = None, fence: bool = False) -> Layout:
    """Build the layout of ``family`` for ``seed`` (deterministic; retried with derived streams).

    ``density`` (>= 0) scales the amount of clutter, ``obstacle_scale`` (> 0) obstacle sizes,
    ``goal_distance`` the straight-line start-goal range (m); start and goal are free at ``clearance``
    and connected on the planner's grid. ``fence`` (drone kinds; rover families always have perimeter
    walls) adds the arena edge as four walls just outside the bounds, so range sensors see it: the same
    layout otherwise (same obstacles, start and goal)."""
    if kind not in FAMILIES:
        raise ValueError(f"unknown layout kind {kind!r}; choose from {list(FAMILIES)}")
    if family not in FAMILIES[kind]:
        raise ValueError(f"unknown {kind} layout family {family!r}; choose from {list(FAMILIES[kind])}")
    if density < 0 or obstacle_scale <= 0:
        raise ValueError(f"density must be >= 0 and obstacle_scale > 0, got {density}, {obstacle_scale}")
    if fence and kind != "drone":
        raise ValueError(f"fence is a drone layout option ({kind} families have perimeter walls)")
    d = KIND_DEFAULTS[kind]
    a = float(arena or d["arena"])
    h = float(ceiling or d["ceiling"])
    clear = float(d["clearance"] if clearance is None else clearance)
    gmin, gmax = (goal_distance or d["goal_distance"])
    gen = _GENERATORS[(kind, family)]
    knobs = {"density": density, "obstacle_scale": obstacle_scale, "goal_distance": [gmin, gmax],
             "arena": a, "clearance": clear}
    if fence:
        knobs["fence"] = True
    for attempt in range(MAX_ATTEMPTS):
        rng = _rng(family, seed, attempt)
        # fewer obstacles on later attempts so over-dense knobs still terminate
        dens = density * (1.0 - attempt / MAX_ATTEMPTS)
        cyl, box = gen(rng, a, dens, obstacle_scale, h, kind)
        if fence:
            box = box + _perimeter(a, h)
        layout = Layout(family, int(seed), kind, (-a / 2, -a / 2, a / 2, a / 2),
                        np.asarray(cyl, dtype=np.float64).reshape(-1, 4),
                        np.asarray(box, dtype=np.float64).reshape(-1, 6),
                        (0.0, 0.0, 0.0), (0.0, 0.0), h, 0.0, knobs)
        grid = occupancy_grid(layout, GRID_RESOLUTION, inflate=clear)
        free = np.argwhere(~grid.occ)
        if len(free) < 10:
            continue
        gcell = free[rng.integers(len(free))]
        goal = grid.to_xy(gcell[None])[0]
        # the planner's 8-connected moves never cut corners, so its connectivity is 4-connectivity
        comp, _ = label(~grid.occ)
        cand = np.argwhere(comp == comp[gcell[0], gcell[1]])
        xy = grid.to_xy(cand)
        sl = np.hypot(xy[:, 0] - goal[0], xy[:, 1] - goal[1])
        ok = np.flatnonzero((sl >= gmin) & (sl <= gmax))
        if len(ok) == 0:
            continue
        k = ok[rng.integers(len(ok))]
        yaw = float(rng.uniform(-np.pi, np.pi))
        layout.start = (float(xy[k, 0]), float(xy[k, 1]), yaw)  # cell centres of the planner's grid
        layout.goal = (float(goal[0]), float(goal[1]))
        # geodesic distance-to-goal field on a coarser, slightly less inflated grid (for shaping and
        # time limits; cheap, and connected wherever the fine grid is)
        coarse = occupancy_grid(layout, 2 * GRID_RESOLUTION, inflate=0.7 * clear)
        dist, pred = distance_field(coarse, goal)
        geo = float(dist[coarse.to_cell(layout.start[:2])])
        layout.geodesic = geo if np.isfinite(geo) else float(1.5 * sl[k])
        layout.geo_grid, layout.geo_dist, layout.geo_pred = coarse, dist, pred
        return layout
    raise ValueError(f"could not generate a connected {family} layout for seed {seed} with knobs {knobs}")
