"""Reports of evaluation results: one run's Markdown table and side-by-side comparisons.

``liquid-control compare a.json b.json ... [--metric success_rate --metric spl] [--out table.md] [--json]``
prints, per metric, a Markdown table with one row per policy and one column per condition (env,
suite/split and ``--set`` overrides). :func:`comparison_table` is what ``scripts/make_tables.py`` uses.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liquid_control.evaluate.metrics import AGGREGATES
from liquid_control.fileio import read_json_object

DEFAULT_COMPARE_METRICS = ("success_rate", "spl")
RATE_METRICS = {"success_rate", "collision_rate", "timeout_rate", "error_rate"}


def format_metric(m: dict[str, Any] | None, digits: int = 2) -> str:
    """``0.93 [0.89, 0.96]`` (mean and 95% CI); ``–`` when there is no value."""
    if not m or m.get("mean") is None:
        return "–"
    lo, hi = m["ci95"]
    return f"{m['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def results_markdown(results: dict[str, Any]) -> str:
    """A Markdown summary of one results.json: header lines and a metric | mean [95% CI] | n table."""
    overrides = json.dumps(results.get("overrides") or {}, sort_keys=True)
    lines = [
        f"# {results['env']} · {results['condition']}",
        "",
        f"- policy: `{policy_name(results)}`",
        f"- episodes: {results['episodes']} (errors: {results.get('errors', 0)}), seed: {results['seed']}",
        f"- split: {results.get('split', '?')}, overrides: `{overrides}`",
        "",
        "| metric | mean [95% CI] | n |",
        "|---|---|---|",
    ]
    names = [*AGGREGATES, "error_rate"]
    for name in names:
        m = results["metrics"].get(name)
        if m is not None:
            lines.append(f"| {name} | {format_metric(m)} | {m.get('n', '')} |")
    return "\n".join(lines) + "\n"


def policy_name(results: dict[str, Any]) -> str:
    """Short name of the evaluated policy: a checkpoint directory's name, or the spec itself."""
    p = results["policy"]
    if isinstance(p, dict):
        return json.dumps(p, sort_keys=True)
    return p if p in ("expert", "random") else Path(p).name or p


def condition_name(results: dict[str, Any], with_env: bool = False) -> str:
    """Column label of a result: condition name plus overrides (and the short env name if asked)."""
    label = results["condition"]
    ov = results.get("overrides") or {}
    if ov:
        from liquid_control.sim.options import flatten

        label += " " + ",".join(f"{k}={v}" for k, v in sorted(flatten(ov).items()))
    if with_env:
        env = results["env"].split("/")[-1].removesuffix("-v0")
        label = f"{env}/{label}"
    return label


def comparison_table(results: Sequence[dict[str, Any]], metric: str = "success_rate", digits: int = 2) -> str:
    """Markdown table of one metric: rows = policies, columns = conditions (in order of first appearance)."""
    if metric not in [*AGGREGATES, "error_rate"]:
        raise ValueError(f"unknown metric {metric!r}; choose from {[*AGGREGATES, 'error_rate']}")
    with_env = len({r["env"] for r in results}) > 1
    rows: list[str] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for r in results:
        row, col = policy_name(r), condition_name(r, with_env)
        if (row, col) in cells:
            raise ValueError(f"two results for policy {row!r} on condition {col!r}")
        rows += [row] if row not in rows else []
        cols += [col] if col not in cols else []
        cells[(row, col)] = format_metric(r["metrics"].get(metric), digits)
    lines = [f"| {metric} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cells.get((row, c), "") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read results.json files (FileNotFoundError / ValueError with the file name on bad input)."""
    out = []
    for p in paths:
        path = Path(p)
        data = read_json_object(path, f"results file {str(path)!r} not found", "{path}: not a results.json")
        missing = {"env", "condition", "policy", "metrics"} - set(data)
        if missing:
            raise ValueError(f"{path}: not a results.json (missing {sorted(missing)})")
        out.append(data)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control compare``."""
    parser.add_argument("results", nargs="+", help="results.json files from `liquid-control evaluate`")
    parser.add_argument("--metric", action="append", default=None,
                        help="metric to tabulate (repeatable; default: success_rate and spl)")
    parser.add_argument("--out", help="also write the tables to this Markdown file")
    parser.add_argument("--json", action="store_true", help="print the compared numbers as JSON instead")


def run(args: argparse.Namespace) -> int:
    """``liquid-control compare``: print side-by-side tables (or JSON)."""
    results = load_results(args.results)
    metrics = args.metric or list(DEFAULT_COMPARE_METRICS)
    tables = "\n".join(comparison_table(results, m) for m in metrics)
    if args.out:
        Path(args.out).write_text(tables)
    if args.json:
        with_env = len({r["env"] for r in results}) > 1
        print(json.dumps([{"policy": policy_name(r), "condition": condition_name(r, with_env),
                           **{m: r["metrics"].get(m) for m in metrics}} for r in results]))
    else:
        print(tables, end="")
    return 0
