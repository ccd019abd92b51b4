"""Per-episode metrics and their aggregates with seeded 95% bootstrap confidence intervals (DESIGN.md §4).

An episode's record is a flat JSON-friendly dict (one row of the CSV, one entry of ``per_episode``).
Aggregates summarise the episodes that ran to completion; episodes that crashed are kept as error
records and counted by ``error_rate`` (never dropped silently).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# aggregate name -> (per-episode field, which episodes it is averaged over)
AGGREGATES: dict[str, tuple[str, str]] = {
    "success_rate": ("success", "completed"),
    "collision_rate": ("collision", "completed"),
    "timeout_rate": ("timeout", "completed"),
    "spl": ("spl", "completed"),
    "time_to_goal_s": ("time_to_goal_s", "successful"),
    "path_length_m": ("path_length_m", "completed"),
    "min_clearance_m": ("min_clearance_m", "completed"),
    "control_effort": ("control_effort", "completed"),
}

# the order of columns in the episodes CSV
EPISODE_FIELDS = [
    "index", "seed", "layout_id", "family", "layout_seed", "success", "collision", "timeout", "steps",
    "time_s", "time_to_goal_s", "path_length_m", "shortest_path_m", "spl", "min_clearance_m",
    "control_effort", "final_distance_m", "error",
]


def spl(success: bool, shortest: float | None, path: float) -> float | None:
    """Success weighted by path length for one episode: S·ℓ/max(p, ℓ) (Anderson et al. 2018).

    ``shortest`` is ℓ, the planner's shortest collision-free path; ``path`` is p, the path travelled.
    Returns None when ℓ is unknown, 0 for a failed episode.
    """
    if shortest is None or not math.isfinite(shortest):
        return None
    if shortest < 0 or path < 0:
        raise ValueError(f"path lengths must be >= 0, got shortest={shortest}, path={path}")
    if not success:
        return 0.0
    denom = max(path, shortest)
    return 1.0 if denom == 0 else float(shortest / denom)


def episode_record(
    index: int,
    seed: int,
    steps: int,
    info: dict[str, Any],
    shortest_path: float | None,
    path_length: float | None = None,
) -> dict[str, Any]:
    """The metrics of one finished episode from its last ``info`` (keys in docs/internals.md).

    ``path_length`` overrides ``info["path_length"]`` (e.g. when measured from recorded positions).
    """
    success = bool(info.get("is_success", False))
    collision = bool(info.get("collision", False))
    timeout = bool(info.get("timeout", False)) or not (success or collision)
    t = float(info.get("t", float("nan")))
    path = float(info.get("path_length", float("nan")) if path_length is None else path_length)
    return {
        "index": int(index),
        "seed": int(seed),
        "layout_id": info.get("layout_id"),
        "family": info.get("family"),
        "layout_seed": info.get("layout_seed"),
        "success": success,
        "collision": collision,
        "timeout": timeout,
        "steps": int(steps),
        "time_s": t,
        "time_to_goal_s": t if success else None,
        "path_length_m": path,
        "shortest_path_m": None if shortest_path is None else float(shortest_path),
        "spl": spl(success, shortest_path, path) if math.isfinite(path) else None,
        "min_clearance_m": _float_or_none(info.get("min_clearance")),
        "control_effort": _float_or_none(info.get("control_effort")),
        "final_distance_m": _float_or_none(info.get("distance_to_goal")),
        "error": None,
    }


def error_record(index: int, seed: int, error: str) -> dict[str, Any]:
    """The record of an episode that crashed (after the executor's retry)."""
    rec: dict[str, Any] = {k: None for k in EPISODE_FIELDS}
    rec.update(index=int(index), seed=int(seed), error=str(error))
    return rec


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded, so results are reproducible)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sample, got shape {x.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci: values must be finite")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // x.size)  # bound memory for large samples
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # the sample mean always lies inside its interval (guards against float rounding in quantiles)
    m = float(x.mean())
    return float(min(lo, m)), float(max(hi, m))


def paired_difference(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], key: str = "success"
                      ) -> dict[str, Any]:
    """Mean and 95% bootstrap CI of ``b - a`` in the per-episode boolean ``key`` over the episodes both
    ran (matched by episode seed, errors left out): the paired comparison of two policies or conditions
    evaluated on the same episodes."""
    by_seed = {e["seed"]: e for e in a if e.get("error") is None}
    diffs = [float(bool(e[key])) - float(bool(by_seed[e["seed"]][key]))
             for e in b if e.get("error") is None and e["seed"] in by_seed]
    if not diffs:
        return {"mean": None, "ci95": None, "n": 0}
    lo, hi = bootstrap_ci(diffs)
    return {"mean": float(np.mean(diffs)), "ci95": [lo, hi], "n": len(diffs)}


def summarize(values: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """``{"mean", "ci95", "n"}`` of a sample; mean and CI are None for an empty sample."""
    vals = [float(v) for v in values]
    if not vals:
        return {"mean": None, "ci95": None, "n": 0}
    lo, hi = bootstrap_ci(vals, seed=seed)
    return {"mean": float(np.mean(vals)), "ci95": [lo, hi], "n": len(vals)}


def aggregate(records: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Aggregate episode records into the ``metrics`` block of results.json (DESIGN.md §2)."""
    completed = [r for r in records if r.get("error") is None]
    successful = [r for r in completed if r.get("success")]
    out: dict[str, dict[str, Any]] = {}
    for i, (name, (field, over)) in enumerate(AGGREGATES.items()):
        pool = completed if over == "completed" else successful
        vals = [float(r[field]) for r in pool if r.get(field) is not None and math.isfinite(float(r[field]))]
        out[name] = summarize(vals, seed=seed + i)
    n = len(records)
    err = [1.0 if r.get("error") is not None else 0.0 for r in records]
    out["error_rate"] = summarize(err, seed=seed + len(AGGREGATES)) if n else summarize([])
    return out


def _float_or_none(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None
