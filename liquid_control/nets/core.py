"""The recurrent-core interface (docs/internals.md) and the factory that builds any core by name.

A core maps a sequence of features to a sequence of outputs while carrying a flat state::

    core = make_core("ltc", input_size=40, output_size=4, budget=20_000)
    y, state = core(x)                      # x (B,T,F) -> y (B,T,core.output_size), state (B,state_size)
    y, state = core(x, state, resets=dones)  # resets (B,T): zero the state before step t

Kinds and their keyword arguments (``units`` is the size that ``budget`` chooses when not given):

* ``ltc``: ``units`` (32), ``wiring`` = ``"autoncp"`` | ``"fc"`` | ``"random"`` | a Wiring (``"autoncp"``),
  ``sparsity`` (0.5), ``ode_unfolds`` (6), ``seed`` (22222), ``implicit_constraints`` (True),
  ``implementation`` (``"auto"``), ``input_mapping``/``output_mapping`` (``"affine"``).
  ``output_size`` = motor neurons (for ``"fc"`` the first ``output_size`` neurons are read out).
* ``cfc``: ``units`` (32), ``wiring`` = None (plain CfC) | ``"autoncp"`` | ``"fc"`` | ``"random"`` | Wiring,
  ``mode`` (``"default"``), ``backbone_units`` (64), ``backbone_layers`` (1), ``backbone_dropout`` (0),
  ``sparsity``, ``seed``. Wired: ``output_size`` = motor neurons; plain: output is the ``units`` hidden state.
* ``lstm``, ``gru``: ``units`` (64) hidden width; output = hidden state (``output_size`` attribute = units).
* ``mlp``: ``units`` (64) hidden width, ``frames`` (4) stacked inputs kept in the state, ``layers`` (2).
* ``euler``: ``units`` (64); seed-style learnable-tau liquid step
  ``h <- h + dt (tanh(W_in x + W_h h) - h) / tau``.

For lstm/gru/mlp/euler the ``output_size`` argument only informs the budget (it is not their width):
a policy head maps ``core.output_size`` features to actions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_control.nets.ltc import check_input

KINDS = ("ltc", "cfc", "lstm", "gru", "mlp", "euler", "esn", "lsm")


class RecurrentCore(nn.Module):
    """Base of every core: argument checks, zero initial state and reset-mask handling.

    Subclasses set ``input_size``, ``output_size``, ``state_size`` and implement
    ``_run(x (B,T,F), state (B,S), timespans (B,T) | None) -> (y, state)`` for a reset-free chunk.
    """

    kind: str = ""
    input_size: int
    output_size: int
    state_size: int

    def initial_state(self, batch: int) -> Tensor:
        """Zeros of shape (batch, state_size) on the core's device and dtype."""
        ref = next(self.parameters())
        return torch.zeros(batch, self.state_size, device=ref.device, dtype=ref.dtype)

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this core with :func:`make_core` (JSON-able)."""
        return dict(self._config)

    def forward(
        self,
        x: Tensor,
        state: Tensor | None = None,
        resets: Tensor | None = None,
        timespans: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if x.dim() != 3:
            raise ValueError(f"core input must be (B, T, F), got shape {tuple(x.shape)}")
        check_input(x, self.input_size, "core input")
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(batch).to(x.dtype)
        elif state.shape != (batch, self.state_size):
            raise ValueError(f"state must be ({batch}, {self.state_size}), got {tuple(state.shape)}")
        for name, t in (("resets", resets), ("timespans", timespans)):
            if t is not None and tuple(t.shape[:2]) != (batch, steps):
                raise ValueError(f"{name} must be (B, T) = ({batch}, {steps}), got {tuple(t.shape)}")
        if timespans is not None and timespans.dim() == 3:
            timespans = timespans[..., 0]
        if resets is None:
            return self._run(x, state, timespans)
        resets = resets.to(torch.bool)
        starts = [0] + [t for t in range(1, steps) if bool(resets[:, t].any())]
        ys = []
        for i, t0 in enumerate(starts):
            t1 = starts[i + 1] if i + 1 < len(starts) else steps
            keep = (~resets[:, t0]).to(state.dtype).unsqueeze(-1)
            ts = None if timespans is None else timespans[:, t0:t1]
            y, state = self._run(x[:, t0:t1], state * keep, ts)
            ys.append(y)
        return torch.cat(ys, dim=1), state


class LTCCore(RecurrentCore):
    """An LTC (optionally NCP-wired) behind the core interface."""

    kind = "ltc"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        units: int = 32,
        wiring: Any = "autoncp",
        sparsity: float = 0.5,
        ode_unfolds: int = 6,
        seed: int = 22222,
        implicit_constraints: bool = True,
        implementation: str = "auto",
        input_mapping: str = "affine",
        output_mapping: str = "affine",
    ) -> None:
        super().__init__()
        from liquid_control.nets.ltc import LTC

        w = build_wiring(wiring, units, output_size, sparsity, seed)
        self.ltc = LTC(
            input_size,
            w,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            implicit_param_constraints=implicit_constraints,
            implementation=implementation,
        )
        self.input_size, self.output_size, self.state_size = (
            input_size,
            self.ltc.output_size,
            self.ltc.state_size,
        )
        self._config = {
            "units": self.state_size,
            "wiring": wiring if isinstance(wiring, str) else "custom",
            "sparsity": sparsity,
            "ode_unfolds": ode_unfolds,
            "seed": seed,
            "implicit_constraints": implicit_constraints,
            "implementation": implementation,
            "input_mapping": input_mapping,
            "output_mapping": output_mapping,
        }

    @property
    def wiring(self):
        return self.ltc.wiring

    def apply_constraints(self) -> None:
        """Clip constrained parameters (only matters with ``implicit_constraints=False``)."""
        self.ltc.apply_constraints()

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.ltc(x, state, timespans)


class CfCCore(RecurrentCore):
    """A CfC (plain or wired) behind the core interface."""

    kind = "cfc"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        units: int = 32,
        wiring: Any = None,
        mode: str = "default",
        backbone_units: int = 64,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        sparsity: float = 0.5,
        seed: int = 22222,
    ) -> None:
        super().__init__()
        from liquid_control.nets.cfc import CfC

        if wiring is None:
            self.cfc = CfC(
                input_size,
                units,
                mode=mode,
                backbone_units=backbone_units,
                backbone_layers=backbone_layers,
                backbone_dropout=backbone_dropout,
            )
        else:
            self.cfc = CfC(input_size, build_wiring(wiring, units, output_size, sparsity, seed), mode=mode)
        self.input_size, self.output_size, self.state_size = (
            input_size,
            self.cfc.output_size,
            self.cfc.state_size,
        )
        self._config = {
            "units": self.state_size,
            "wiring": wiring if wiring is None or isinstance(wiring, str) else "custom",
            "mode": mode,
            "backbone_units": backbone_units,
            "backbone_layers": backbone_layers,
            "backbone_dropout": backbone_dropout,
            "sparsity": sparsity,
            "seed": seed,
        }

    @property
    def wiring(self):
        return self.cfc.rnn_cell.wiring if self.cfc.wired else None

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.cfc(x, state, timespans)


def build_wiring(wiring: Any, units: int, output_size: int, sparsity: float = 0.5, seed: int = 22222):
    """A wiring from a name ('autoncp', 'fc', 'random') or a Wiring object (used as is)."""
    from liquid_control.nets.wiring import AutoNCP, FullyConnected, RandomSparse, Wiring

    if isinstance(wiring, Wiring):
        return wiring
    if wiring == "autoncp":
        return AutoNCP(units, output_size, sparsity_level=sparsity, seed=seed)
    if wiring == "fc":
        return FullyConnected(units, output_dim=output_size, erev_init_seed=seed)
    if wiring == "random":
        return RandomSparse(units, output_dim=output_size, sparsity_level=sparsity, seed=seed)
    raise ValueError(f"unknown wiring {wiring!r}: use 'autoncp', 'fc', 'random' or a Wiring object")


def _classes() -> dict[str, type[RecurrentCore]]:
    from liquid_control.nets import baselines
    from liquid_control.nets.reservoir import reservoir_kinds

    return {
        "ltc": LTCCore,
        "cfc": CfCCore,
        "lstm": baselines.LSTMCore,
        "gru": baselines.GRUCore,
        "mlp": baselines.MLPCore,
        "euler": baselines.EulerCore,
        **reservoir_kinds(),  # esn, lsm (nets/reservoir.py)
    }


def _check_sizes(input_size: int, output_size: int) -> None:
    for name, v in (("input_size", input_size), ("output_size", output_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def make_core(
    kind: str, input_size: int, output_size: int, budget: int | None = None, **kw: Any
) -> RecurrentCore:
    """Build a core by name; with ``budget`` (trainable parameters) and no ``units``, fit the budget."""
    classes = _classes()
    if kind not in classes:
        raise ValueError(f"unknown core kind {kind!r}; choose from {KINDS}")
    _check_sizes(input_size, output_size)
    if budget is not None and "units" not in kw:
        kw["units"] = size_for_budget(kind, budget, input_size, output_size, **kw)
    if "units" in kw:
        u = kw["units"]
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ValueError(f"units must be a positive int, got {u!r}")
    try:
        return classes[kind](input_size, output_size, **kw)
    except TypeError as exc:  # unknown keyword
        raise ValueError(f"bad arguments for core {kind!r}: {exc}") from exc


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def size_for_budget(
    kind: str, budget: int, input_size: int, output_size: int, tolerance: float = 0.10, **kw: Any
) -> int:
    """The ``units`` whose trainable-parameter count (core alone) is closest to ``budget``.

    Raises ValueError when no size lands within ``tolerance`` (relative) of the budget.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    kw = {k: v for k, v in kw.items() if k != "units"}
    by_formula = getattr(_classes().get(kind), "units_for_budget", None)
    if by_formula is not None:  # reservoirs: only the readout is trainable, its size is a formula
        return by_formula(budget, input_size, output_size, tolerance)
    wiring = kw.get("wiring", "autoncp" if kind == "ltc" else None)
    if kind in ("ltc", "cfc") and wiring is not None and not isinstance(wiring, str):
        raise ValueError("size_for_budget needs a wiring name, not a built wiring (its size is fixed)")
    lo = {"autoncp": output_size + 3, None: 1}.get(wiring, output_size) if kind in ("ltc", "cfc") else 1
    probe = dict(kw)
    if (
        kind == "ltc"
    ):  # an LTC's trainable count does not depend on which synapses exist: build FC, it is quick
        probe["wiring"] = "fc"

    def count(n: int) -> int:
        with torch.device("meta"):
            return _trainable(make_core(kind, input_size, output_size, units=n, **probe))

    hi = max(lo, 8)
    while count(hi) < budget:
        if hi > 1 << 14:
            raise ValueError(f"budget {budget} is out of reach for core {kind!r}")
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count is increasing in n
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda n: abs(count(n) - budget))
    got = count(best)
    if abs(got - budget) > tolerance * budget:
        raise ValueError(
            f"no {kind} size lands within {tolerance:.0%} of {budget} parameters "
            f"(closest: {best} units, {got})"
        )
    return best
