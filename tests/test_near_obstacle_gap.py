"""scripts/near_obstacle_gap.py: the near-obstacle breakdown of a learner's fit of its teacher."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def gap(load_script):
    return load_script("near_obstacle_gap")


def test_ray_bearings_span_the_field_of_view(gap) -> None:
    b = gap.ray_bearings(64, 270.0)
    assert b[0] == -135.0 and b[-1] == 135.0 and np.all(np.diff(b) > 0)


def test_band_table_splits_steps_by_the_closest_ray(gap) -> None:
    closest = np.array([0.2, 0.2, 0.35, 2.0])
    labels = np.array([[0.0, 1.0], [0.0, -1.0], [0.5, 0.5], [1.0, 0.0]])
    actions = np.array([[0.3, 0.2], [0.0, -0.9], [0.5, -0.5], [1.0, 0.0]])
    rows = {tuple(r["band_m"]): r for r in gap.band_table(closest, labels, actions)}
    assert set(rows) == {(0.0, 0.25), (0.3, 0.4), (1.0, np.inf)}  # empty bands are left out
    near = rows[(0.0, 0.25)]
    assert near["steps"] == 2 and near["share"] == 0.5 and near["escape_labels"] == 1.0
    assert near["turns_labelled_way"] == 1.0  # both turn the labelled way (0.2 left, -0.9 right)
    assert near["abs_err_v"] == pytest.approx(0.15) and near["abs_err_w"] == pytest.approx(0.45)
    assert rows[(0.3, 0.4)]["turns_labelled_way"] == 0.0 and rows[(0.3, 0.4)]["escape_labels"] == 0.0
    assert rows[(1.0, np.inf)]["turns_labelled_way"] is None  # nothing labelled to turn there


def test_escape_sides_checks_the_turn_is_away_from_the_closest_ray(gap) -> None:
    closest = np.array([0.2, 0.2, 0.2, 0.2, 0.5])
    bearing = np.array([-90.0, 60.0, 5.0, 60.0, -90.0])  # right, left, ahead, left, (too far)
    labels = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, 1.0], [0.0, -1.0]])
    out = gap.escape_sides(closest, bearing, labels, 0.265)
    assert out == {"escape_steps": 4, "ahead": 1, "turn_away_from_closest_ray": pytest.approx(2 / 3)}


def test_main_needs_a_run_with_dagger_data(gap, tmp_path) -> None:
    with pytest.raises(SystemExit):
        gap.main([str(tmp_path)])
