"""Range sensing: a ray fan cast with one ``rayTestBatch`` call, plus noise/dropout and clearance helpers."""

from __future__ import annotations

import numpy as np
import pybullet as p

from liquid_control.sim.layouts import Layout


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


class RangeSensor:
    """Rays from a body-mounted origin; ``scan`` returns distances normalised to [0, 1] (1 = nothing hit)."""

    def __init__(self, client: int, directions: np.ndarray, max_range: float, offset=(0.0, 0.0, 0.0)) -> None:
        if max_range <= 0:
            raise ValueError(f"sensor range must be > 0, got {max_range}")
        self.client = client
        self.directions = np.asarray(directions, dtype=np.float64)
        self.max_range = float(max_range)
        self.offset = np.asarray(offset, dtype=np.float64)
        self.last_from = np.zeros((len(self.directions), 3))
        self.last_to = np.zeros((len(self.directions), 3))

    @property
    def n(self) -> int:
        return len(self.directions)

    def scan(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Cast all rays from ``position`` with body rotation matrix ``rotation`` (3x3); one PyBullet call."""
        origin = position + rotation @ self.offset
        dirs = self.directions @ rotation.T
        self.last_from = np.broadcast_to(origin, dirs.shape)
        self.last_to = origin + dirs * self.max_range
        hits = p.rayTestBatch(self.last_from, self.last_to, physicsClientId=self.client)
        return np.fromiter((h[2] for h in hits), dtype=np.float64, count=len(hits))


def corrupt(readings: np.ndarray, rng: np.random.Generator, noise: float = 0.0,
            dropout: float = 0.0) -> np.ndarray:
    """Add Gaussian noise (std as a fraction of range) and drop rays (they read max range); clip to [0, 1]."""
    out = readings
    if noise > 0:
        out = out + rng.normal(0.0, noise, size=out.shape)
    if dropout > 0:
        out = np.where(rng.random(out.shape) < dropout, 1.0, out)
    return np.clip(out, 0.0, 1.0) if (noise > 0 or dropout > 0) else out


def clearance(layout: Layout, xy: np.ndarray) -> float:
    """Distance (m) from point ``xy`` to the nearest obstacle surface (2D, negative inside)."""
    x, y = float(xy[0]), float(xy[1])
    best = np.inf
    if len(layout.cylinders):
        c = layout.cylinders
        best = min(best, float(np.min(np.hypot(c[:, 0] - x, c[:, 1] - y) - c[:, 2])))
    if len(layout.boxes):
        b = layout.boxes
        dx, dy = x - b[:, 0], y - b[:, 1]
        cs, sn = np.cos(b[:, 2]), np.sin(b[:, 2])
        qx = np.abs(cs * dx + sn * dy) - b[:, 3]
        qy = np.abs(-sn * dx + cs * dy) - b[:, 4]
        d = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
        best = min(best, float(d.min()))
    return best
