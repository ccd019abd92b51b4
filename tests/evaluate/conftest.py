"""Shared fixtures of the evaluation tests: the fake env module on sys.path (also for spawned workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)

FAKE_ENV = "fake_nav:FakeNav-v0"


@pytest.fixture
def fake_env_id(monkeypatch) -> str:
    """Id of the fake env; its module is importable here and in spawned worker processes."""
    monkeypatch.syspath_prepend(HERE)
    return FAKE_ENV


@pytest.fixture
def suites_dir(tmp_path: Path, monkeypatch) -> Path:
    """A suite file for the fake env, used through $LIQUID_CONTROL_ENVS."""
    (tmp_path / "fake.yaml").write_text(
        "env: fake_nav:FakeNav-v0\n"
        "train_families: [line]\n"
        "heldout_families: []\n"
        "suites:\n"
        "  test: {split: test}\n"
        "  long: {split: test, options: {max_steps: 40}}\n"
        "  dotted: {options: {layout.density: 0.5}}\n"
        "  crashy: {split: val, options: {crash_seed: 5}}\n"
    )
    monkeypatch.setenv("LIQUID_CONTROL_ENVS", str(tmp_path))
    return tmp_path

