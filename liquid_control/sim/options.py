"""Env options: nested dicts with defaults and validation (a small schema per env).

An env declares a schema ``{"dotted.name": Opt(...)}``; users pass nested dicts
(``layout={"family": "maze"}``) or dotted overrides (``--set layout.density=0.3``). :func:`resolve`
merges them over the defaults and validates every value, raising ``ValueError`` with a clear message
on unknown names or bad values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Opt:
    """One option: default, kind (float/int/bool/str/range/str_or_list), bounds or choices, help."""

    default: Any
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to this option's kind, or raise ValueError."""
        k = self.kind
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"option {name!r} must be a number, got {value!r}")
            value = float(value)
            self._range(name, value)
        elif k == "int":
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float)
                                                                         and value.is_integer())):
                raise ValueError(f"option {name!r} must be an integer, got {value!r}")
            value = int(value)
            self._range(name, value)
        elif k == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"option {name!r} must be true or false, got {value!r}")
        elif k == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError(f"option {name!r} must be one of {list(self.choices or [])}, got {value!r}")
        elif k == "str_or_list":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not items:
                raise ValueError(f"option {name!r} must be a name or a non-empty list of names, "
                                 f"got {value!r}")
            for v in items:
                if not isinstance(v, str) or (self.choices and v not in self.choices):
                    raise ValueError(f"option {name!r}: unknown value {v!r}; "
                                     f"choose from {list(self.choices or [])}")
            value = value if isinstance(value, str) else list(items)
        elif k == "range":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [float(value), float(value)]
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
                raise ValueError(f"option {name!r} must be a [low, high] pair of numbers, got {value!r}")
            value = [float(value[0]), float(value[1])]
            if value[0] > value[1]:
                raise ValueError(f"option {name!r}: low {value[0]} > high {value[1]}")
            for v in value:
                self._range(name, v)
        else:  # pragma: no cover - schema bug
            raise TypeError(f"unknown option kind {k!r}")
        return value

    def _range(self, name: str, value: float) -> None:
        if self.low is not None and value < self.low:
            raise ValueError(f"option {name!r} = {value} is below its minimum {self.low}")
        if self.high is not None and value > self.high:
            raise ValueError(f"option {name!r} = {value} is above its maximum {self.high}")


Schema = Mapping[str, Opt]


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1} -> {"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"option {name!r} conflicts with a value at {p!r}")
        node[leaf] = value
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (nested dicts merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["layout.density=0.3", "layout.family=[forest, maze]"] -> nested dict`` (values as YAML scalars)."""
    flat: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. layout.density=0.3)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"override {item!r} has an empty option name")
        try:
            flat[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: cannot parse value: {exc}") from None
    return unflatten(flat)


def defaults(schema: Schema) -> dict[str, Any]:
    """The nested default options of a schema."""
    return unflatten({name: copy.deepcopy(opt.default) for name, opt in schema.items()})


def resolve(schema: Schema, *overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with every override (in order), validated; raises ValueError on any bad entry."""
    flat = {name: copy.deepcopy(opt.default) for name, opt in schema.items()}
    for override in overrides:
        if not override:
            continue
        for name, value in flatten(override).items():
            if name not in schema:
                close = [n for n in schema if n.split(".")[-1] == name.split(".")[-1]]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown option {name!r}{hint}; known options: {sorted(schema)}")
            flat[name] = value
    for name, opt in schema.items():
        flat[name] = opt.check(name, flat[name])
    return unflatten(flat)


def describe(schema: Schema) -> list[str]:
    """One line per option (name, default, allowed values) for help texts."""
    lines = []
    for name, opt in schema.items():
        lo = "-inf" if opt.low is None else opt.low
        hi = "inf" if opt.high is None else opt.high
        allowed = f"one of {list(opt.choices)}" if opt.choices else f"[{lo}, {hi}]"
        lines.append(f"{name} = {opt.default!r}  ({opt.kind}, {allowed}) {opt.help}".rstrip())
    return lines


def as_list(value: str | Sequence[str]) -> list[str]:
    """A family option (one name or a list) as a list."""
    return [value] if isinstance(value, str) else list(value)
