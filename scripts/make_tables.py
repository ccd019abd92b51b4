#!/usr/bin/env python
"""Regenerate every results table of the README from the results files (no numbers typed by hand).

    python scripts/make_tables.py            # rewrites the README block between the results markers
    python scripts/make_tables.py --check    # exit 1 if the README is out of date

Reads ``results/<env>-<policy>/<suite>.json`` (written by ``scripts/train_zoo.py`` and
``liquid-control evaluate``), the shipped cards ``policies/*/card.json`` and, where present,
``results/<env>-robustness/robustness.json`` (+ PNG), ``results/imitation/*.json`` (written by
``scripts/imitation_targets.py``), ``results/adaptation/*/*-summary.json`` and
``docs/*.gif``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liquid_control.evaluate.metrics import paired_difference

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start (scripts/make_tables.py) -->", "<!-- results:end -->"
METRICS = (("success_rate", "success"), ("spl", "SPL"), ("collision_rate", "collision"))


def cell(metric: dict | None) -> str:
    """``0.93 [0.89, 0.96]`` or ``–``."""
    if not metric or metric.get("mean") is None:
        return "–"
    lo, hi = metric.get("ci95") or (None, None)
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None else ""
    return f"{metric['mean']:.2f}{ci}"


def load_results(root: Path) -> dict[str, dict[str, dict[str, dict]]]:
    """{env: {policy: {suite: results}}} from results/<env>-<policy>/<suite>.json."""
    table: dict[str, dict[str, dict[str, dict]]] = {}
    for path in sorted((root / "results").glob("*-*/*.json")):
        env, _, policy = path.parent.name.partition("-")
        if policy == "robustness" or path.name == "summary.json":
            continue
        table.setdefault(env, {}).setdefault(policy, {})[path.stem] = json.loads(path.read_text())
    return table


def card_of(root: Path, env: str, policy: str) -> dict:
    """The shipped card ``policies/<env>-<policy>/card.json`` ({} when that policy is not shipped)."""
    path = root / "policies" / f"{env}-{policy}" / "card.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _script(command: str | None) -> str:
    """The script a card's training command ran, e.g. ``train_zoo.py`` ('' when there is none)."""
    return Path((command or "").split(" ", 1)[0]).name


def params_of(root: Path, env: str, policy: str) -> str:
    p = card_of(root, env, policy).get("params", {})
    return f"{p.get('trainable', '–'):,} / {p.get('effective', '–'):,}" if p else "–"


def order(policies: list[str]) -> list[str]:
    """Expert, then the cores (LTC first), each PPO fine-tune right after its imitation policy."""
    rank = {"expert": 0, "ltc": 1, "cfc": 2, "lstm": 3, "gru": 4, "mlp": 5, "esn": 6, "lsm": 7}

    def key(p: str) -> tuple:
        base = p.removesuffix("-ppo")
        return (rank.get(base, 9), base, p != base)
    return sorted(policies, key=key)


def env_section(root: Path, env: str, by_policy: dict[str, dict[str, dict]]) -> str:
    suites = sorted({s for r in by_policy.values() for s in r}, key=lambda s: (s != "test", s))
    any_res = next(iter(next(iter(by_policy.values())).values()))
    lines = [f"### {any_res['env']}", ""]
    episodes = sorted({r["episodes"] for res in by_policy.values() for r in res.values()})
    lines.append(f"Episodes per cell: {', '.join(map(str, episodes))}; 95% bootstrap CIs; evaluation "
                 "seed 0; `test` = unseen layouts of the training families, `ood-*` = the suites of "
                 f"`envs/{env}.yaml`.")
    lines.append("")
    for key, label in METRICS:
        lines.append(f"**{label}**")
        lines.append("")
        lines.append("| policy | params (trainable / effective) | " + " | ".join(suites) + " |")
        lines.append("|---|---|" + "---|" * len(suites))
        for policy in order(list(by_policy)):
            row = [cell(by_policy[policy].get(s, {}).get("metrics", {}).get(key)) for s in suites]
            lines.append(f"| {policy} | {params_of(root, env, policy)} | " + " | ".join(row) + " |")
        lines.append("")
    lines += training_note(root, env, order(list(by_policy)))
    lines += ppo_section(by_policy, {p: init_results(root, env, p) for p in by_policy if p.endswith("-ppo")})
    lines += seeds_section(root, env, order(list(by_policy)))
    lines += seed_suites_section(root, env, order(list(by_policy)))
    lines += reevaluation_note(root, env, order(list(by_policy)))
    robust = root / "results" / f"{env}-robustness" / "robustness.json"
    if robust.exists():
        lines += robustness_section(root, robust)
    for gif in sorted((root / "docs").glob(f"{env}-*.gif")):
        lines += [f"![episode]({gif.relative_to(root)})", ""]
    return "\n".join(lines)


PIPELINES = {"train_imitation.py": "the issue-6 imitation recipe (gated DAgger; `imitation_targets.py ship`)",
             "train_zoo.py": "`train_zoo.py` (BC + β-mixed DAgger)"}


def training_note(root: Path, env: str, policies: list[str]) -> list[str]:
    """Which pipeline trained each row, read from the command on its card (when rows come from more than
    one, the rows are not a like-for-like comparison of cores)."""
    groups: dict[str, list[str]] = {}
    for policy in policies:
        card = card_of(root, env, policy)
        if not card:
            continue
        script = _script(card.get("command"))
        label = PIPELINES.get(script, f"`{script}`")
        if script == "train_ppo.py":
            init = _script((card.get("init") or {}).get("command"))
            label = (f"`train_ppo.py`, fine-tuning a policy trained by {PIPELINES.get(init, init)}" if init
                     else "`train_ppo.py` from scratch")
        groups.setdefault(label, []).append(policy)
    if len(groups) < 2:
        return []
    return ["**Trained by** (the command on each card): "
            + "; ".join(f"{', '.join(names)}: {label}" for label, names in groups.items()), ""]


def init_results(root: Path, env: str, ppo: str) -> dict | None:
    """Test results of the imitation policy a PPO fine-tune started from: ``results/<env>-<ppo>/init/
    test.json`` when kept there (its starting policy has since been replaced in the zoo), else the
    shipped imitation policy's own, if its card is the one the PPO card names as ``init``; else None."""
    kept = root / "results" / f"{env}-{ppo}" / "init" / "test.json"
    if kept.exists():
        return json.loads(kept.read_text())
    base = ppo.removesuffix("-ppo")
    init, bc = card_of(root, env, ppo).get("init") or {}, card_of(root, env, base)
    bc_test = root / "results" / f"{env}-{base}" / "test.json"
    if not init or not bc or not bc_test.exists():
        return None
    keys = ("command", "train_wall_clock_s")
    same = all(init.get(k) == bc.get(k) for k in keys)
    return json.loads(bc_test.read_text()) if same else None


def ppo_section(by_policy: dict[str, dict[str, dict]], inits: dict[str, dict | None]) -> list[str]:
    """PPO fine-tune vs the imitation policy it started from (``inits``: its test results, see
    :func:`init_results`), paired over the same test episodes."""
    rows = []
    for ppo in order([p for p in by_policy if p.endswith("-ppo")]):
        bc, tuned = inits.get(ppo), by_policy[ppo].get("test")
        if not bc or not tuned or "per_episode" not in bc or "per_episode" not in tuned:
            continue
        diff = paired_difference(bc["per_episode"], tuned["per_episode"])
        m0, m1 = bc["metrics"], tuned["metrics"]
        cells = [cell(m0["success_rate"]), cell(m1["success_rate"]), cell(diff), cell(m0.get("spl")),
                 cell(m1.get("spl")), str(diff["n"])]
        rows.append(f"| {ppo.removesuffix('-ppo')} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["**PPO fine-tuning** (`scripts/train_ppo.py nav`, the same settings for every core): test "
            "success of the imitation policy it started from and of the fine-tuned one on the same "
            "episodes, with the paired difference (bootstrap CI over episodes)", "",
            "| core | BC success | PPO success | PPO − BC | BC SPL | PPO SPL | episodes |",
            "|---|---|---|---|---|---|---|", *rows, ""]


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.2f} ± {sd:.2f}"


def seed_suites_section(root: Path, env: str, policies: list[str]) -> list[str]:
    """Success of every training seed on the OOD suites it was also evaluated on after selection
    (``train_ppo.py ship --seed-suites``): whether a core's robustness holds across seeds."""
    rows = []
    for policy in policies:
        data = card_of(root, env, policy)
        seeds = sorted((s for s in data.get("selection", {}).get("seeds") or [] if isinstance(s, dict)),
                       key=lambda s: s["seed"])  # fmt: skip
        for suite in sorted({name for s in seeds for name in s.get("suites", {})}):
            per = [(s["seed"], s["suites"][suite]["success_rate"]["mean"]) for s in seeds
                   if suite in s.get("suites", {})]  # fmt: skip
            spread = _mean_sd([v for _, v in per]) if len(per) == len(seeds) and len(per) > 1 else "–"
            cells = "; ".join(f"s{k}: {v:.2f}" for k, v in per)
            rows.append(f"| {policy} | {suite} | {cells} | {spread} |")
    if not rows:
        return []
    return ["**Training seeds on OOD suites**: success of every seed on the OOD suites it was also "
            "evaluated on after selection (evaluation seed 0), mean ± sd over seeds", "",
            "| policy | suite | success per seed | mean ± sd over seeds |", "|---|---|---|---|", *rows, ""]


def seeds_section(root: Path, env: str, policies: list[str]) -> list[str]:
    """Every training seed's **val** success (what chose the shipped seed), its training wall-clock and,
    where ``train_zoo.py`` evaluated every seed after selection, its **test** success and the mean and
    spread over seeds (the fair comparison of cores: not one val-selected seed each)."""
    rows = []
    for policy in policies:
        data = card_of(root, env, policy)
        seeds = data.get("selection", {}).get("seeds")
        if not seeds or not all(isinstance(s, dict) and "val" in s for s in seeds):
            continue
        shipped = data.get("config", {}).get("seed")
        per_seed, per_test, tests = [], [], []
        for s in sorted(seeds, key=lambda s: s["seed"]):
            mark = "*" if len(seeds) > 1 and s["seed"] == shipped else ""
            per_seed.append(f"s{s['seed']}{mark}: {cell(s['val'].get('success_rate'))} "
                            f"({s['train_wall_clock_s'] / 60:.0f} min)")
            test = (s.get("test") or {}).get("success_rate")
            if test:
                per_test.append(f"s{s['seed']}: {test['mean']:.2f}")
                tests.append(test["mean"])
        spread = _mean_sd(tests) if len(tests) == len(seeds) and len(tests) > 1 else "–"
        rows.append(f"| {policy} | {len(seeds)} | " + "; ".join(per_seed) + " | "
                    + ("; ".join(per_test) or "–") + f" | {spread} |")
    if not rows:
        return []
    return ["**Training seeds**: val-split success of every seed (training wall-clock; `*` = shipped, best "
            "on val) and, where every seed was also evaluated after selection, its test success and the "
            "mean ± sd over seeds", "",
            "| policy | seeds | val success per seed | test success per seed | test, mean ± sd over seeds |",
            "|---|---|---|---|---|", *rows, ""]


def reevaluation_note(root: Path, env: str, policies: list[str]) -> list[str]:
    """Which shipped cards were re-evaluated after an env change (``scripts/reevaluate_zoo.py``): their
    suite tables are current, their training-seed records (val, non-shipped seeds) predate the change."""
    changes: dict[tuple[str, str], list[str]] = {}
    for policy in policies:
        data = card_of(root, env, policy)
        for r in data.get("evaluation", {}).get("reevaluated") or []:
            changes.setdefault((r["date"], r["why"]), []).append(policy)
    return [f"**Re-evaluated {date}** ({why}): {', '.join(names)}. Their suite tables above are measured "
            "after the change; the training-seed tables keep what was measured when the seeds were trained "
            "and selected, before it (non-shipped checkpoints are not kept, so those cannot be re-run)."
            "\n" for (date, why), names in sorted(changes.items())]


def robustness_section(root: Path, path: Path) -> list[str]:
    """Success vs disturbance level (table + the PNG the robustness command drew)."""
    summary = json.loads(path.read_text())
    levels = summary["levels"]
    lines = [f"**Robustness: success vs `{summary['param']}`** ({summary['episodes']} episodes per point, "
             f"condition `{summary['condition']}`)", "",
             "| policy | " + " | ".join(f"{lv:g}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for curve in summary["curves"]:
        lines.append(f"| {curve['name']} | " + " | ".join(cell(m["success_rate"]) for m in curve["metrics"])
                     + " |")
    png = path.with_suffix(".png")
    lines += ["", f"![robustness]({png.relative_to(root)})", ""]
    return lines


def adaptation_section(root: Path) -> list[str]:
    """Online readout adaptation (``scripts/reservoir_adapt.py``): success per condition vs frozen."""
    rows = []
    for path in sorted((root / "results" / "adaptation").glob("*/*-summary.json")):
        summary = json.loads(path.read_text())
        suite = path.name.removesuffix("-summary.json")
        for c in summary["conditions"]:
            rows.append(f"| {path.parent.name} | {suite} | {c['condition']} | {cell(c['success_rate'])} | "
                        f"{cell(c.get('success_minus_frozen'))} | {c['success_rate'].get('n', '–')} |")
    if not rows:
        return []
    return ["### Online readout adaptation (reservoir cores)", "",
            "`frozen` = the shipped readout; `rls-all` = RLS on the readout with the privileged expert "
            "teaching at every step (it never acts, but it is there all episode); `rls-first-K` = the "
            "expert teaches the first K control steps only, then the adapted readout flies alone. "
            "Paired difference of success against `frozen` with a bootstrap CI over the same episodes.", "",
            "| policy | suite | condition | success | success − frozen | episodes |",
            "|---|---|---|---|---|---|", *rows, ""]


def imitation_section(root: Path) -> list[str]:
    """The issue-6 imitation targets (``scripts/imitation_targets.py``): one row per recorded run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from imitation_targets import RECIPES, table

    lines = table(root / "results" / "imitation")
    if not lines:
        return []
    recipes = "; ".join(f"{env}: `{json.dumps(r, sort_keys=True)}`" for env, r in RECIPES.items())
    return ["### Imitation targets", "",
            "**Gated-DAgger imitation** (`scripts/imitation_targets.py run --env ENV --core CORE --seed S`: "
            "expert demos → sequence BC → DAgger rounds driven by the learner with the teacher taking over "
            "near obstacles or when lost → test success of learner and expert on the same 100 unseen test "
            "layouts; the wall-clock is collection + BC + DAgger on the 2 shared cores). *Expert*: the "
            "recipe's teacher, which plans on the whole map; *informed teacher* (`imitation_targets.py "
            "bound --env ENV --seed S`, same episodes): a teacher that knows only what the learner's lidar "
            "has shown it (kept as a perfect map) and, on DroneNav, not the arena edge, which the learner "
            "cannot see either: about what imitation can reach from the learner's observations. *DAgger "
            "rounds (kept)*: rounds run and, where the recipe has `select_last` K, the round whose "
            "checkpoint is the final policy (the best of the last K on 100 val episodes). Recipes "
            f"(`train_imitation.py` arguments): {recipes}.", "", *lines, ""]


def build(root: Path) -> str:
    table = load_results(root)
    if not table:
        return "No results yet: run `scripts/train_zoo.py` (see above)."
    sections = [env_section(root, env, table[env]) for env in sorted(table)]
    return "\n".join(sections + imitation_section(root) + adaptation_section(root))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the README block is out of date")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    readme = args.root / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"README has no {START} ... {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{build(args.root)}\n{END}{tail}"
    if args.check:
        return 0 if new == text else 1
    readme.write_text(new)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
