"""scripts/imitation_targets.py: the recipes are valid train_imitation.py command lines, runs off the
recipe are refused, recorded runs become the README table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liquid_control.evaluate.runner import episode_seeds


@pytest.fixture(scope="module")
def targets(load_script):
    return load_script("imitation_targets")


@pytest.fixture(scope="module")
def train(load_script):
    return load_script("train_imitation")


@pytest.mark.parametrize("env", ["drone", "rover"])
def test_recipe_is_a_valid_command_line(targets, train, env: str, tmp_path: Path) -> None:
    args = vars(train.parser().parse_args(targets.recipe_argv(env, "lstm", 2, tmp_path)))
    assert args["core"] == "lstm" and args["seed"] == 2 and args["env"] == targets.ENVS[env]
    targets.check_recipe(args)  # parses back to the recipe
    off = dict(args, dagger_rounds=args["dagger_rounds"] + 1)
    with pytest.raises(ValueError, match="dagger_rounds"):
        targets.check_recipe(off)
    with pytest.raises(ValueError, match="reused demos"):
        targets.check_recipe(dict(args, demos="somewhere"))
    with pytest.raises(ValueError, match="dagger_set"):  # an argument the recipe leaves at its default
        targets.check_recipe(dict(args, dagger_set=["layout.density=0.4"]))
    with pytest.raises(ValueError, match="chunk_len"):
        targets.check_recipe(dict(args, chunk_len=64))
    targets.check_recipe({k: v for k, v in args.items() if k != "dagger_set"})  # recorded before it existed


def _fake_run(run: Path, args: dict, successes: list[bool], selection: dict | None = None) -> None:
    """A finished train_imitation.py run dir with two rover test episodes (forest layouts)."""
    (run / "policy").mkdir(parents=True)
    card = {"command": "scripts/train_imitation.py " + json.dumps(args)}
    if selection is not None:
        card["metrics"] = {"selection": selection}
    (run / "policy" / "card.json").write_text(json.dumps(card))
    eps = [{"family": "forest", "layout_seed": 11 + i, "success": s, "collision": not s, "timeout": False,
            "error": None} for i, s in enumerate(successes)]
    for who in ("learner", "expert"):
        (run / f"eval-{who}.json").write_text(json.dumps(
            {"env": args["env"], "resolved_options": {}, "per_episode": eps if who == "learner" else
             [dict(e, success=True, collision=False) for e in eps]}))
    rate = {"mean": sum(successes) / len(successes), "ci95": [0.0, 1.0], "n": len(successes)}
    (run / "summary.json").write_text(json.dumps({
        "env": args["env"], "core": args["core"], "seed": args["seed"], "checkpoint": str(run / "policy"),
        "params": {"trainable": 19796, "effective": 19796}, "success_vs_expert": rate["mean"],
        "test": {"learner": {"success_rate": rate}, "expert": {"success_rate": {"mean": 1.0}}},
        "dagger": [{"round": r} for r in range(1, args["dagger_rounds"] + 1)],
        "wall_clock_s": {"pipeline_s": 1200.0}}))


def test_record_and_table(targets, train, tmp_path: Path) -> None:
    results = tmp_path / "results"
    for seed, succ in ((0, [True, False]), (1, [True, True])):
        run = tmp_path / f"run{seed}"
        args = vars(train.parser().parse_args(targets.recipe_argv("rover", "lstm", seed, run)))
        _fake_run(run, args, succ, {"round": 9, "rounds": []} if seed else None)
        path = targets.record(run, results)
        assert path.name == f"rover-lstm-s{seed}.json"
        stored = json.loads(path.read_text())
        assert "checkpoint" not in stored and stored["args"]["core"] == "lstm"
        assert stored.get("selection") == ({"round": 9, "rounds": []} if seed else None)
        fam = stored["families"]["learner"]
        assert sum(r["episodes"] for r in fam) == 2 and all(r["family"] == "forest" for r in fam)
    (results / "bounds").mkdir()
    (results / "bounds" / "rover-s1.json").write_text(json.dumps(
        {"env": targets.ENVS["rover"], "seed": 1, "success_rate": {"mean": 0.93}}))
    for variant in ("rover-s1-rays32.json", "rover-s1-rays32-mem2.5.json", "rover-s1-mem9.json"):
        (results / "bounds" / variant).write_text(json.dumps(  # bound --rays/--memory: not the column
            {"env": targets.ENVS["rover"], "seed": 1, "success_rate": {"mean": 0.11}}))
    lines = targets.table(results)
    rows = [ln for ln in lines if ln.startswith("| RoverNav-v0 | lstm |")]
    assert len(rows) == 3  # two runs and the mean over seeds
    rounds = targets.RECIPES["rover"]["dagger_rounds"]
    # seed 0: no informed teacher, the last round kept; seed 1: round 9 kept on val
    assert f"| 0.50 [0.00, 1.00] | 1.00 | – | 0.50 | {rounds} | 20.0 min |" in rows[0]
    assert f"| 1.00 [0.00, 1.00] | 1.00 | 0.93 | 1.00 | {rounds} (9) | 20.0 min |" in rows[1]
    assert rows[2].endswith("| 2 | 0.75 ± 0.25 |")
    assert not any("†" in ln for ln in lines)  # both runs follow the current recipe


def test_table_marks_runs_recorded_with_an_earlier_recipe(targets, train, tmp_path: Path,
                                                          monkeypatch) -> None:
    results = tmp_path / "results"
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        args = vars(train.parser().parse_args(targets.recipe_argv("rover", "ltc", seed, run)))
        _fake_run(run, args, [True, False])
        targets.record(run, results)
    recipe = targets.RECIPES["rover"]
    monkeypatch.setitem(targets.RECIPES, "rover", dict(recipe, dagger_epochs=recipe["dagger_epochs"] + 1))
    # seed 1 rerun with the changed recipe, seed 0 left as recorded
    run = tmp_path / "rerun1"
    args = vars(train.parser().parse_args(targets.recipe_argv("rover", "ltc", 1, run)))
    _fake_run(run, args, [True, True])
    targets.record(run, results)
    lines = targets.table(results)
    rows = [ln for ln in lines if ln.startswith("| RoverNav-v0 | ltc |")]
    assert rows[0].startswith("| RoverNav-v0 | ltc | 0 † |") and "| 1 |" in rows[1] and "†" not in rows[1]
    note = [ln for ln in lines if ln.startswith("† ")]
    want = f"dagger_epochs: run {recipe['dagger_epochs']}, recipe {recipe['dagger_epochs'] + 1}"
    assert len(note) == 1 and "RoverNav-v0 ltc seed 0: " + want in note[0] and "seed 1" not in note[0]
    assert rows[2].startswith("| RoverNav-v0 | ltc | 2 (†: mixes recipes) |")


@pytest.mark.slow
def test_bound_evaluates_the_informed_teacher_on_the_runs_episodes(targets, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setitem(targets.RECIPES, "rover", dict(targets.RECIPES["rover"], eval_episodes=2))
    path = targets.bound("rover", 3, tmp_path, workers=1)
    stored = json.loads(path.read_text())
    assert path.name == "rover-s3.json" and stored["teacher"]["sensing_rays"] > 0
    assert stored["episodes"] == 2 and 0.0 <= stored["success_rate"]["mean"] <= 1.0
    ev = json.loads((tmp_path / "bounds" / "rover-s3-eval.json").read_text())
    assert [e["seed"] for e in ev["per_episode"]] == episode_seeds(3, 2)  # what a seed-3 run is tested on
    assert sum(r["episodes"] for r in stored["families"]) == 2
    coarse = json.loads(targets.bound("rover", 3, tmp_path, workers=1, rays=8).read_text())
    assert coarse["teacher"] == dict(targets.INFORMED["rover"], sensing_rays=8) and coarse["episodes"] == 2
    assert (tmp_path / "bounds" / "rover-s3-rays8-eval.json").exists()
    assert json.loads(path.read_text()) == stored  # the default bound is left alone
    with pytest.raises(ValueError, match="rays"):
        targets.bound("rover", 3, tmp_path, workers=1, rays=0)
    short = json.loads(targets.bound("rover", 3, tmp_path, workers=1, rays=8, memory=2.5).read_text())
    assert short["teacher"]["sensing_memory"] == 2.5
    assert (tmp_path / "bounds" / "rover-s3-rays8-mem2.5.json").exists()
    for env, memory in (("rover", 0.0), ("drone", 5.0)):
        with pytest.raises(ValueError, match="memory"):
            targets.bound(env, 3, tmp_path, workers=1, memory=memory)


def test_ship_puts_the_val_best_recorded_run_into_the_zoo(targets, train, tmp_path: Path,
                                                         monkeypatch) -> None:
    import train_zoo  # what imitation_targets.ship imports (scripts/ is on sys.path once targets loaded)

    results = tmp_path / "results" / "imitation"
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        args = vars(train.parser().parse_args(targets.recipe_argv("rover", "ltc", seed, run)))
        _fake_run(run, args, [True, False])
        (run / "policy" / "policy.pt").write_bytes(b"weights-%d" % seed)
        (run / "policy" / "config.json").write_text("{}")
        (run / "demos").mkdir()
        (run / "demos" / "manifest.json").write_text(json.dumps({"env_id": args["env"], "seed": seed}))
        targets.record(run, results)
    runs = targets.recorded_runs("rover", "ltc", results)
    assert [(r["seed"], r["train_wall_clock_s"]) for r in runs] == [(0, 1200.0), (1, 1200.0)]
    assert runs[1]["checkpoint"] == str(tmp_path / "run1" / "policy")

    monkeypatch.setattr(train_zoo, "ROOT", tmp_path)  # never touch the repository's policies/ or results/
    stale = tmp_path / "results" / "rovernav-ltc" / "seeds"
    stale.mkdir(parents=True)
    (stale / "test-s2.json").write_text("{}")  # a seed of the zoo entry being replaced
    val = {0: 0.4, 1: 0.7}
    monkeypatch.setattr(train_zoo, "validate", lambda ckpt, env_id, seed, episodes, workers: {
        "success_rate": {"mean": val[seed]}, "spl": {"mean": val[seed]}, "collision_rate": {"mean": 0.0}})
    tested = []
    monkeypatch.setattr(train_zoo, "test_every_seed", lambda runs, args, dest: tested.append(
        ([r["seed"] for r in runs], dest)))
    monkeypatch.setattr(train_zoo, "evaluate_suites", lambda policy, args, dest: {"test": {"n": 50}})
    dest = targets.ship("rover", "ltc", eval_episodes=50, results=results)
    assert dest == tmp_path / "policies" / "rovernav-ltc"
    assert (dest / "policy.pt").read_bytes() == b"weights-1"  # the val-best seed
    card = json.loads((dest / "card.json").read_text())
    assert card["selection"]["selected_seed"] == 1 and len(card["selection"]["seeds"]) == 2
    assert card["demonstrations"]["env_id"] == targets.ENVS["rover"]
    assert card["command"].startswith("scripts/train_imitation.py ")  # how it was trained, on its card
    assert tested == [([0, 1], stale)] and not stale.exists()  # old seeds' files removed, both tested

    other = vars(train.parser().parse_args(targets.recipe_argv("rover", "cfc", 1, tmp_path / "run1")))
    (tmp_path / "run1" / "policy" / "card.json").write_text(json.dumps(
        {"command": "scripts/train_imitation.py " + json.dumps(other)}))  # the run dir was reused
    with pytest.raises(ValueError, match="cfc seed 1"):
        targets.recorded_runs("rover", "ltc", results)
    (tmp_path / "run1" / "policy" / "card.json").unlink()
    with pytest.raises(FileNotFoundError, match="not on this machine"):
        targets.recorded_runs("rover", "ltc", results)
