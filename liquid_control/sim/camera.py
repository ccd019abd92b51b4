"""Body-following camera images (TinyRenderer, small frames) used by the tasks' chase views."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pybullet as p


@lru_cache(maxsize=16)
def _projection(width: int, height: int, fov: float) -> tuple[float, ...]:
    return tuple(p.computeProjectionMatrixFOV(fov=fov, aspect=width / height, nearVal=0.05, farVal=60.0))


def chase_camera(client: int, pos: Sequence[float], yaw: float, width: int = 160, height: int = 120,
                 back: float = 0.4, up: float = 0.15, fov: float = 75.0) -> np.ndarray:
    """RGB image (height, width, 3) uint8 from ``back`` m behind and ``up`` m above a body at ``pos``,
    looking along its heading ``yaw``."""
    if width < 8 or height < 8:
        raise ValueError(f"camera image must be at least 8x8, got {width}x{height}")
    x, y, z = (float(v) for v in pos)
    c, s = math.cos(yaw), math.sin(yaw)
    eye = (x - back * c, y - back * s, z + up)
    look = (x + 2.0 * c, y + 2.0 * s, z)
    view = p.computeViewMatrix(eye, look, (0.0, 0.0, 1.0))
    img = p.getCameraImage(width, height, viewMatrix=view, projectionMatrix=_projection(width, height, fov),
                           renderer=p.ER_TINY_RENDERER, flags=p.ER_NO_SEGMENTATION_MASK,
                           physicsClientId=client)
    rgba = np.asarray(img[2], dtype=np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(rgba[:, :, :3])
