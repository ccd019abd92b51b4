"""Migration from ncps: build our LTC/CfC from an ncps model with identical weights and wiring."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from liquid_control.nets.cfc import CfC
from liquid_control.nets.ltc import LTC, LTCCell
from liquid_control.nets.wiring import Wiring


def _wiring_from(ncps_wiring: Any) -> Wiring:
    """Copy an ncps wiring's matrices (and its layers / neuron groups when it is an NCP)."""
    layers = [list(ncps_wiring.get_neurons_of_layer(i)) for i in range(ncps_wiring.num_layers)]
    groups = None
    if ncps_wiring.num_layers == 3:  # ncps NCP: inter, command, motor
        groups = {"inter": layers[0], "command": layers[1], "motor": layers[2]}
    return Wiring.from_matrices(
        np.asarray(ncps_wiring.adjacency_matrix),
        np.asarray(ncps_wiring.sensory_adjacency_matrix),
        int(ncps_wiring.output_dim),
        layers=layers,
        groups=groups,
    )


def _dtype_of(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _copy_state(ours: nn.Module, theirs: nn.Module) -> nn.Module:
    ours = ours.to(_dtype_of(theirs))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours


def _ltc_cell_kwargs(cell: Any) -> dict[str, Any]:
    return {
        "input_mapping": cell._input_mapping,
        "output_mapping": cell._output_mapping,
        "ode_unfolds": cell._ode_unfolds,
        "epsilon": cell._epsilon,
        "implicit_param_constraints": cell._implicit_param_constraints,
    }


def from_ncps(module: nn.Module, implementation: str = "auto") -> nn.Module:
    """Our :class:`LTC`, :class:`LTCCell` or :class:`CfC` equivalent of an ncps ``LTC``/``LTCCell``/``CfC``.

    Weights, wiring masks and polarities are copied, so outputs are identical (ncps bugs aside:
    batched per-sample time spans work here). Mixed-memory models are not supported.
    """
    try:
        from ncps import torch as ncps_torch
    except ImportError as exc:  # pragma: no cover - ncps is a test dependency
        raise ValueError("from_ncps needs the ncps package (pip install ncps)") from exc
    if isinstance(module, (ncps_torch.LTC, ncps_torch.CfC)) and getattr(module, "use_mixed", False):
        raise ValueError("ncps models with mixed_memory=True are not supported")
    if isinstance(module, ncps_torch.LTCCell):
        ours = LTCCell(
            _wiring_from(module._wiring), implementation=implementation, **_ltc_cell_kwargs(module)
        )
        return _copy_state(ours, module)
    if isinstance(module, ncps_torch.LTC):
        ours = LTC(
            module.input_size,
            _wiring_from(module._wiring),
            return_sequences=module.return_sequences,
            batch_first=module.batch_first,
            implementation=implementation,
            **_ltc_cell_kwargs(module.rnn_cell),
        )
        return _copy_state(ours, module)
    if isinstance(module, ncps_torch.CfC):
        cell = module.rnn_cell
        if isinstance(cell, ncps_torch.WiredCfCCell):
            mode = cell._layers[0].mode
            ours = CfC(
                module.input_size,
                _wiring_from(cell._wiring),
                proj_size=module.proj_size,
                return_sequences=module.return_sequences,
                batch_first=module.batch_first,
                mode=mode,
            )
        else:
            linears = [m for m in (cell.backbone or []) if isinstance(m, nn.Linear)]
            dropouts = [m for m in (cell.backbone or []) if isinstance(m, nn.Dropout)]
            act = type(cell.backbone[1]).__name__ if cell.backbone is not None else "LeCun"
            activation = {
                "LeCun": "lecun_tanh",
                "Tanh": "tanh",
                "ReLU": "relu",
                "SiLU": "silu",
                "GELU": "gelu",
            }[act]
            ours = CfC(
                module.input_size,
                cell.hidden_size,
                proj_size=module.proj_size,
                return_sequences=module.return_sequences,
                batch_first=module.batch_first,
                mode=cell.mode,
                activation=activation,
                backbone_units=linears[0].out_features if linears else 0,
                backbone_layers=cell.backbone_layers,
                backbone_dropout=dropouts[0].p if dropouts else 0.0,
            )
        return _copy_state(ours, module)
    raise ValueError(f"from_ncps supports ncps LTC, LTCCell and CfC, not {type(module).__name__}")
