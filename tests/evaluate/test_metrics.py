"""Per-episode metrics, SPL and bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

from liquid_control.evaluate import metrics as M


def test_spl_formula_on_hand_made_episodes():
    assert M.spl(True, 10.0, 10.0) == 1.0
    assert M.spl(True, 10.0, 12.5) == pytest.approx(0.8)
    assert M.spl(True, 10.0, 8.0) == 1.0  # a path shorter than ℓ (goal radius) is capped at 1
    assert M.spl(False, 10.0, 10.0) == 0.0
    assert M.spl(True, None, 10.0) is None
    with pytest.raises(ValueError):
        M.spl(True, -1.0, 2.0)
    # aggregate SPL = mean over episodes of S·ℓ/max(p, ℓ)
    recs = [M.episode_record(i, i, 10, {"is_success": s, "path_length": p, "t": 1.0}, ell)
            for i, (s, p, ell) in enumerate([(True, 12.5, 10.0), (False, 3.0, 10.0), (True, 4.0, 4.0)])]
    assert M.aggregate(recs)["spl"]["mean"] == pytest.approx((0.8 + 0.0 + 1.0) / 3)


def test_episode_record_from_known_info():
    info = {"is_success": True, "collision": False, "timeout": False, "distance_to_goal": 0.2,
            "path_length": 7.5, "min_clearance": 0.31, "control_effort": 12.0, "layout_id": "maze:2000003",
            "layout_seed": 2000003, "family": "maze", "t": 14.2}
    r = M.episode_record(3, 77, 142, info, shortest_path=6.0)
    assert r["success"] and not r["collision"] and not r["timeout"]
    assert r["time_to_goal_s"] == 14.2 and r["path_length_m"] == 7.5 and r["spl"] == pytest.approx(0.8)
    assert r["layout_id"] == "maze:2000003" and r["family"] == "maze"
    assert r["seed"] == 77 and r["steps"] == 142
    assert set(r) == set(M.EPISODE_FIELDS)
    crash = {**info, "is_success": False, "collision": True}
    rc = M.episode_record(4, 78, 10, crash, 6.0)
    assert rc["collision"] and not rc["timeout"] and rc["time_to_goal_s"] is None and rc["spl"] == 0.0
    # an episode that neither reached the goal nor collided is a timeout
    assert M.episode_record(5, 79, 10, {"t": 30.0, "path_length": 1.0}, None)["timeout"]


def test_aggregate_rates_and_error_episodes():
    ok = M.episode_record(0, 0, 5, {"is_success": True, "path_length": 2.0, "t": 3.0}, 2.0)
    fail = M.episode_record(1, 1, 5, {"collision": True, "path_length": 1.0, "t": 1.0}, 2.0)
    err = M.error_record(2, 2, "RuntimeError: boom")
    agg = M.aggregate([ok, fail, err], seed=0)
    assert agg["success_rate"]["mean"] == 0.5 and agg["success_rate"]["n"] == 2
    assert agg["collision_rate"]["mean"] == 0.5
    assert agg["time_to_goal_s"]["mean"] == 3.0 and agg["time_to_goal_s"]["n"] == 1
    assert agg["error_rate"]["mean"] == pytest.approx(1 / 3)
    assert M.aggregate([err])["success_rate"] == {"mean": None, "ci95": None, "n": 0}


def test_bootstrap_ci_contains_mean_narrows_with_n_and_is_seeded():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        x = rng.random(n) < 0.7
        lo, hi = M.bootstrap_ci(x, seed=3)
        assert lo <= x.mean() <= hi
        widths.append(hi - lo)
        assert M.bootstrap_ci(x, seed=3) == (lo, hi)
    assert widths[0] > widths[1] > widths[2]
    assert M.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError):
        M.bootstrap_ci([])


def test_paired_difference_matches_episodes_by_seed_and_skips_errors():
    a = [{"seed": s, "success": s % 2 == 0} for s in range(6)] + [{"seed": 9, "success": True}]
    b = [{"seed": s, "success": True} for s in reversed(range(6))]  # other order, one more win per odd seed
    b.append({"seed": 7, "success": True})  # not in a: ignored
    b[0] = {"seed": 5, "success": None, "error": "boom"}  # an error is left out on either side
    d = M.paired_difference(a, b)
    assert d["n"] == 5 and d["mean"] == pytest.approx(2 / 5)
    assert d["ci95"][0] <= d["mean"] <= d["ci95"][1]
    assert M.paired_difference(a, [])["n"] == 0
