"""Shared fixtures of the learn tests: the toy env module importable here and in workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = str(Path(__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def toy_env_id(monkeypatch) -> str:
    """Id of the toy env (module ``toy_envs`` on sys.path) with its expert known to ``make_expert``."""
    monkeypatch.syspath_prepend(HERE)
    import liquid_control.experts as experts

    monkeypatch.setitem(experts._EXPERTS, "ToyReachEnv", "toy_envs:ToyExpert")
    return "toy_envs:ToyReach-v0"
