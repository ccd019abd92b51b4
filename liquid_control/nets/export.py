"""Export of a recurrent model's single control step to TorchScript or ONNX (onnxruntime).

Works for any module with the core signature ``forward(x (B,T,F), state (B,S)) -> (y (B,T,*), state)``
(every core of :mod:`liquid_control.nets.core`, and policies that follow it). The exported graph is one
step: ``(x (1,F), state (1,S)) -> (y (1,*), state (1,S))``; LTC cells are traced through their export form
(plain torch ops, the ``ode_unfolds`` loop unrolled, the weight-only terms folded into constants), which
computes the same function.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def reference_implementation(module: nn.Module) -> Iterator[None]:
    """Temporarily switch every LTC cell in ``module`` to its traceable export form (plain torch ops,
    ``LTCCell._ode_export``: the reference solver regrouped into fewer graph nodes)."""
    from liquid_control.nets.ltc import LTCCell

    cells = [m for m in module.modules() if isinstance(m, LTCCell)]
    saved = [c.implementation for c in cells]
    try:
        for c in cells:
            c.implementation = "reference"
            c._exporting = True
        yield
    finally:
        for c, impl in zip(cells, saved, strict=True):
            c.implementation = impl
            c._exporting = False


class SingleStep(nn.Module):
    """``(x (B,F), state (B,S)) -> (y (B,*), state)``: one step of a sequence model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        y, new_state = self.model(x.unsqueeze(1), state)
        return y[:, 0], new_state


def _examples(model: nn.Module, input_size: int, state_size: int) -> tuple[Tensor, Tensor]:
    ref = next(model.parameters())
    return torch.zeros(1, input_size, dtype=ref.dtype), torch.zeros(1, state_size, dtype=ref.dtype)


def _sizes(model: nn.Module, input_size: int | None, state_size: int | None) -> tuple[int, int]:
    input_size = input_size if input_size is not None else getattr(model, "input_size", None)
    state_size = state_size if state_size is not None else getattr(model, "state_size", None)
    if not isinstance(input_size, int) or not isinstance(state_size, int):
        raise ValueError("pass input_size and state_size (the model does not expose them)")
    return input_size, state_size


def export_torchscript(
    model: nn.Module, path: str | Path, input_size: int | None = None, state_size: int | None = None
) -> torch.jit.ScriptModule:
    """Trace one step of ``model`` and save it (``torch.jit.load(path)`` runs it without this package)."""
    input_size, state_size = _sizes(model, input_size, state_size)
    step = SingleStep(model).eval()
    with reference_implementation(model), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # shape checks become constants of the trace
        traced = torch.jit.trace(step, _examples(model, input_size, state_size), check_trace=False)
    traced.save(str(path))
    return traced


def export_onnx(
    model: nn.Module, path: str | Path, input_size: int | None = None, state_size: int | None = None
) -> Path:
    """Write one step of ``model`` as ONNX with inputs ``x``, ``state`` and outputs ``y``, ``state_out``."""
    input_size, state_size = _sizes(model, input_size, state_size)
    step = SingleStep(model).eval()
    path = Path(path)
    with reference_implementation(model), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            _examples(model, input_size, state_size),
            str(path),
            input_names=["x", "state"],
            output_names=["y", "state_out"],
            dynamo=False,
        )
    return path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session for an exported step (``sess.run(None, {"x": x, "state": h})``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
