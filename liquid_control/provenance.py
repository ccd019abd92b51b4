"""Where a number came from: the software and CPU a result was measured with.

Closed-loop results are sensitive to float rounding (one different bit in an early step can end an
episode differently), so every results file records the versions of the libraries that compute it and
the CPU model, to tell a real regression from a different machine.
"""

from __future__ import annotations

import importlib.metadata
import platform
from functools import lru_cache
from typing import Any

PACKAGES = ("numpy", "torch", "pybullet", "numba", "gymnasium", "stable_baselines3", "scipy", "onnxruntime",
            "ncps")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def platform_info() -> dict[str, Any]:
    """``{"python", "machine", "cpu", "packages": {name: version}}`` of this process (missing: None)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": _cpu_model(),
            "packages": versions}
