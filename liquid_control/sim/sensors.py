"""Range sensing: ray fans cast with one ``rayTestBatch`` call (any direction) or exactly in the plane
on the layout's primitives (horizontal rays; much faster), plus noise/dropout and clearance helpers.

The planar casts and clearance queries run their arithmetic in compiled loops (``_cast_numba``, numba)
that give the same floats as the numpy formulation kept here (``compiled=False``; tests pin this)."""

from __future__ import annotations

import numpy as np
import pybullet as p

from liquid_control.sim.layouts import Layout

try:  # compiled loops of PlanarScene.cast (bit-identical to the numpy formulation below)
    from liquid_control.sim import _cast_numba
except ImportError:  # pragma: no cover - numba is a dependency; numpy fallback
    _cast_numba = None


def ring_directions(n: int, fov_deg: float = 360.0, up: int = 0, down: int = 0,
                    tilt_deg: float = 45.0) -> np.ndarray:
    """Unit ray directions in the body frame: ``n`` horizontal rays over ``fov_deg`` centred on +x
    (a full circle when fov is 360), plus ``up`` / ``down`` rays tilted by ``tilt_deg`` (one straight up /
    down when 1). Shape (n + up + down, 3)."""
    if n < 1:
        raise ValueError(f"a range sensor needs at least one horizontal ray, got {n}")
    if not 0 < fov_deg <= 360:
        raise ValueError(f"field of view must be in (0, 360] degrees, got {fov_deg}")
    fov = np.radians(fov_deg)
    if fov_deg >= 360:
        ang = -np.pi + (np.arange(n) + 0.5) * 2 * np.pi / n
    else:
        ang = np.linspace(-fov / 2, fov / 2, n) if n > 1 else np.zeros(1)
    dirs = [np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], axis=1)]
    for count, sign in ((up, 1.0), (down, -1.0)):
        if count == 1:
            dirs.append(np.array([[0.0, 0.0, sign]]))
        elif count > 1:
            a = 2 * np.pi * np.arange(count) / count
            t = np.radians(tilt_deg)
            ring = [np.cos(a) * np.cos(t), np.sin(a) * np.cos(t), np.full(count, sign * np.sin(t))]
            dirs.append(np.stack(ring, axis=1))
    return np.concatenate(dirs).astype(np.float64)


class _BodyRays:
    """Body-fixed rays (unit ``directions`` in the body frame, a mount ``offset``) and the geometry of the
    last scan; subclasses cast them."""

    def __init__(self, directions: np.ndarray, max_range: float, offset=(0.0, 0.0, 0.0)) -> None:
        if max_range <= 0:
            raise ValueError(f"sensor range must be > 0, got {max_range}")
        self.directions = np.asarray(directions, dtype=np.float64)
        self.max_range = float(max_range)
        self.offset = np.asarray(offset, dtype=np.float64)
        self._origin = np.zeros(3)
        self._dirs = np.zeros((len(self.directions), 3))  # world directions of the last scan

    @property
    def n(self) -> int:
        return len(self.directions)

    @property
    def last_from(self) -> np.ndarray:
        """Start points of the rays of the last scan, (n, 3)."""
        return np.broadcast_to(self._origin, self._dirs.shape)

    @property
    def last_to(self) -> np.ndarray:
        """End points of the full-length rays of the last scan, (n, 3) (built on demand: drawing, the
        rayTestBatch call; an exact cast does not need them)."""
        return self._origin + self._dirs * self.max_range

    @property
    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """(from, to) points (x, y) of the full-length rays of the last scan (for drawing)."""
        return np.asarray(self.last_from)[:, :2], np.asarray(self.last_to)[:, :2]

    def _place(self, position: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World origin and unit directions of the rays for a body at ``position`` with rotation matrix
        ``rotation`` (3x3); records them as the last scan's."""
        origin = position + rotation @ self.offset
        dirs = self.directions @ rotation.T
        self._origin, self._dirs = origin, dirs
        return origin, dirs


class RangeSensor(_BodyRays):
    """Rays from a body-mounted origin cast with PyBullet's ``rayTestBatch``; ``scan`` returns distances
    normalised to [0, 1] (1 = nothing hit). The envs cast exactly instead (:class:`ExactRangeSensor`,
    :class:`PlanarRangeSensor`); this one is their reference in the tests and the bench."""

    def __init__(self, client: int, directions: np.ndarray, max_range: float, offset=(0.0, 0.0, 0.0)) -> None:
        super().__init__(directions, max_range, offset)
        self.client = client

    def scan(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Cast all rays from ``position`` with body rotation matrix ``rotation`` (3x3); one PyBullet call."""
        origin, _ = self._place(position, rotation)
        to = self.last_to
        # lists of the same floats: PyBullet converts nested lists about twice as fast as numpy rows
        hits = p.rayTestBatch([origin.tolist()] * len(to), to.tolist(), physicsClientId=self.client)
        return np.array([h[2] for h in hits], dtype=np.float64)


def corrupt(readings: np.ndarray, rng: np.random.Generator, noise: float = 0.0,
            dropout: float = 0.0) -> np.ndarray:
    """Add Gaussian noise (std as a fraction of range) and drop rays (they read max range); clip to [0, 1]."""
    out = readings
    if noise > 0:
        out = out + rng.normal(0.0, noise, size=out.shape)
    if dropout > 0:
        out = np.where(rng.random(out.shape) < dropout, 1.0, out)
    return np.clip(out, 0.0, 1.0) if (noise > 0 or dropout > 0) else out


class PlanarScene:
    """A layout's obstacles as 2D primitives for exact planar ray casts and clearance queries in numpy.

    All obstacles are vertical extrusions from the ground, so for horizontal rays below the ceiling this
    equals ``rayTestBatch`` on the PyBullet world, at a fraction of its cost (no broadphase over long
    walls); the tests check both agree."""

    def __init__(self, layout: Layout) -> None:
        self.cyl = np.ascontiguousarray(layout.cylinders[:, :3], dtype=np.float64)
        b = layout.boxes
        self.box_c = np.ascontiguousarray(b[:, :2], dtype=np.float64)
        self.box_cos = np.cos(b[:, 2])
        self.box_sin = np.sin(b[:, 2])
        self.box_h = np.ascontiguousarray(b[:, 3:5], dtype=np.float64)
        self.box_reach = np.hypot(b[:, 3], b[:, 4])
        # corner offsets of every box in the world frame, (4, m)
        kx = np.array([1.0, 1.0, -1.0, -1.0])[:, None] * self.box_h[:, 0]
        ky = np.array([1.0, -1.0, 1.0, -1.0])[:, None] * self.box_h[:, 1]
        self.corner_x = self.box_cos * kx - self.box_sin * ky
        self.corner_y = self.box_sin * kx + self.box_cos * ky
        # contiguous columns and constants for clearance() (same values as the slices)
        self._cyl_x, self._cyl_y, self._cyl_r = (np.ascontiguousarray(self.cyl[:, i]) for i in range(3))
        self._box_x, self._box_y = (np.ascontiguousarray(self.box_c[:, i]) for i in range(2))
        self._box_hx, self._box_hy = (np.ascontiguousarray(self.box_h[:, i]) for i in range(2))
        self._box_nsin = -self.box_sin
        # constants of cast(): obstacle ids (twice, for partial fans) and negated half extents
        n_obs = len(self.cyl) + len(self.box_c)
        self._ids = np.arange(n_obs)
        self._ids2 = np.concatenate([self._ids, self._ids])
        self._box_nhx, self._box_nhy = -self._box_hx, -self._box_hy
        self._aranges: dict[int, np.ndarray] = {}
        self._work: dict[str, np.ndarray] | None = None  # buffers of the compiled cast
        # tops of the vertical prisms (every obstacle stands on z = 0), for cast_rays
        self._cyl_top = np.ascontiguousarray(layout.cylinders[:, 3], dtype=np.float64)
        self._box_top = np.ascontiguousarray(2.0 * b[:, 5], dtype=np.float64)

    def _cast_compiled(self, ox: float, oy: float, theta0: float, dtheta: float, n: int, full_circle: bool,
                       best: np.ndarray) -> np.ndarray:
        """:meth:`cast` with the arithmetic in compiled loops (``_cast_numba``) and the transcendental
        functions in numpy on the same arrays as the numpy formulation: the same floats."""
        w = self._work
        if w is None:  # work buffers, reused by every cast of this scene
            nc, nb = len(self.cyl), len(self.box_c)
            w = {k: np.empty(nc) for k in ("cx", "cy", "d2c", "dc", "asin_arg", "cen_c", "asin")}
            w.update({k: np.empty(nb) for k in ("bx", "by", "lx", "ly", "cen_b")})
            w.update({k: np.empty((4, nb)) for k in ("px", "py", "corner_ang")})
            w.update(inside=np.empty(nb, dtype=bool), lo=np.empty(nc + nb), hi=np.empty(nc + nb))
            self._work = w
        cn = _cast_numba
        cyl = (self._cyl_x, self._cyl_y, self._cyl_r)
        box = (self._box_x, self._box_y, self.box_cos, self.box_sin, self._box_hx, self._box_hy)
        cn.cast_prepare(ox, oy, *cyl, *box, self.corner_x, self.corner_y, w["cx"], w["cy"], w["d2c"], w["dc"],
                        w["asin_arg"], w["bx"], w["by"], w["lx"], w["ly"], w["inside"], w["px"], w["py"])
        np.arctan2(w["cy"], w["cx"], out=w["cen_c"])
        np.arcsin(w["asin_arg"], out=w["asin"])
        np.arctan2(w["by"], w["bx"], out=w["cen_b"])
        np.arctan2(w["py"], w["px"], out=w["corner_ang"])
        cn.cast_extents(theta0, self._cyl_r, w["dc"], w["cen_c"], w["asin"], w["cen_b"], w["corner_ang"],
                        w["inside"], w["lo"], w["hi"])
        k = self._aranges.get(n)
        if k is None:
            k = self._aranges[n] = np.arange(n)
        ray_ang = theta0 + k * dtheta  # the angles of the pairs' rays, once per ray
        cn.cast_pairs(w["lo"], w["hi"], len(self.cyl), bool(full_circle), int(n), float(dtheta),
                      np.cos(ray_ang), np.sin(ray_ang), w["cx"], w["cy"], self._cyl_r, w["d2c"], self.box_cos,
                      self.box_sin, self._box_nsin, self._box_hx, self._box_hy, self._box_nhx, self._box_nhy,
                      w["lx"], w["ly"], best)
        return best

    def cast(self, origin: np.ndarray, theta0: float, dtheta: float, n: int, max_range: float,
             full_circle: bool, compiled: bool = True) -> np.ndarray:
        """Hit distances (m; ``max_range`` when nothing is hit) of a fan of ``n`` horizontal rays at world
        angles ``theta0 + k * dtheta`` from ``origin``.

        Each obstacle covers a contiguous range of ray indices (from its angular extent seen from the
        origin), so only (ray, obstacle) pairs that can intersect are tested: all work is on short arrays.
        The pair tests run in a compiled loop when numba is available (``compiled``; same floats as the
        numpy formulation, which ``compiled=False`` selects)."""
        ox, oy = float(origin[0]), float(origin[1])
        best = np.empty(n)
        best.fill(float(max_range))
        if _cast_numba is not None and compiled:
            return self._cast_compiled(ox, oy, theta0, dtheta, n, full_circle, best)
        two_pi = 2 * np.pi
        # -- angular extent of every obstacle seen from the origin: centre angle +- half width
        cx = self.cyl[:, 0] - ox
        cy = self.cyl[:, 1] - oy
        r = self.cyl[:, 2]
        d2c = cx * cx + cy * cy
        dc = np.sqrt(d2c)
        cen_c = np.arctan2(cy, cx)
        half_c = np.where(dc > r, np.arcsin(np.minimum(r / np.maximum(dc, 1e-12), 1.0)), np.pi)
        bx = self.box_c[:, 0] - ox
        by = self.box_c[:, 1] - oy
        cs, sn, h = self.box_cos, self.box_sin, self.box_h
        cen_b = np.arctan2(by, bx)
        # corner angles relative to the centre direction (no range culling: far obstacles produce few
        # pairs, and skipping the culling saves more numpy calls than the pairs cost)
        rel = np.arctan2(by + self.corner_y, bx + self.corner_x) - cen_b
        rel = (rel + np.pi) % two_pi - np.pi
        lo_b, hi_b = rel.min(axis=0), rel.max(axis=0)
        lx = -(cs * bx + sn * by)  # origin in each box frame
        ly = sn * bx - cs * by
        inside = (np.abs(lx) <= h[:, 0]) & (np.abs(ly) <= h[:, 1])
        lo_b = np.where(inside, -np.pi, lo_b)
        hi_b = np.where(inside, np.pi, hi_b)
        # -- ray index ranges per obstacle
        lo = np.concatenate([cen_c - half_c, cen_b + lo_b]) - theta0
        hi = np.concatenate([cen_c + half_c, cen_b + hi_b]) - theta0
        ids = self._ids
        if full_circle:
            shift = np.floor(lo / two_pi) * two_pi
            lo, hi = lo - shift, hi - shift
            k_lo = np.ceil(lo / dtheta - 1e-9).astype(np.int64)
            k_hi = np.minimum(np.floor(hi / dtheta + 1e-9).astype(np.int64), k_lo + n - 1)
        else:  # the fan spans [0, (n-1) dtheta]; an extent may overlap it at lo or at lo + 2 pi
            width = hi - lo
            lo = (lo + np.pi) % two_pi - np.pi
            lo = np.concatenate([lo, lo + two_pi])
            hi = lo + np.concatenate([width, width])
            ids = self._ids2
            k_lo = np.maximum(np.ceil(lo / dtheta - 1e-9).astype(np.int64), 0)
            k_hi = np.minimum(np.floor(hi / dtheta + 1e-9).astype(np.int64), n - 1)
        counts = np.maximum(k_hi - k_lo + 1, 0)
        total = int(counts.sum())
        if total == 0:
            return best
        slot = np.repeat(np.arange(len(counts)), counts)
        starts = np.cumsum(counts) - counts
        k = k_lo[slot] + (np.arange(total) - starts[slot])
        owner = ids[slot]
        if full_circle:
            k %= n
        ang = theta0 + k * dtheta
        ux, uy = np.cos(ang), np.sin(ang)
        t = np.empty(total)
        nc = len(cx)
        pc = owner < nc
        if pc.any():  # circle pairs
            o = owner[pc]
            px, py, pr = cx[o], cy[o], r[o]
            proj = ux[pc] * px + uy[pc] * py
            c2 = d2c[o] - pr * pr
            disc = proj * proj - c2
            th = proj - np.sqrt(np.maximum(disc, 0.0))
            th = np.where((disc >= 0) & (th >= 0), th, np.inf)
            t[pc] = np.where(c2 < 0, 0.0, th)
        pb = ~pc
        if pb.any():  # box pairs: slab test in the box frame
            o = owner[pb] - nc
            ex, ey = ux[pb], uy[pb]
            cso = cs[o]
            vx = ex * cso + ey * sn[o]
            vy = ex * self._box_nsin[o] + ey * cso  # (-ex) * sin == ex * (-sin), exactly
            vx = np.where(np.abs(vx) < 1e-12, 1e-12, vx)
            vy = np.where(np.abs(vy) < 1e-12, 1e-12, vy)
            hx, hy, qx, qy = self._box_hx[o], self._box_hy[o], lx[o], ly[o]
            ax, bx2 = (self._box_nhx[o] - qx) / vx, (hx - qx) / vx
            ay, by2 = (self._box_nhy[o] - qy) / vy, (hy - qy) / vy
            tmin = np.maximum(np.minimum(ax, bx2), np.minimum(ay, by2))
            tmax = np.minimum(np.maximum(ax, bx2), np.maximum(ay, by2))
            t0 = np.maximum(tmin, 0.0)
            t[pb] = np.where(tmax >= t0, t0, np.inf)
        np.minimum.at(best, k, t)
        return best

    def cast_rays(self, origin: np.ndarray, dirs: np.ndarray, max_range: float,
                  compiled: bool = True) -> np.ndarray:
        """Hit distances (m; ``max_range`` when nothing is hit) of rays in any direction (unit ``dirs``,
        (n, 3), world frame) from ``origin`` (x, y, z) on the ground plane z = 0 and the obstacles as the
        vertical prisms they are (cylinders and yawed boxes from the ground to their height): exact, where
        ``rayTestBatch`` hits convex shapes within Bullet's collision margin. A prism is hit where the
        ray's intervals inside its footprint and inside its height overlap. In a compiled loop when numba
        is available (``compiled``), else this numpy formulation (the tests compare them)."""
        ox, oy, oz = (float(v) for v in origin[:3])
        dirs = np.ascontiguousarray(dirs, dtype=np.float64).reshape(-1, 3)
        if _cast_numba is not None and compiled:
            out = np.empty(len(dirs))
            _cast_numba.cast_prisms(ox, oy, oz, dirs, float(max_range), self._cyl_x, self._cyl_y, self._cyl_r,
                                    self._cyl_top, self._box_x, self._box_y, self.box_cos, self.box_sin,
                                    self._box_hx, self._box_hy, self._box_top, out)  # fmt: skip
            return out
        dx, dy, dz = dirs[:, :1], dirs[:, 1:2], dirs[:, 2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            best = np.where(dirs[:, 2] < 0.0, -oz / dirs[:, 2], np.inf)

            def height_interval(top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                flat = np.where((0.0 <= oz) & (oz <= top), -np.inf, np.inf)  # dz = 0: always or never
                z0 = np.where(dz > 0, -oz / dz, np.where(dz < 0, (top - oz) / dz, flat))
                z1 = np.where(dz > 0, (top - oz) / dz, np.where(dz < 0, -oz / dz, -flat))
                return z0, z1

            if len(self.cyl):
                z0, z1 = height_interval(self._cyl_top)
                px, py, r = ox - self._cyl_x, oy - self._cyl_y, self._cyl_r
                a = dx * dx + dy * dy
                c0 = px * px + py * py - r * r
                b = px * dx + py * dy
                disc = b * b - a * c0
                sq = np.sqrt(np.maximum(disc, 0.0))
                vertical = a < 1e-18
                f0 = np.where(vertical, np.where(c0 > 0, np.inf, -np.inf), (-b - sq) / a)
                f1 = np.where(vertical, np.where(c0 > 0, -np.inf, np.inf), (-b + sq) / a)
                f0 = np.where(~vertical & (disc < 0), np.inf, f0)
                lo = np.maximum(np.maximum(f0, z0), 0.0)
                hit = lo <= np.minimum(f1, z1)
                best = np.minimum(best, np.where(hit, lo, np.inf).min(1))
            if len(self.box_c):
                lo, hi = height_interval(self._box_top)
                lo = np.maximum(lo, 0.0)
                cs, sn = self.box_cos, self.box_sin
                wx, wy = ox - self._box_x, oy - self._box_y
                for q, v, h in ((cs * wx + sn * wy, cs * dx + sn * dy, self._box_hx),
                                (cs * wy - sn * wx, cs * dy - sn * dx, self._box_hy)):
                    par = np.abs(v) < 1e-12
                    t0, t1 = (-h - q) / v, (h - q) / v
                    lo = np.where(par, np.where(np.abs(q) > h, np.inf, lo),
                                  np.maximum(lo, np.minimum(t0, t1)))
                    hi = np.where(par, hi, np.minimum(hi, np.maximum(t0, t1)))
                best = np.minimum(best, np.where(lo <= hi, lo, np.inf).min(1))
        return np.minimum(best, float(max_range))

    def clearance(self, xy: np.ndarray, compiled: bool = True) -> float:
        """Distance (m) from ``xy`` to the nearest obstacle surface (negative inside one); in a compiled loop
        when numba is available (``compiled``; same floats as the numpy formulation)."""
        x, y = float(xy[0]), float(xy[1])
        if _cast_numba is not None and compiled:
            return _cast_numba.clearance(x, y, *self._clearance_geometry())
        return float(self.clearance_many(np.array([[x, y]]), compiled=False)[0])

    def _clearance_geometry(self) -> tuple[np.ndarray, ...]:
        """The obstacle arrays the compiled clearance loops take, in their order."""
        return (self._cyl_x, self._cyl_y, self._cyl_r, self._box_x, self._box_y, self.box_cos, self.box_sin,
                self._box_nsin, self._box_hx, self._box_hy)

    def clearance_many(self, points: np.ndarray, compiled: bool = True) -> np.ndarray:
        """:meth:`clearance` of each of the (P, 2) ``points`` at once (experts score many candidate motions
        per step with it); in a compiled loop when numba is available (``compiled``; same floats as
        the numpy formulation)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if _cast_numba is not None and compiled:
            out = np.empty(len(pts))
            _cast_numba.clearance_many(np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1]),
                                       *self._clearance_geometry(), out)
            return out
        best = np.full(len(pts), np.inf)
        x, y = pts[:, :1], pts[:, 1:]
        if len(self.cyl):
            best = (np.hypot(self._cyl_x - x, self._cyl_y - y) - self._cyl_r).min(1)
        if len(self.box_c):
            dx, dy = x - self._box_x, y - self._box_y
            cs = self.box_cos
            qx = np.abs(cs * dx + self.box_sin * dy) - self._box_hx
            qy = np.abs(self._box_nsin * dx + cs * dy) - self._box_hy
            d = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
            best = np.minimum(best, d.min(1))
        return best


class PlanarRangeSensor:
    """Same interface as :class:`RangeSensor` for a uniform horizontal fan (from :func:`ring_directions`),
    cast exactly on a :class:`PlanarScene`."""

    def __init__(self, scene: PlanarScene, directions: np.ndarray, max_range: float,
                 offset=(0.0, 0.0, 0.0)) -> None:
        directions = np.asarray(directions, dtype=np.float64)
        if np.any(np.abs(directions[:, 2]) > 1e-9):
            raise ValueError("a planar range sensor takes horizontal rays only")
        if max_range <= 0:
            raise ValueError(f"sensor range must be > 0, got {max_range}")
        ang = np.unwrap(np.arctan2(directions[:, 1], directions[:, 0]))
        n = len(ang)
        self.dtheta = float((ang[-1] - ang[0]) / (n - 1)) if n > 1 else 1.0
        if n > 1 and not np.allclose(np.diff(ang), self.dtheta, atol=1e-9):
            raise ValueError("a planar range sensor needs uniformly spaced ray angles")
        self.full_circle = n > 1 and abs(n * self.dtheta - 2 * np.pi) < 1e-6
        self.theta0 = float(ang[0])
        self.scene = scene
        self.directions = directions
        self.max_range = float(max_range)
        self.offset = np.asarray(offset, dtype=np.float64)
        self._origin = np.zeros(3)
        self._yaw = 0.0

    @property
    def n(self) -> int:
        return len(self.directions)

    def scan(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Normalised ranges for a body at ``position`` with a yaw-only ``rotation`` matrix."""
        origin = position + rotation @ self.offset
        yaw = float(np.arctan2(rotation[1, 0], rotation[0, 0]))
        self._origin = origin
        self._yaw = yaw
        return self.cast_from(origin, yaw) / self.max_range

    def cast_from(self, xy: np.ndarray, yaw: float) -> np.ndarray:
        """Hit distances (m; ``max_range`` when nothing is hit) of the rays from the horizontal point
        ``xy`` with the body at ``yaw``; ray k points at world angle ``theta0 + yaw + k * dtheta``."""
        return self.scene.cast(xy, self.theta0 + yaw, self.dtheta, self.n, self.max_range, self.full_circle)

    @property
    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """(from, to) points of the full-length rays of the last scan (for drawing)."""
        dirs = self.directions[:, :2]
        c, s = np.cos(self._yaw), np.sin(self._yaw)
        world = dirs @ np.array([[c, s], [-s, c]])
        return np.broadcast_to(self._origin[:2], world.shape), self._origin[:2] + world * self.max_range


class ExactRangeSensor(_BodyRays):
    """Same interface as :class:`RangeSensor` for rays in any direction (a ring with tilted rays, a depth
    image), cast exactly on a :class:`PlanarScene`'s prisms and the ground (:meth:`PlanarScene.cast_rays`)
    instead of with ``rayTestBatch``, whose call was half of a DroneNav step."""

    def __init__(self, scene: PlanarScene, directions: np.ndarray, max_range: float,
                 offset=(0.0, 0.0, 0.0)) -> None:
        super().__init__(directions, max_range, offset)
        self.scene = scene

    def scan(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Normalised ranges of all rays from ``position`` with body rotation matrix ``rotation`` (3x3)."""
        origin, dirs = self._place(position, rotation)
        return self.scene.cast_rays(origin, dirs, self.max_range) / self.max_range


def clearance(layout: Layout, xy: np.ndarray) -> float:
    """Distance (m) from point ``xy`` to the nearest obstacle surface of ``layout`` (2D, negative inside)."""
    return PlanarScene(layout).clearance(xy)
