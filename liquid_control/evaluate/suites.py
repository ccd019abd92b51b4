"""Evaluation suites: named conditions (split + env options) read from ``envs/*.yaml``.

A suite file holds ``env`` (the env id), ``suites: {name: {split, options}}``, ``train_families`` and
``heldout_families``. A *condition* is what one evaluation run measures: a suite name or a bare split,
plus ``--set`` overrides. The split is always set explicitly and defaults to ``test``, so an evaluation
never lands on training layouts unless the user names the train split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from liquid_control.sim.options import flatten, merge, unflatten

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = "test"


@dataclass
class Condition:
    """A resolved evaluation condition: its name, its split and the env options to build the env with."""

    name: str
    split: str
    options: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)


def envs_dir() -> Path:
    """The directory of suite files: ``$LIQUID_CONTROL_ENVS`` or the repository's ``envs/``."""
    env = os.environ.get("LIQUID_CONTROL_ENVS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "envs"


def load_suite_files(directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """All suite files of a directory, keyed by env id (a malformed file is a ValueError)."""
    d = Path(directory) if directory is not None else envs_dir()
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"suite file {path}: cannot parse YAML: {exc}") from None
        if not isinstance(data, dict) or "env" not in data or not isinstance(data.get("suites", {}), dict):
            raise ValueError(f"suite file {path}: expected a mapping with 'env' and 'suites'")
        data["_path"] = str(path)
        out[data["env"]] = data
    return out


def suites_for(env_id: str, directory: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The named suites of an env (empty when the env has no suite file)."""
    data = load_suite_files(directory).get(env_id)
    return dict(data.get("suites") or {}) if data else {}


def resolve_condition(
    env_id: str,
    suite: str | None = None,
    split: str | None = None,
    overrides: dict[str, Any] | None = None,
    directory: str | Path | None = None,
) -> Condition:
    """Turn ``--suite NAME`` or ``--split S`` (default ``test``) plus ``--set`` overrides into env options.

    Raises ValueError for an unknown suite (listing the known ones), an unknown split, or both given.
    """
    overrides = unflatten(flatten(overrides or {}))
    if suite is not None and split is not None:
        raise ValueError("give either a suite or a split, not both")
    if suite is not None:
        suites = suites_for(env_id, directory)
        if suite not in suites:
            known = ", ".join(sorted(suites)) or "none (no suite file for this env)"
            raise ValueError(f"unknown suite {suite!r} for {env_id}; known suites: {known}")
        spec = suites[suite] or {}
        options = unflatten(flatten(spec.get("options") or {}))
        base_split = spec.get("split", options.get("split", DEFAULT_SPLIT))
        name = suite
    else:
        options, base_split = {}, split or DEFAULT_SPLIT
        name = None
    options = merge(options, {"split": base_split})
    options = merge(options, overrides)
    final_split = options["split"]
    if final_split not in SPLITS:
        raise ValueError(f"unknown split {final_split!r}; choose from {list(SPLITS)}")
    return Condition(name=name or final_split, split=final_split, options=options, overrides=overrides)
