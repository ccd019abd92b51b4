"""Closed-form continuous-time (CfC) cells with ncps 1.0.1 semantics, plus the wired CfC.

Modes (``h'`` the new state, ``bb`` the backbone output over ``[x, h]``):

* ``default``: ``h' = tanh(ff1(bb)) * (1 - t) + t * tanh(ff2(bb))``,
  ``t = sigmoid(time_a(bb) ts + time_b(bb))``
* ``no_gate``: ``h' = tanh(ff1(bb)) + t * tanh(ff2(bb))``
* ``pure``: ``h' = -A exp(-ts (|w_tau| + |ff1(bb)|)) ff1(bb) + A``

Parameter and module names are those of ncps, so an ncps state dict loads directly.
The wired CfC stacks one CfC cell per wiring layer (inter, command, motor), masked by the wiring.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_control.nets.ltc import check_input, run_sequence
from liquid_control.nets.wiring import Wiring, resolve_wiring

MODES = ("default", "pure", "no_gate")


class LeCunTanh(nn.Module):
    """1.7159 * tanh(0.666 x)."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS = {"lecun_tanh": LeCunTanh, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def _time_column(ts: float | Tensor, batch: int, like: Tensor) -> float | Tensor:
    """Elapsed time as a float or a (B,1) / 0-d tensor that broadcasts against (B,H)."""
    if not torch.is_tensor(ts):
        return float(ts)
    ts = ts.to(like.dtype)
    if ts.dim() == 0 or (ts.numel() == 1 and batch != 1):
        return ts.reshape(())
    if ts.shape not in ((batch,), (batch, 1)):
        raise ValueError(
            f"elapsed time must be a scalar, (B,) or (B,1) with B={batch}; got {tuple(ts.shape)}"
        )
    return ts.reshape(batch, 1)


class CfCCell(nn.Module):
    """One CfC step: ``forward(input (B,F), hx (B,H), ts) -> (h', h')``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        sparsity_mask: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        for name, value, lo in (
            ("input_size", input_size, 1),
            ("hidden_size", hidden_size, 1),
            ("backbone_layers", backbone_layers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        if mode not in MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; valid: {MODES}")
        if backbone_activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {backbone_activation!r}; valid: {sorted(ACTIVATIONS)}")
        if backbone_layers > 0 and backbone_units < 1:
            raise ValueError(f"backbone_units must be >= 1 with backbone layers, got {backbone_units}")
        if not 0.0 <= backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
        self.input_size, self.hidden_size, self.mode = int(input_size), int(hidden_size), mode
        self.backbone_layers = int(backbone_layers)
        act = ACTIVATIONS[backbone_activation]
        self.backbone: nn.Module | None = None
        if backbone_layers > 0:
            # same layer order as ncps (dropout only after the 2nd and later layers) so state dicts match
            layers: list[nn.Module] = [nn.Linear(input_size + hidden_size, backbone_units), act()]
            for _ in range(1, backbone_layers):
                layers += [nn.Linear(backbone_units, backbone_units), act()]
                if backbone_dropout > 0.0:
                    layers.append(nn.Dropout(backbone_dropout))
            self.backbone = nn.Sequential(*layers)
        if sparsity_mask is None:
            self.sparsity_mask: Tensor | None = None
        else:
            self.register_buffer(
                "sparsity_mask", torch.tensor(np.abs(np.asarray(sparsity_mask).T), dtype=torch.float32)
            )
        width = hidden_size + input_size if backbone_layers == 0 else backbone_units
        self.ff1 = nn.Linear(width, hidden_size)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.ff2 = nn.Linear(width, hidden_size)
            self.time_a = nn.Linear(width, hidden_size)
            self.time_b = nn.Linear(width, hidden_size)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.xavier_uniform_(p)

    @property
    def state_size(self) -> int:
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def masked_out_params(self) -> int:
        """Entries of ff1/ff2 weights zeroed by the wiring mask (for count_params)."""
        if self.sparsity_mask is None:
            return 0
        zeros = int((self.sparsity_mask == 0).sum())
        return zeros * (1 if self.mode == "pure" else 2)

    def _linear(self, layer: nn.Linear, x: Tensor) -> Tensor:
        weight = layer.weight if self.sparsity_mask is None else layer.weight * self.sparsity_mask
        return F.linear(x, weight, layer.bias)

    def forward(self, input: Tensor, hx: Tensor, ts: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        ts = _time_column(ts, input.shape[0], input)
        x = torch.cat([input, hx], dim=1)
        if self.backbone is not None:
            x = self.backbone(x)
        ff1 = self._linear(self.ff1, x)
        if self.mode == "pure":
            h = -self.A * torch.exp(-ts * (torch.abs(self.w_tau) + torch.abs(ff1))) * ff1 + self.A
            return h, h
        ff1 = torch.tanh(ff1)
        ff2 = torch.tanh(self._linear(self.ff2, x))
        t = torch.sigmoid(self.time_a(x) * ts + self.time_b(x))
        h = ff1 + t * ff2 if self.mode == "no_gate" else ff1 * (1.0 - t) + t * ff2
        return h, h


class WiredCfCCell(nn.Module):
    """CfC layered by a wiring: layer l sees layer l-1 (or the inputs) through the wiring's synapses."""

    def __init__(self, input_size: int | None, wiring: Wiring, mode: str = "default") -> None:
        super().__init__()
        self._wiring = resolve_wiring(wiring, input_size)
        self._layer_sizes: list[int] = []
        in_features = int(self._wiring.input_dim)
        adj, sens = self._wiring.adjacency_matrix, self._wiring.sensory_adjacency_matrix
        for layer in range(self._wiring.num_layers):
            ids = self._wiring.get_neurons_of_layer(layer)
            if layer == 0:
                mask = sens[:, ids]
            else:
                mask = adj[np.ix_(self._wiring.get_neurons_of_layer(layer - 1), ids)]
            mask = np.concatenate([mask, np.ones((len(ids), len(ids)))], axis=0)
            cell = CfCCell(in_features, len(ids), mode, "lecun_tanh", 0, 0, 0.0, sparsity_mask=mask)
            self.add_module(f"layer_{layer}", cell)
            self._layer_sizes.append(len(ids))
            in_features = len(ids)

    @property
    def wiring(self) -> Wiring:
        return self._wiring

    @property
    def layers(self) -> list[CfCCell]:
        return [getattr(self, f"layer_{i}") for i in range(len(self._layer_sizes))]

    @property
    def layer_sizes(self) -> list[int]:
        return list(self._layer_sizes)

    @property
    def state_size(self) -> int:
        return self._wiring.units

    @property
    def output_size(self) -> int:
        return self._layer_sizes[-1]

    def forward(self, input: Tensor, hx: Tensor, ts: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        states = torch.split(hx, self._layer_sizes, dim=1)
        new, x = [], input
        for cell, h in zip(self.layers, states, strict=True):
            x, _ = cell(x, h, ts)
            new.append(x)
        return x, torch.cat(new, dim=1)


class CfC(nn.Module):
    """A CfC over sequences (like ``ncps.torch.CfC``): ``units`` an int or a wiring (wired CfC).

    ``forward(input, hx=None, timespans=None, resets=None) -> (output, h_n)`` with the same shapes as
    :class:`liquid_control.nets.ltc.LTC`. ``proj_size`` adds a linear read-out (unwired mode).
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        proj_size: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.batch_first, self.return_sequences, self.proj_size = batch_first, return_sequences, proj_size
        if isinstance(units, Wiring):
            if backbone_units is not None or backbone_layers is not None or backbone_dropout is not None:
                raise ValueError("a wired CfC has no backbone: do not pass backbone_units/layers/dropout")
            self.wired = True
            self.rnn_cell: nn.Module = WiredCfCCell(input_size, units, mode)
            self.state_size = units.units
            self.output_size = units.output_dim
        else:
            self.wired = False
            self.rnn_cell = CfCCell(
                input_size,
                units,
                mode,
                activation,
                128 if backbone_units is None else backbone_units,
                1 if backbone_layers is None else backbone_layers,
                0.0 if backbone_dropout is None else backbone_dropout,
            )
            self.state_size = int(units)
            self.output_size = int(units)
        self.fc: nn.Module = nn.Identity() if proj_size is None else nn.Linear(self.output_size, proj_size)

    def forward(
        self,
        input: Tensor,
        hx: Tensor | None = None,
        timespans: float | Tensor | None = None,
        resets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_input(input, self.input_size)
        return run_sequence(
            self.rnn_cell,
            input,
            hx,
            timespans,
            resets,
            self.batch_first,
            self.return_sequences,
            output_fn=self.fc,
        )
