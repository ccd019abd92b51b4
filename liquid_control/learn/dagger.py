"""DAgger rounds: roll out the learner closed loop, relabel every visited state with the expert, aggregate.

Round r acts with the β-mixture ``{"mix": [EXPERT, CKPT], "beta": β_r}`` (β_r = ``dagger_beta`` ** r:
the expert's share of executed actions decays each round) and asks the expert (``labeler``) for its
action on every state the mixture visits. EXPERT is ``expert_spec(cfg.expert_options)`` when options are
given, else the expert that labelled the demonstrations (so a clearance-aware teacher stays the teacher).
Episodes go into the dataset ``RUN/dagger`` (the same format
as ``collect``; ``actions`` are the expert's labels, ``executed`` what the mixture did), which
:func:`liquid_control.learn.bc.train_bc` adds to the demonstrations before retraining. Rollouts run in
worker processes through the project's one executor (``collect`` → ``map_jobs``).

The policy after the last round need not be the best: closed-loop success moves from round to round.
With ``cfg.select_last = K`` every round's checkpoint is kept
(``RUN/rounds/rNN``, :func:`snapshot_round`) and :func:`select_round` picks the final policy among the
last K by closed-loop success on the val split (never the test split the run is scored on).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liquid_control.learn.checkpoint import FILES
from liquid_control.learn.demos import collect, load_dataset, parse_json_object
from liquid_control.learn.rollout import GATE_PARAMS, ControllerSpec, expert_spec, is_expert_spec
from liquid_control.sim.options import merge

if TYPE_CHECKING:
    from liquid_control.learn.bc import BCConfig

SEED_STRIDE = 100_000  # round r uses episode seeds r·SEED_STRIDE + seed·1000 + i (disjoint from demos 0..)


def parse_gate(text: str | None) -> dict[str, Any] | None:
    """``--dagger-gate`` JSON text -> the gate's options (None when absent; ``{}`` = the defaults);
    ValueError on bad JSON or an unknown option."""
    return parse_json_object(text, "--dagger-gate", GATE_PARAMS)


def beta_for_round(beta: float, rnd: int) -> float:
    """The expert's share of executed actions in DAgger round ``rnd`` (1-based)."""
    if rnd < 1:
        raise ValueError(f"DAgger rounds are numbered from 1, got {rnd}")
    return float(beta) ** rnd


def round_seeds(rnd: int, seed: int) -> int:
    """First episode seed of round ``rnd`` (rounds never reuse a seed, nor the demos' low seeds)."""
    return rnd * SEED_STRIDE + seed * 1000


def demo_expert(manifest: dict[str, Any]) -> ControllerSpec:
    """The expert spec that labelled (or acted in) a dataset: its ``labeler``, else its ``controller``,
    if that is an expert spec; plain ``"expert"`` otherwise."""
    for spec in (manifest.get("labeler"), manifest.get("controller")):
        if is_expert_spec(spec):
            return spec
    return "expert"


def run_round(cfg: BCConfig, rnd: int, run_dir: str | Path) -> dict[str, Any]:
    """Roll out ``run_dir``'s checkpoint for ``cfg.dagger_episodes`` episodes, relabelled by the expert.

    Returns round statistics (β, episodes, closed-loop success of the β-mixture, steps added).
    """
    run_dir = Path(run_dir)
    demo = load_dataset(cfg.demos[0], expect_env=cfg.env_id)
    options = merge(demo.manifest["options"], cfg.dagger_options)
    split = options.pop("split", "train")
    beta = beta_for_round(cfg.dagger_beta, rnd)
    teacher = (expert_spec(cfg.expert_options) if cfg.expert_options is not None
               else demo_expert(demo.manifest))
    learner = str(run_dir.resolve())
    if cfg.dagger_gate is not None:
        beta = 0.0
        spec: dict[str, Any] = {"gate": [teacher, learner], **cfg.dagger_gate}
    else:
        spec = {"mix": [teacher, learner], "beta": beta}
    first = round_seeds(rnd, cfg.seed)
    manifest = collect(cfg.env_id, cfg.dagger_episodes, run_dir / "dagger", split=split, overrides=options,
                       seed=first, workers=cfg.workers, controller=spec, labeler=teacher,
                       progress=cfg.progress)
    mine = [e for e in manifest["episodes"] if first <= e["seed"] < first + cfg.dagger_episodes]
    return {
        "round": rnd, "beta": beta, "episodes": len(mine),
        "failed": len([f for f in manifest["failed"] if f.get("seed") is not None
                       and first <= int(f["seed"]) < first + cfg.dagger_episodes]),
        "success_rate": sum(bool(e["success"]) for e in mine) / max(len(mine), 1),
        "collision_rate": sum(bool(e.get("collision")) for e in mine) / max(len(mine), 1),
        "steps": sum(e["steps"] for e in mine),
    }


def round_dir(run_dir: str | Path, rnd: int) -> Path:
    """Where :func:`snapshot_round` keeps the checkpoint of round ``rnd`` (0 = BC on the demos)."""
    return Path(run_dir) / "rounds" / f"r{rnd:02d}"


def snapshot_round(run_dir: str | Path, rnd: int) -> Path:
    """Copy the run's current checkpoint (the policy after round ``rnd``) to :func:`round_dir`."""
    dest = round_dir(run_dir, rnd)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(Path(run_dir) / name, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def select_round(cfg: BCConfig, run_dir: str | Path, last: int,
                 env_options: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the snapshots of rounds ``last - cfg.select_last + 1 .. last`` closed loop on
    ``cfg.select_episodes`` episodes of the val split with the demos' ``env_options`` (the same episodes
    for every round) and return
    ``{"split", "episodes", "margin", "rounds": [{"round", "success_rate", "ci95"[, "same_as"]}, ...],
    "round": kept}``: the latest round whose success is within ``cfg.select_margin`` of the best (0: the
    best, ties to the later round). A round whose weights equal an earlier candidate's (its training
    never beat the incumbent) is not evaluated again: it gets that round's result and ``same_as``.
    FileNotFoundError if no candidate round has a snapshot."""
    from liquid_control.evaluate.runner import evaluate

    options = {k: v for k, v in env_options.items() if k != "split"}
    rows: list[dict[str, Any]] = []
    seen: dict[bytes, dict[str, Any]] = {}  # weights file contents -> the first row scored with them
    for rnd in range(max(0, last - cfg.select_last + 1), last + 1):
        ckpt = round_dir(run_dir, rnd)
        if not (ckpt / "policy.pt").exists():
            continue
        weights = (ckpt / "policy.pt").read_bytes()
        if weights in seen:
            first = seen[weights]
            rows.append({"round": rnd, "success_rate": first["success_rate"], "ci95": first["ci95"],
                         "same_as": first["round"]})
            continue
        res = evaluate(str(ckpt), cfg.env_id, split="val", overrides=options, episodes=cfg.select_episodes,
                       seed=cfg.seed, workers=cfg.workers, progress=cfg.progress)
        rate = res["metrics"]["success_rate"]
        rows.append({"round": rnd, "success_rate": rate["mean"], "ci95": rate["ci95"]})
        seen[weights] = rows[-1]
    if not rows:
        raise FileNotFoundError(f"no round snapshots in {Path(run_dir) / 'rounds'} to select from")
    scores = [r["success_rate"] if r["success_rate"] is not None else -1.0 for r in rows]
    kept = max(r["round"] for r, s in zip(rows, scores, strict=True) if s >= max(scores) - cfg.select_margin)
    return {"split": "val", "episodes": cfg.select_episodes, "margin": cfg.select_margin, "rounds": rows,
            "round": kept}
