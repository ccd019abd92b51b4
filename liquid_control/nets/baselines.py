"""Baseline cores behind the same interface as the liquid ones (see :mod:`liquid_control.nets.core`).

* :class:`LSTMCore`, :class:`GRUCore`: ``torch.nn.LSTM`` / ``GRU`` (the LSTM state packs h and c);
* :class:`MLPCore`: a feed-forward net over the last ``frames`` inputs, kept in the state (frame stacking);
* :class:`EulerCore`: the seed-style liquid step ``h <- h + dt (tanh(W_in x + W_h h) - h) / tau`` with a
  learnable per-neuron ``tau = 1 + softplus(tau_raw)`` (so the explicit Euler step stays stable).

Their output is their hidden/feature vector (``output_size == units``); elapsed times are ignored
except by the Euler core (``dt``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_control.nets.core import RecurrentCore


class LSTMCore(RecurrentCore):
    """``torch.nn.LSTM`` (one layer); state = [h, c] (B, 2*units)."""

    kind = "lstm"

    def __init__(self, input_size: int, output_size: int, units: int = 64) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, units, batch_first=True)
        self.input_size, self.output_size, self.state_size, self.units = input_size, units, 2 * units, units
        self._config = {"units": units}

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        h, c = state[:, : self.units], state[:, self.units :]
        y, (h, c) = self.rnn(x, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()))
        return y, torch.cat([h[0], c[0]], dim=1)


class GRUCore(RecurrentCore):
    """``torch.nn.GRU`` (one layer); state = h (B, units)."""

    kind = "gru"

    def __init__(self, input_size: int, output_size: int, units: int = 64) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, units, batch_first=True)
        self.input_size, self.output_size, self.state_size = input_size, units, units
        self._config = {"units": units}

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        y, h = self.rnn(x, state.unsqueeze(0).contiguous())
        return y, h[0]


class MLPCore(RecurrentCore):
    """Frame-stacked MLP: input = the last ``frames`` inputs (oldest first), tanh hidden layers.

    The state holds the last ``frames`` inputs (B, frames*F); a reset zeroes the older frames.
    """

    kind = "mlp"

    def __init__(
        self, input_size: int, output_size: int, units: int = 64, frames: int = 4, layers: int = 2
    ) -> None:
        super().__init__()
        if frames < 1 or layers < 1:
            raise ValueError(f"frames and layers must be >= 1, got {frames}, {layers}")
        mods: list[nn.Module] = []
        width = frames * input_size
        for _ in range(layers):
            mods += [nn.Linear(width, units), nn.Tanh()]
            width = units
        self.net = nn.Sequential(*mods)
        self.frames = frames
        self.input_size, self.output_size, self.state_size = input_size, units, frames * input_size
        self._config = {"units": units, "frames": frames, "layers": layers}

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        b, t, f = x.shape
        k = self.frames
        seq = torch.cat([state.reshape(b, k, f), x], dim=1)  # (B, k+T, F)
        windows = seq.unfold(1, k, 1)[:, 1:]  # (B, T, F, k): window ending at each new step
        stacked = windows.permute(0, 1, 3, 2).reshape(b, t, k * f)
        return self.net(stacked), seq[:, -k:].reshape(b, k * f)


class EulerCore(RecurrentCore):
    """Learnable-tau explicit Euler liquid step (the seeds' 'liquid' layer)."""

    kind = "euler"

    def __init__(self, input_size: int, output_size: int, units: int = 64) -> None:
        super().__init__()
        self.w_in = nn.Linear(input_size, units)
        self.w_h = nn.Linear(units, units, bias=False)
        self.tau_raw = nn.Parameter(torch.zeros(units))
        self.input_size, self.output_size, self.state_size = input_size, units, units
        self._config = {"units": units}

    @property
    def tau(self) -> Tensor:
        return 1.0 + F.softplus(self.tau_raw)

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        drive = self.w_in(x)
        inv_tau = 1.0 / self.tau
        h, ys = state, []
        for t in range(x.shape[1]):
            rate = inv_tau if timespans is None else inv_tau * timespans[:, t : t + 1]
            h = h + rate * (torch.tanh(drive[:, t] + self.w_h(h)) - h)
            ys.append(h)
        return torch.stack(ys, dim=1), h
