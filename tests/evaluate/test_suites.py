"""Suite files and condition resolution (split defaults to test; unknown suites list the known ones)."""

from __future__ import annotations

import pytest

from liquid_control.evaluate.suites import load_suite_files, resolve_condition, suites_for


def test_default_condition_is_the_test_split(suites_dir):
    c = resolve_condition("fake_nav:FakeNav-v0")
    assert c.name == "test" and c.split == "test" and c.options == {"split": "test"}


def test_suite_options_nested_and_dotted_then_overrides(suites_dir):
    c = resolve_condition("fake_nav:FakeNav-v0", suite="long", overrides={"max_steps": 7})
    assert c.name == "long" and c.options == {"split": "test", "max_steps": 7}
    d = resolve_condition("fake_nav:FakeNav-v0", suite="dotted", overrides={"layout.seedless": True})
    assert d.split == "test"  # a suite without a split is evaluated on test layouts
    assert d.options == {"split": "test", "layout": {"density": 0.5, "seedless": True}}
    assert resolve_condition("fake_nav:FakeNav-v0", suite="crashy").split == "val"


def test_train_split_only_when_named(suites_dir):
    assert resolve_condition("fake_nav:FakeNav-v0", split="train").options["split"] == "train"
    assert resolve_condition("fake_nav:FakeNav-v0", overrides={"split": "train"}).name == "train"
    with pytest.raises(ValueError, match="unknown split"):
        resolve_condition("fake_nav:FakeNav-v0", split="everything")


def test_unknown_suite_lists_known_ones(suites_dir):
    with pytest.raises(ValueError, match="known suites: crashy, dotted, long, test"):
        resolve_condition("fake_nav:FakeNav-v0", suite="ood-nope")
    with pytest.raises(ValueError, match="no suite file"):
        resolve_condition("Other-v0", suite="test")
    with pytest.raises(ValueError, match="not both"):
        resolve_condition("fake_nav:FakeNav-v0", suite="long", split="test")


def test_malformed_suite_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("just: [a list\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_suite_files(tmp_path)
    assert suites_for("X", tmp_path / "missing") == {}


def test_repository_suite_files_parse_and_never_default_to_train():
    for env_id, data in load_suite_files().items():
        for name in data["suites"]:
            c = resolve_condition(env_id, suite=name)
            assert c.split in ("val", "test") or name == "train", (env_id, name, c.split)
        held = set(data.get("heldout_families") or [])
        assert not held & set(data.get("train_families") or []), env_id
