"""Liquid time-constant (LTC) cell and sequence model with the ncps 1.0.1 equations.

One call of :class:`LTCCell` advances the neuron potentials ``v`` by the elapsed time with
``ode_unfolds`` steps of the fused semi-implicit solver (DESIGN.md §5)::

    a   = f(sensory_w) * sigmoid(sensory_sigma * (x - sensory_mu)) * sensory_mask      (once per step)
    v  <- (cm_t v + f(gleak) vleak + sum_i w_act erev + sum_s a sensory_erev)
          / (cm_t + f(gleak) + sum_i w_act + sum_s a + eps),
    w_act = f(w) * sigmoid(sigma * (v_i - mu)) * mask,   cm_t = f(cm) * unfolds / elapsed_time

``f`` is softplus (implicit constraints) or the identity plus :meth:`LTCCell.apply_constraints`
(clip at 0) after each optimiser step. Masks are buffers, not parameters. Parameter names are those
of ncps, so an ncps state dict loads directly (see :func:`liquid_control.nets.convert.from_ncps`).

Three implementations compute the same function: ``"reference"`` (dense, readable, autograd),
``"fused"`` (:mod:`liquid_control.nets.ltc_fast`: synapse lists, analytic backward over the unfolds,
no B x N x N tensors kept for autograd) and ``"numba"`` (:mod:`liquid_control.nets.ltc_numba`: compiled
kernels; training runs fast float32/float64 kernels, inference without gradients the compat kernel
whose float bits the shipped policies were evaluated with). ``"auto"`` (default) is numba when it is
importable, else fused.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_control.nets import ltc_fast

try:  # compiled kernels; the torch paths serve when numba is missing
    from liquid_control.nets import ltc_numba
except ImportError:  # pragma: no cover - depends on the installation
    ltc_numba = None
from liquid_control.nets.wiring import Wiring, resolve_wiring

MAPPINGS = ("affine", "linear", "none")
IMPLEMENTATIONS = ("auto", "reference", "fused", "numba")

INIT_RANGES = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}


def _uniform(shape: tuple[int, ...], name: str) -> Tensor:
    lo, hi = INIT_RANGES[name]
    return torch.rand(*shape) * (hi - lo) + lo


_NUMBA_DTYPES = (torch.float32, torch.float64)


def _numba_takes(x: Tensor) -> bool:
    """Whether the compiled kernels can take ``x`` (a CPU tensor of a dtype they are built for)."""
    return x.is_cpu and x.dtype in _NUMBA_DTYPES


def _time_rows(elapsed_time: float | Tensor, batch: int) -> float | Tensor:
    """Elapsed time of one step as a scalar or a (1, B) row for :meth:`LTCCell.sequence`."""
    if not torch.is_tensor(elapsed_time) or elapsed_time.numel() == 1 and batch != 1:
        return float(elapsed_time)
    if elapsed_time.shape not in ((batch,), (batch, 1)) and elapsed_time.dim() != 0:
        raise ValueError(
            f"elapsed_time must be a scalar, (B,) or (B,1) with B={batch}; got {tuple(elapsed_time.shape)}"
        )
    return elapsed_time.reshape(1, batch)


def check_input(x: Tensor, width: int, what: str = "input") -> None:
    """Raise ValueError on a wrong feature width or non-finite values."""
    if x.shape[-1] != width:
        raise ValueError(f"{what} has {x.shape[-1]} features, expected {width} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        return
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        # numpy: no thread-pool overhead (torch's parallel kernel took milliseconds on a busy machine)
        finite = bool(np.isfinite(x.detach().numpy()).all())
    else:
        finite = bool(torch.isfinite(x).all())
    if not finite:
        raise ValueError(f"{what} contains NaN or inf")


class LTCCell(nn.Module):
    """One LTC step: ``forward(inputs (B,S), state (B,N), elapsed_time=1.0) -> (motor outputs, state)``.

    ``elapsed_time`` may be a float, a 0-d tensor, or a tensor of shape (B,) or (B, 1).
    """

    def __init__(
        self,
        wiring: Wiring | int,
        in_features: int | None = None,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = False,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        if input_mapping not in MAPPINGS or output_mapping not in MAPPINGS:
            raise ValueError(f"input/output mapping must be one of {MAPPINGS}")
        if isinstance(ode_unfolds, bool) or not isinstance(ode_unfolds, int) or ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be an integer >= 1, got {ode_unfolds!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        self._wiring = resolve_wiring(wiring, in_features)
        self._input_mapping = input_mapping
        self._output_mapping = output_mapping
        self._ode_unfolds = ode_unfolds
        self._epsilon = float(epsilon)
        self._implicit_param_constraints = bool(implicit_param_constraints)
        self.implementation = implementation
        n, s, m = self.state_size, self.sensory_size, self.motor_size
        self.gleak = nn.Parameter(_uniform((n,), "gleak"))
        self.vleak = nn.Parameter(_uniform((n,), "vleak"))
        self.cm = nn.Parameter(_uniform((n,), "cm"))
        self.sigma = nn.Parameter(_uniform((n, n), "sigma"))
        self.mu = nn.Parameter(_uniform((n, n), "mu"))
        self.w = nn.Parameter(_uniform((n, n), "w"))
        self.erev = nn.Parameter(torch.tensor(self._wiring.erev_initializer(), dtype=torch.float32))
        self.sensory_sigma = nn.Parameter(_uniform((s, n), "sensory_sigma"))
        self.sensory_mu = nn.Parameter(_uniform((s, n), "sensory_mu"))
        self.sensory_w = nn.Parameter(_uniform((s, n), "sensory_w"))
        self.sensory_erev = nn.Parameter(
            torch.tensor(self._wiring.sensory_erev_initializer(), dtype=torch.float32)
        )
        self.register_buffer(
            "sparsity_mask", torch.tensor(abs(self._wiring.adjacency_matrix), dtype=torch.float32)
        )
        self.register_buffer(
            "sensory_sparsity_mask",
            torch.tensor(abs(self._wiring.sensory_adjacency_matrix), dtype=torch.float32),
        )
        if input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(s))
        if input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(s))
        if output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(m))
        if output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(m))
        self._edge_cache: dict[str, tuple] = {}
        self._exporting = False  # nets.export traces _ode_export

    def _drop_caches(self) -> None:
        """Forget every copy derived from the parameters and buffers (they were swapped or converted)."""
        if self.__dict__.get("_edge_cache"):  # absent while nn.Module.__init__ runs
            self._edge_cache.clear()

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name in self._parameters or name in self._buffers:
            self._drop_caches()

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        super().register_parameter(name, param)
        self._drop_caches()

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        super().register_buffer(name, tensor, persistent)
        self._drop_caches()

    # ----- sizes -----------------------------------------------------------------------------
    @property
    def wiring(self) -> Wiring:
        return self._wiring

    @property
    def state_size(self) -> int:
        return self._wiring.units

    @property
    def sensory_size(self) -> int:
        return int(self._wiring.input_dim)

    @property
    def motor_size(self) -> int:
        return self._wiring.output_dim

    @property
    def output_size(self) -> int:
        return self.motor_size

    @property
    def ode_unfolds(self) -> int:
        return self._ode_unfolds

    @property
    def synapse_count(self) -> int:
        return int(self.sparsity_mask.count_nonzero())

    @property
    def sensory_synapse_count(self) -> int:
        return int(self.sensory_sparsity_mask.count_nonzero())

    def masked_out_params(self) -> int:
        """Trainable entries that cannot affect the output (masked-out synapses): for count_params."""
        n, s = self.state_size, self.sensory_size
        per_synapse = sum(int(p.requires_grad) for p in (self.w, self.sigma, self.mu, self.erev))
        per_sensory = sum(
            int(p.requires_grad)
            for p in (self.sensory_w, self.sensory_sigma, self.sensory_mu, self.sensory_erev)
        )
        return per_synapse * (n * n - self.synapse_count) + per_sensory * (s * n - self.sensory_synapse_count)

    # ----- constraints -----------------------------------------------------------------------
    def _positive(self, p: Tensor) -> Tensor:
        return F.softplus(p) if self._implicit_param_constraints else p

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Clip w, sensory_w, cm, gleak at 0: call after each optimiser step in clip mode (else a no-op)."""
        if not self._implicit_param_constraints:
            for p in (self.w, self.sensory_w, self.cm, self.gleak):
                p.clamp_(min=0.0)

    apply_weight_constraints = apply_constraints  # ncps name

    # ----- step ------------------------------------------------------------------------------
    def _map_inputs(self, x: Tensor) -> Tensor:
        if self._input_mapping in ("affine", "linear"):
            x = x * self.input_w
        if self._input_mapping == "affine":
            x = x + self.input_b
        return x

    def _map_outputs(self, v: Tensor) -> Tensor:
        out = v[:, : self.motor_size] if self.motor_size < self.state_size else v
        if self._output_mapping in ("affine", "linear"):
            out = out * self.output_w
        if self._output_mapping == "affine":
            out = out + self.output_b
        return out

    def _cm_t(self, elapsed_time: float | Tensor, batch: int) -> Tensor:
        """cm / (elapsed/unfolds), shaped (N,) for a scalar time or (B, N) for per-sample times."""
        cm = self._positive(self.cm)
        if not torch.is_tensor(elapsed_time):
            return cm / (float(elapsed_time) / self._ode_unfolds)
        ts = elapsed_time.to(cm.dtype)
        if ts.dim() == 0 or ts.numel() == 1 and batch != 1:
            return cm / (ts.reshape(()) / self._ode_unfolds)
        if ts.shape not in ((batch,), (batch, 1)):
            raise ValueError(
                f"elapsed_time must be a scalar, (B,) or (B,1) with B={batch}; got {tuple(ts.shape)}"
            )
        return cm / (ts.reshape(batch, 1) / self._ode_unfolds)

    def use_fused(self) -> bool:
        return self.implementation != "reference"

    def resolved_implementation(self, x: Tensor | None = None) -> str:
        """The path a call takes: 'numba' (compiled, CPU), 'fused' (torch) or 'reference'."""
        impl = self.implementation
        if impl in ("auto", "numba"):
            if ltc_numba is not None and (x is None or _numba_takes(x)):
                return "numba"
            if impl == "numba" and not getattr(self, "_warned", False):
                warnings.warn("numba LTC kernels unavailable here; using the torch fused path", stacklevel=3)
                self._warned = True
            return "fused"
        return impl

    def forward(
        self, inputs: Tensor, states: Tensor, elapsed_time: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        if self._batch1_inference(inputs, elapsed_time):  # compiled step; checks shapes and values itself
            return ltc_numba.step_inference(self, inputs, states, float(elapsed_time))
        self.check_arguments(inputs, states)
        check_input(inputs, self.sensory_size)
        return self.step(inputs, states, elapsed_time)

    def check_arguments(self, inputs: Tensor, states: Tensor) -> None:
        """Raise ValueError unless inputs is (B, S) and states is (B, N)."""
        if inputs.dim() != 2 or states.dim() != 2:
            raise ValueError(
                f"LTCCell expects (B,S) inputs and (B,N) state, got {tuple(inputs.shape)}, "
                f"{tuple(states.shape)}"
            )
        if inputs.shape[1] != self.sensory_size:
            raise ValueError(f"input has {inputs.shape[1]} features, expected {self.sensory_size}")
        if states.shape != (inputs.shape[0], self.state_size):
            raise ValueError(
                f"state must be ({inputs.shape[0]}, {self.state_size}), got {tuple(states.shape)}"
            )

    def _batch1_inference(self, inputs: Tensor, elapsed_time: float | Tensor) -> bool:
        """Whether this call takes the compiled batch-1 step: the conditions under which
        ``resolved_implementation`` says 'numba' (without its fallback warning), cheapest first, since
        this runs on every control step."""
        return (
            inputs.dim() == 2
            and inputs.shape[0] == 1
            and not torch.is_grad_enabled()
            and self.implementation in ("auto", "numba")
            and ltc_numba is not None
            and _numba_takes(inputs)
            and (not torch.is_tensor(elapsed_time) or elapsed_time.numel() == 1)
        )

    def _apply(self, fn, recurse=True):
        self._drop_caches()  # dtype/device conversions keep the tensors' identity and version
        return super()._apply(fn, recurse)

    def compile_step(self):
        """A compiled batch-1 step on numpy arrays with the current weights frozen in
        (:class:`liquid_control.nets.ltc_numba.FrozenStep`); needs numba."""
        if ltc_numba is None:
            raise ValueError("compile_step needs numba (pip install numba)")
        return ltc_numba.FrozenStep(self)

    def step(
        self, inputs: Tensor, states: Tensor, elapsed_time: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward` without the argument checks (for callers that validated a whole sequence)."""
        impl = self.resolved_implementation(inputs)
        if impl == "numba":
            if self._batch1_inference(inputs, elapsed_time):
                return ltc_numba.step_inference(self, inputs, states, float(elapsed_time))
            ys, v = self.sequence(
                inputs.unsqueeze(0), states, _time_rows(elapsed_time, inputs.shape[0]), None
            )
            return ys[0], v
        u = self._map_inputs(inputs)
        cm_t = self._cm_t(elapsed_time, inputs.shape[0])
        if impl == "fused":
            v = ltc_fast.ode_step(self, u, states, cm_t)
        elif getattr(self, "_exporting", False):  # set by nets.export (absent in old pickles)
            v = self._ode_export(u, states, cm_t)
        else:
            v = self._ode_reference(u, states, cm_t)
        return self._map_outputs(v), v

    def sequence(
        self, x: Tensor, h0: Tensor, timespans: float | Tensor | None, keep: Tensor | None
    ) -> tuple[Tensor, Tensor] | None:
        """Whole-sequence path (compiled kernels): x (T,B,S), timespans (T,B) or scalar, keep (T,B)
        multiplies the state before each step. Returns (outputs (T,B,M), final state) or None when the
        compiled path does not apply (then the caller steps the cell)."""
        impl = self.resolved_implementation(x)
        if impl == "reference":
            return None
        steps, batch = x.shape[0], x.shape[1]
        if impl == "numba":
            if ltc_numba.needs_grad(self, x, h0, *([timespans] if torch.is_tensor(timespans) else [])):
                # training: one autograd node (mappings included) over the fast kernels
                return ltc_numba.train_sequence(self, x, h0, 1.0 if timespans is None else timespans, keep)
            if not torch.is_tensor(timespans):
                # inference (closed-loop control): compiled end to end, compat kernel bits
                ts = 1.0 if timespans is None else float(timespans)
                return ltc_numba.infer_mapped(self, x, h0, ts, keep)
        u = self._map_inputs(x)
        cm = self._positive(self.cm)
        if impl == "fused":
            if timespans is None or not torch.is_tensor(timespans):
                cm_t = cm / ((1.0 if timespans is None else float(timespans)) / self._ode_unfolds)
            else:
                cm_t = cm / (timespans.to(x.dtype).expand(steps, batch).unsqueeze(-1) / self._ode_unfolds)
            v_all = ltc_fast.run_sequence(self, u, h0, cm_t, keep)
        else:
            if timespans is None or not torch.is_tensor(timespans):
                ts = torch.full(
                    (steps, batch, 1), 1.0 if timespans is None else float(timespans), dtype=x.dtype
                )
            else:
                ts = timespans.to(x.dtype).expand(steps, batch).unsqueeze(-1)
            cm_t = (cm / (ts / self._ode_unfolds)).expand(steps, batch, self.state_size)
            if keep is None:
                keep = torch.ones(steps, batch, dtype=x.dtype)
            v_all = ltc_numba.run_sequence(self, u, h0, cm_t, keep.to(x.dtype))
        out = self._map_outputs(v_all.reshape(steps * batch, -1)).reshape(steps, batch, -1)
        return out, v_all[-1]

    def _ode_reference(self, u: Tensor, v: Tensor, cm_t: Tensor) -> Tensor:
        """The solver exactly as written in the equations (dense B x N x N tensors)."""
        f = self._positive
        sens = f(self.sensory_w) * torch.sigmoid(self.sensory_sigma * (u.unsqueeze(-1) - self.sensory_mu))
        sens = sens * self.sensory_sparsity_mask
        num_sensory = (sens * self.sensory_erev).sum(dim=1)
        den_sensory = sens.sum(dim=1)
        w, gleak = f(self.w), f(self.gleak)
        for _ in range(self._ode_unfolds):
            act = w * torch.sigmoid(self.sigma * (v.unsqueeze(-1) - self.mu)) * self.sparsity_mask
            numerator = cm_t * v + gleak * self.vleak + (act * self.erev).sum(dim=1) + num_sensory
            denominator = cm_t + gleak + act.sum(dim=1) + den_sensory
            v = numerator / (denominator + self._epsilon)
        return v

    def _ode_export(self, u: Tensor, v: Tensor, cm_t: Tensor) -> Tensor:
        """The reference solver regrouped for an exported graph with frozen weights (the same function to
        float rounding, fewer graph nodes: onnxruntime pays ~1 us per node at batch 1). Everything that
        depends only on the weights is computed here, detached, and so becomes a constant of the trace;
        per unfold: sigmoid(v sigma - sigma mu), two weighted sums, the step's constant terms added."""
        f = self._positive
        with torch.no_grad():
            sw = f(self.sensory_w) * self.sensory_sparsity_mask
            sn, sd = sw * self.sensory_erev, sw
            ss, ssm = self.sensory_sigma, self.sensory_sigma * self.sensory_mu
            w = f(self.w) * self.sparsity_mask
            wn, wd, sig, sig_mu = w * self.erev, w, self.sigma, self.sigma * self.mu
            gleak = f(self.gleak)
            c_num, c_den = gleak * self.vleak, gleak + self._epsilon
        sens = torch.sigmoid(u.unsqueeze(-1) * ss - ssm)
        num_c = (sens * sn).sum(dim=1) + c_num  # numerator / denominator terms constant within the step
        den_c = (sens * sd).sum(dim=1) + (cm_t + c_den)
        for _ in range(self._ode_unfolds):
            act = torch.sigmoid(v.unsqueeze(-1) * sig - sig_mu)
            v = ((act * wn).sum(dim=1) + (cm_t * v + num_c)) / ((act * wd).sum(dim=1) + den_c)
        return v


class LTC(nn.Module):
    """An LTC over sequences, like ``ncps.torch.LTC`` (and ``torch.nn.LSTM``).

    ``forward(input, hx=None, timespans=None, resets=None) -> (output, h_n)``:
    ``input`` is (B,T,F) (``batch_first``) or (T,B,F), or (T,F) unbatched; ``timespans`` a scalar, or
    per step (B,T)/(B,T,1) (time-major when not batch_first); ``resets`` an optional (B,T) mask that
    zeroes the state before step t (episode starts). ``output`` holds the motor outputs of every step
    (``return_sequences``) or of the last step.
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        return_sequences: bool = True,
        batch_first: bool = True,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size must be a positive int, got {input_size!r}")
        self.input_size = input_size
        self.batch_first = batch_first
        self.return_sequences = return_sequences
        self.rnn_cell = LTCCell(
            resolve_wiring(units, input_size),
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            implicit_param_constraints=implicit_param_constraints,
            implementation=implementation,
        )

    @property
    def wiring(self) -> Wiring:
        return self.rnn_cell.wiring

    @property
    def state_size(self) -> int:
        return self.rnn_cell.state_size

    @property
    def motor_size(self) -> int:
        return self.rnn_cell.motor_size

    @property
    def output_size(self) -> int:
        return self.rnn_cell.motor_size

    def apply_constraints(self) -> None:
        self.rnn_cell.apply_constraints()

    def forward(
        self,
        input: Tensor,
        hx: Tensor | None = None,
        timespans: float | Tensor | None = None,
        resets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        check_input(input, self.input_size)
        return run_sequence(
            self.rnn_cell, input, hx, timespans, resets, self.batch_first, self.return_sequences
        )


def _per_step(t: Tensor | float | None, batch: int, steps: int, batch_first: bool, name: str):
    """Normalise an optional per-step tensor to (T, B) (or keep a scalar)."""
    if t is None or not torch.is_tensor(t):
        return t
    if t.dim() == 0:
        return t
    if t.dim() == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    shape = (batch, steps) if batch_first else (steps, batch)
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    return t.transpose(0, 1) if batch_first else t


def run_sequence(
    cell: nn.Module,
    input: Tensor,
    hx: Tensor | None,
    timespans: float | Tensor | None,
    resets: Tensor | None,
    batch_first: bool = True,
    return_sequences: bool = True,
    output_fn=None,
) -> tuple[Tensor, Tensor]:
    """Step ``cell(x_t, h, ts) -> (y, h)`` over a sequence; shared by the LTC and CfC wrappers."""
    if input.dim() not in (2, 3):
        raise ValueError(f"input must be (B,T,F), (T,B,F) or (T,F); got shape {tuple(input.shape)}")
    batched = input.dim() == 3
    if not batched:
        input = input.unsqueeze(0 if batch_first else 1)
        if hx is not None:
            hx = hx.unsqueeze(0)
        if torch.is_tensor(timespans) and timespans.dim() >= 1:
            timespans = timespans.unsqueeze(0 if batch_first else 1)
        if resets is not None:
            resets = resets.unsqueeze(0 if batch_first else 1)
    x = input.transpose(0, 1) if batch_first else input  # (T, B, F)
    steps, batch = x.shape[0], x.shape[1]
    if steps == 0:
        raise ValueError("input sequence is empty (T=0)")
    if hx is None:
        h = x.new_zeros(batch, cell.state_size)
    else:
        if hx.shape != (batch, cell.state_size):
            raise ValueError(f"initial state must be ({batch}, {cell.state_size}), got {tuple(hx.shape)}")
        h = hx
    ts = _per_step(timespans, batch, steps, batch_first, "timespans")
    keep = None
    if resets is not None:
        keep = 1.0 - _per_step(resets, batch, steps, batch_first, "resets").to(x.dtype)
    whole = getattr(cell, "sequence", None)
    result = None if whole is None else whole(x, h, ts, keep)
    if result is not None:
        ys, h = result
        out = (ys.transpose(0, 1) if batch_first else ys) if return_sequences else ys[-1]
        if not batched:
            out = out.squeeze(0 if (batch_first or not return_sequences) else 1)
            h = h.squeeze(0)
        return out, h
    step = getattr(cell, "step", cell)
    outputs = []
    y = None
    for t in range(steps):
        if keep is not None:
            h = h * keep[t].unsqueeze(-1)
        step_ts = 1.0 if ts is None else (ts if not torch.is_tensor(ts) or ts.dim() == 0 else ts[t])
        y, h = step(x[t], h, step_ts)
        if output_fn is not None:
            y = output_fn(y)
        if return_sequences:
            outputs.append(y)
    if return_sequences:
        out = torch.stack(outputs, dim=1 if batch_first else 0)
    else:
        out = y
    if not batched:
        out = out.squeeze(0 if (batch_first or not return_sequences) else 1)
        h = h.squeeze(0)
    return out, h
