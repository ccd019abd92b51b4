"""Env options: parsing overrides, merging, validation errors."""

from __future__ import annotations

import pytest

from liquid_control.sim.options import Opt, merge, parse_overrides, resolve

SCHEMA = {
    "split": Opt("train", "str", choices=("train", "val", "test")),
    "layout.family": Opt(["forest"], "str_or_list", choices=("forest", "maze")),
    "layout.density": Opt(0.3, "float", 0.0, 3.0),
    "layout.goal_distance": Opt([5.0, 25.0], "range", 1.0, 60.0),
    "disturbance.latency_steps": Opt(0, "int", 0, 10),
    "physics.flag": Opt(True, "bool"),
}


def test_parse_overrides_nests_and_parses_yaml_scalars():
    out = parse_overrides(["layout.density=0.3", "disturbance.wind=0.5", "layout.family=maze",
                           "layout.goal_distance=[2, 4]", "physics.flag=false"])
    assert out == {"layout": {"density": 0.3, "family": "maze", "goal_distance": [2, 4]},
                   "disturbance": {"wind": 0.5}, "physics": {"flag": False}}


@pytest.mark.parametrize("bad", ["layout.density", "=3", "a..b=1"])
def test_parse_overrides_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_overrides([bad])


def test_merge_is_deep_and_does_not_mutate():
    base = {"layout": {"density": 0.3, "family": "forest"}, "split": "train"}
    out = merge(base, {"layout": {"density": 0.6}})
    assert out == {"layout": {"density": 0.6, "family": "forest"}, "split": "train"}
    assert base["layout"]["density"] == 0.3


def test_resolve_defaults_and_overrides():
    out = resolve(SCHEMA, {"layout": {"family": "maze"}}, parse_overrides(["layout.density=1"]))
    assert out["layout"] == {"family": "maze", "density": 1.0, "goal_distance": [5.0, 25.0]}
    assert out["split"] == "train" and out["disturbance"]["latency_steps"] == 0


@pytest.mark.parametrize("override, words", [
    ({"layout": {"densty": 0.3}}, "unknown option 'layout.densty'"),
    ({"layout": {"density": -0.1}}, "below its minimum"),
    ({"layout": {"family": "swamp"}}, "unknown value 'swamp'"),
    ({"split": "holdout"}, "must be one of"),
    ({"disturbance": {"latency_steps": 1.5}}, "must be an integer"),
    ({"layout": {"goal_distance": [9, 3]}}, "low 9.0 > high 3.0"),
    ({"physics": {"flag": "yes"}}, "true or false"),
])
def test_resolve_errors_are_clear(override, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("[", r"\[")):
        resolve(SCHEMA, override)
