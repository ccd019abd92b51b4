"""Compiled (numba) inner loops of :class:`liquid_control.sim.sensors.PlanarScene`'s casts and clearance.

It takes the per-obstacle angular extents and geometry that ``cast`` computes with numpy (all the
transcendental functions stay in numpy, so their results are numpy's) and does the rest (ray index ranges,
the (ray, obstacle) pair tests and the per-ray minimum) in one loop, with the same float operations in
the same order as the numpy formulation (no fastmath, so no fused multiply-adds): the readings are
bit-identical to it (``tests/sim/test_sensors.py`` checks this on many random casts).
``cast_prisms`` (rays in any direction on the prisms and the ground, ``PlanarScene.cast_rays``) is a
plain loop over (ray, obstacle) pairs; it agrees with its numpy formulation to rounding (tested).
Import fails cleanly when numba is missing; the methods then use their numpy formulations.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}


@numba.njit(**_OPTS)
def cast_prepare(ox: float, oy: float, cyl_x: np.ndarray, cyl_y: np.ndarray, cyl_r: np.ndarray,
                 box_x: np.ndarray, box_y: np.ndarray, cs: np.ndarray, sn: np.ndarray, hx: np.ndarray,
                 hy: np.ndarray, corner_x: np.ndarray, corner_y: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                 d2c: np.ndarray, dc: np.ndarray, asin_arg: np.ndarray, bx: np.ndarray, by: np.ndarray,
                 lx: np.ndarray, ly: np.ndarray, inside: np.ndarray, px: np.ndarray,
                 py: np.ndarray) -> None:  # pragma: no cover - compiled (tested through cast())
    """The arithmetic before the transcendental functions, into the given buffers: obstacle centres
    relative to the origin (cylinders ``cx, cy, d2c, dc`` and the ``arcsin`` argument of their angular
    half width; boxes ``bx, by``, corners ``px, py`` (4, m)), the origin in every box frame and whether it
    is inside the box."""
    for j in range(len(cyl_x)):
        x = cyl_x[j] - ox
        y = cyl_y[j] - oy
        cx[j] = x
        cy[j] = y
        d2 = x * x + y * y
        d2c[j] = d2
        d = math.sqrt(d2)
        dc[j] = d
        q = cyl_r[j] / (d if d > 1e-12 else 1e-12)
        asin_arg[j] = q if q < 1.0 else 1.0
    for j in range(len(box_x)):
        x = box_x[j] - ox
        y = box_y[j] - oy
        bx[j] = x
        by[j] = y
        for i in range(4):
            px[i, j] = x + corner_x[i, j]
            py[i, j] = y + corner_y[i, j]
        c = cs[j]
        s = sn[j]
        u = -(c * x + s * y)
        v = s * x - c * y
        lx[j] = u
        ly[j] = v
        inside[j] = abs(u) <= hx[j] and abs(v) <= hy[j]


@numba.njit(**_OPTS)
def cast_extents(theta0: float, r: np.ndarray, dc: np.ndarray, cen_c: np.ndarray, asin_v: np.ndarray,
                 cen_b: np.ndarray, corner_ang: np.ndarray, inside: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> None:  # pragma: no cover - compiled (tested through cast())
    """Angular extent [lo, hi] (minus ``theta0``) of every obstacle, cylinders first, from the numpy
    ``arctan2`` / ``arcsin`` results: centre angle +- half width (a half turn around an origin inside)."""
    pi = np.pi
    two_pi = 2 * np.pi
    nc = len(r)
    for j in range(nc):
        h = asin_v[j] if dc[j] > r[j] else pi
        lo[j] = (cen_c[j] - h) - theta0
        hi[j] = (cen_c[j] + h) - theta0
    for j in range(len(cen_b)):
        cb = cen_b[j]
        if inside[j]:
            a = -pi
            b = pi
        else:
            a = np.inf
            b = -np.inf
            for i in range(4):
                rel = (corner_ang[i, j] - cb + pi) % two_pi - pi
                if rel < a:
                    a = rel
                if rel > b:
                    b = rel
        lo[nc + j] = (cb + a) - theta0
        hi[nc + j] = (cb + b) - theta0


@numba.njit(**_OPTS)
def cast_pairs(lo: np.ndarray, hi: np.ndarray, n_cyl: int, full_circle: bool, n: int, dtheta: float,
               ux_all: np.ndarray, uy_all: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
               d2c: np.ndarray, cs: np.ndarray, sn: np.ndarray, nsin: np.ndarray, hx: np.ndarray,
               hy: np.ndarray, nhx: np.ndarray, nhy: np.ndarray, lx: np.ndarray, ly: np.ndarray,
               best: np.ndarray) -> None:  # pragma: no cover - compiled (tested through cast())
    """Lower ``best[k]`` (hit distance of ray k, m) to every obstacle hit of ray k. Obstacle j (cylinders
    first, then boxes) spans world angles [lo[j], hi[j]] (already minus the fan's start angle theta0);
    ``ux_all[k], uy_all[k]`` is the unit direction of ray k, at angle theta0 + k * dtheta."""
    two_pi = 2 * np.pi
    pi = np.pi
    inf = np.inf
    m = len(lo)
    copies = 1 if full_circle else 2
    for c in range(copies):
        for j in range(m):
            if full_circle:
                shift = math.floor(lo[j] / two_pi) * two_pi
                a = lo[j] - shift
                b = hi[j] - shift
                k_lo = np.int64(math.ceil(a / dtheta - 1e-9))
                k_hi = np.int64(math.floor(b / dtheta + 1e-9))
                if k_lo + n - 1 < k_hi:
                    k_hi = k_lo + n - 1
            else:  # the fan spans [0, (n-1) dtheta]; an extent may overlap it at lo or at lo + 2 pi
                width = hi[j] - lo[j]
                a = (lo[j] + pi) % two_pi - pi
                if c == 1:
                    a = a + two_pi
                b = a + width
                k_lo = np.int64(math.ceil(a / dtheta - 1e-9))
                if k_lo < 0:
                    k_lo = 0
                k_hi = np.int64(math.floor(b / dtheta + 1e-9))
                if k_hi > n - 1:
                    k_hi = n - 1
            for k in range(k_lo, k_hi + 1):
                kk = k % n if full_circle else k
                ux = ux_all[kk]
                uy = uy_all[kk]
                if j < n_cyl:  # circle pair
                    px = cx[j]
                    py = cy[j]
                    pr = r[j]
                    proj = ux * px + uy * py
                    c2 = d2c[j] - pr * pr
                    disc = proj * proj - c2
                    th = proj - math.sqrt(disc if disc > 0.0 else 0.0)
                    if not (disc >= 0 and th >= 0):
                        th = inf
                    t = 0.0 if c2 < 0 else th
                else:  # box pair: slab test in the box frame
                    o = j - n_cyl
                    cso = cs[o]
                    vx = ux * cso + uy * sn[o]
                    vy = ux * nsin[o] + uy * cso
                    if abs(vx) < 1e-12:
                        vx = 1e-12
                    if abs(vy) < 1e-12:
                        vy = 1e-12
                    qx = lx[o]
                    qy = ly[o]
                    ax = (nhx[o] - qx) / vx
                    bx2 = (hx[o] - qx) / vx
                    ay = (nhy[o] - qy) / vy
                    by2 = (hy[o] - qy) / vy
                    tmin = max(min(ax, bx2), min(ay, by2))
                    tmax = min(max(ax, bx2), max(ay, by2))
                    t0 = tmin if tmin > 0.0 else 0.0
                    t = t0 if tmax >= t0 else inf
                if t < best[kk]:
                    best[kk] = t


@numba.njit(**_OPTS)
def clearance(x: float, y: float, cyl_x: np.ndarray, cyl_y: np.ndarray, cyl_r: np.ndarray, box_x: np.ndarray,
              box_y: np.ndarray, cs: np.ndarray, sn: np.ndarray, nsin: np.ndarray, hx: np.ndarray,
              hy: np.ndarray) -> float:  # pragma: no cover - compiled (tested through PlanarScene)
    """Distance (m) from (x, y) to the nearest obstacle surface (negative inside one; inf without
    obstacles): the float operations of the numpy ``PlanarScene.clearance`` (numba's ``hypot`` is the
    C library's, as numpy's)."""
    best = np.inf
    for j in range(len(cyl_x)):
        d = math.hypot(cyl_x[j] - x, cyl_y[j] - y) - cyl_r[j]
        if d < best:
            best = d
    bb = np.inf
    for j in range(len(box_x)):
        dx = x - box_x[j]
        dy = y - box_y[j]
        c = cs[j]
        qx = abs(c * dx + sn[j] * dy) - hx[j]
        qy = abs(nsin[j] * dx + c * dy) - hy[j]
        m = qx if qx > qy else qy
        d = math.hypot(qx if qx > 0.0 else 0.0, qy if qy > 0.0 else 0.0) + (m if m < 0.0 else 0.0)
        if d < bb:
            bb = d
    return best if best < bb else bb


@numba.njit(**_OPTS)
def clearance_many(px: np.ndarray, py: np.ndarray, cyl_x: np.ndarray, cyl_y: np.ndarray, cyl_r: np.ndarray,
                   box_x: np.ndarray, box_y: np.ndarray, cs: np.ndarray, sn: np.ndarray, nsin: np.ndarray,
                   hx: np.ndarray, hy: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`clearance` of every point (px[i], py[i]) into ``out[i]``."""
    for i in range(len(px)):
        out[i] = clearance(px[i], py[i], cyl_x, cyl_y, cyl_r, box_x, box_y, cs, sn, nsin, hx, hy)


@numba.njit(inline="always", **_OPTS)
def _height_interval(oz: float, dz: float, top: float) -> tuple[float, float]:  # pragma: no cover
    """The interval of ray distances at which a ray from height ``oz`` with vertical component ``dz`` is
    within [0, top] (empty, lo > hi, for a horizontal ray outside it)."""
    if dz > 0.0:
        return -oz / dz, (top - oz) / dz
    if dz < 0.0:
        return (top - oz) / dz, -oz / dz
    if 0.0 <= oz <= top:
        return -np.inf, np.inf
    return np.inf, -np.inf


@numba.njit(**_OPTS)
def cast_prisms(ox: float, oy: float, oz: float, dirs: np.ndarray, max_range: float, cyl_x: np.ndarray,
                cyl_y: np.ndarray, cyl_r: np.ndarray, cyl_top: np.ndarray, box_x: np.ndarray,
                box_y: np.ndarray, cs: np.ndarray, sn: np.ndarray, hx: np.ndarray, hy: np.ndarray,
                box_top: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled (tested
    # through PlanarScene.cast_rays)
    """:meth:`PlanarScene.cast_rays` in one loop: for each ray (unit ``dirs[i]``) the distance to the first of
    the ground plane z = 0 and the vertical prisms (cylinders and yawed boxes standing on the ground, up to
    their ``top``), or ``max_range``; each prism is the intersection of its footprint's and its height's
    intervals along the ray."""
    inf = np.inf
    for i in range(dirs.shape[0]):
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        best = max_range
        if dz < 0.0:
            t = -oz / dz
            if t < best:
                best = t
        a = dx * dx + dy * dy
        for j in range(len(cyl_x)):
            z0, z1 = _height_interval(oz, dz, cyl_top[j])
            if z0 > z1:
                continue
            px, py, r = ox - cyl_x[j], oy - cyl_y[j], cyl_r[j]
            c0 = px * px + py * py - r * r
            if a < 1e-18:  # vertical ray: inside the footprint or never
                if c0 > 0.0:
                    continue
                f0, f1 = -inf, inf
            else:
                b = px * dx + py * dy
                disc = b * b - a * c0
                if disc < 0.0:
                    continue
                s = math.sqrt(disc)
                f0, f1 = (-b - s) / a, (-b + s) / a
            lo = max(f0, z0, 0.0)
            if lo <= min(f1, z1) and lo < best:
                best = lo
        for j in range(len(box_x)):
            z0, z1 = _height_interval(oz, dz, box_top[j])
            if z0 > z1:
                continue
            wx, wy = ox - box_x[j], oy - box_y[j]
            qx, qy = cs[j] * wx + sn[j] * wy, cs[j] * wy - sn[j] * wx  # origin in the box frame
            vx, vy = cs[j] * dx + sn[j] * dy, cs[j] * dy - sn[j] * dx
            lo, hi = max(z0, 0.0), z1
            if abs(vx) < 1e-12:
                if abs(qx) > hx[j]:
                    continue
            else:
                t0, t1 = (-hx[j] - qx) / vx, (hx[j] - qx) / vx
                lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
            if abs(vy) < 1e-12:
                if abs(qy) > hy[j]:
                    continue
            else:
                t0, t1 = (-hy[j] - qy) / vy, (hy[j] - qy) / vy
                lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
            if lo <= hi and lo < best:
                best = lo
        out[i] = best
