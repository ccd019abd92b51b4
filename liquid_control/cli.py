"""The `liquid-control` console command (also `python -m liquid_control`).

Each command lives in the module that does the work: it defines ``add_arguments(parser)`` and
``run(args) -> int``. This file only maps command words to those modules (imported lazily, so
``liquid-control --help`` stays fast and a command never pays for another's imports).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command words -> (module, one-line help). Two words make a sub-command ("train bc").
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("collect",): ("liquid_control.learn.demos", "run the expert, write a demonstration dataset"),
    ("train", "bc"): ("liquid_control.learn.bc", "imitation: sequence BC (+ DAgger rounds)"),
    ("train", "ppo"): ("liquid_control.learn.ppo", "PPO (stable-baselines3), optionally warm-started"),
    ("evaluate",): ("liquid_control.evaluate.runner", "closed-loop evaluation on a split or suite"),
    ("compare",): ("liquid_control.evaluate.report", "side-by-side table of results.json files"),
    ("robustness",): ("liquid_control.evaluate.robustness", "success vs a disturbance level: PNG + JSON"),
    ("render",): ("liquid_control.render", "render an episode to MP4/GIF"),
    ("plot", "wiring"): ("liquid_control.plots", "draw a checkpoint's wiring and connectivity matrix"),
    ("plot", "activity"): ("liquid_control.plots", "heat map of neuron activity over an episode"),
    ("info",): ("liquid_control.learn.checkpoint", "architecture, parameter counts, provenance of a CKPT"),
    ("bench", "cells"): ("liquid_control.bench.cells", "LTC/CfC/LSTM speed vs ncps in one run"),
    ("bench", "envs"): ("liquid_control.bench.envs", "env steps/s vs a raw-PyBullet loop in one run"),
    ("bench", "ppo"): ("liquid_control.bench.ppo", "PPO env-steps/s, LTC vs sb3-contrib LSTM"),
    ("bench", "readout"): ("liquid_control.bench.readout", "reservoir readout fit time for 100k demo steps"),
}

USER_ERRORS = (ValueError, FileNotFoundError, KeyError, NotADirectoryError, PermissionError)


def _module_for(words: tuple[str, ...]):
    module = importlib.import_module(COMMANDS[words][0])
    # a module serving several sub-commands ("plot wiring", "plot activity") names functions by word
    suffix = "_" + words[-1] if len(words) > 1 and hasattr(module, "add_arguments_" + words[-1]) else ""
    return getattr(module, "add_arguments" + suffix), getattr(module, "run" + suffix)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the module of the command named in ``argv`` is imported."""
    parser = argparse.ArgumentParser(prog="liquid-control", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, (_, help_text) in COMMANDS.items():
        if len(words) == 1:
            p = sub.add_parser(words[0], help=help_text)
        else:
            if words[0] not in groups:
                g = sub.add_parser(words[0], help=f"{words[0]} sub-commands")
                groups[words[0]] = g.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            p = groups[words[0]].add_parser(words[1], help=help_text)
        p.set_defaults(_words=words)
        if tuple(argv[: len(words)]) == words:
            add_arguments, _ = _module_for(words)
            add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn user errors into a one-line message and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    words = getattr(args, "_words", None)
    if words is None:
        parser.print_help()
        return 2
    _, run = _module_for(words)
    try:
        return int(run(args) or 0)
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"liquid-control {' '.join(words)}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
