"""Reservoir cores: a FROZEN random recurrent pool with a trained linear readout (the third "liquid" idea).

* :class:`EchoStateNetwork` (``make_core("esn", ...)``): leaky tanh units on a sparse random matrix scaled
  to a requested spectral radius, ``h <- (1-a) h + a tanh(W_in x + W h + b)``.
* :class:`LiquidStateMachine` (``make_core("lsm", ...)``): leaky integrate-and-fire neurons (membrane time
  constant, threshold, reset, refractory period, excitatory/inhibitory split with optional Dale's law),
  integrated exactly for piecewise-constant input with ``substeps`` sub-steps per control step; the
  readout sees exponentially filtered spike trains (traces).

Both are :class:`~liquid_control.nets.core.RecurrentCore` s: ``forward(x, state, resets) -> (y, state)``
with ``y = readout([reservoir features, x])`` of width ``output_size``. The reservoir (input weights,
recurrent weights, biases) lives in buffers, so optimisers never see it and it travels with the state
dict; the only trainable parameters are the readout (``(units + input_size + 1) * output_size``), which
is what ``budget`` sizes. ``readout_inputs(x, state, resets)`` returns the readout's input features
(what :mod:`liquid_control.learn.readout` fits in closed form and :class:`RLS` adapts online).

Keyword arguments (``make_core(kind, input_size, output_size, **kw)``):

* esn: ``units`` (200), ``density`` (None = 10 inputs per unit, else the fraction of nonzero recurrent
  weights per row), ``spectral_radius`` (0.9), ``radius_method`` (``"eig"`` | ``"power"``),
  ``input_scaling`` (0.5), ``leak_rate`` (0.3), ``bias_scaling`` (0.2), ``seed`` (0).
* lsm: ``units`` (200), ``density`` (None = 10 inputs per unit), ``excitatory`` (0.8 of the units),
  ``dale`` (True: a neuron's outgoing weights share its sign), ``w_exc`` (0.15), ``w_inh`` (0.6) (voltage
  jumps per spike, threshold = 1), ``tau_m`` (0.02 s), ``threshold`` (1.0), ``v_reset`` (0.0),
  ``t_ref`` (0.002 s, rounded up to whole sub-steps), ``tau_trace`` (0.05 s), ``dt`` (0.05 s: the
  control period), ``substeps`` (10), ``input_scaling`` (1.0), ``bias`` (0.9) and ``bias_spread`` (0.3)
  (the constant drive R·I in units of the threshold), ``seed`` (0).

``timespans`` are ignored (the leak / sub-step length are per control step). Gradients: the ESN is
differentiable end to end (an encoder before it can be trained by BPTT); the LSM's spikes are hard
thresholds, so gradient training reaches only its readout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from liquid_control.nets.core import RecurrentCore

try:  # compiled LSM kernel; the torch path serves without numba
    from liquid_control.nets import reservoir_numba as _kernels
except ImportError:  # pragma: no cover - numba is a dependency
    _kernels = None

DEFAULT_FANIN = 10


# ---- building blocks ---------------------------------------------------------------------------------

def sparse_fanin(units: int, density: float | None, rng: np.random.Generator) -> np.ndarray:
    """Presynaptic indices ``(units, k)``: each unit receives ``k`` distinct random inputs.

    ``k = round(density * units)`` (at least 1), or ``min(10, units)`` when ``density`` is None.
    """
    if density is None:
        k = min(DEFAULT_FANIN, units)
    else:
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        k = max(1, int(round(density * units)))
    return np.stack([rng.choice(units, size=k, replace=False) for _ in range(units)]).astype(np.int64)


def to_scipy(idx: np.ndarray, val: np.ndarray, units: int):
    """The (units x units) sparse matrix W with ``W[i, idx[i, j]] = val[i, j]`` (scipy CSR)."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(units), idx.shape[1])
    return sp.csr_matrix((val.ravel().astype(np.float64), (rows, idx.ravel())), shape=(units, units))


def spectral_radius(idx: np.ndarray, val: np.ndarray, units: int, method: str = "eig",
                    seed: int = 0) -> float:
    """Largest |eigenvalue| of the sparse matrix (``"eig"``: dense/ARPACK, ``"power"``: power iteration)."""
    mat = to_scipy(idx, val, units)
    if method == "eig":
        if units <= 200:
            return float(np.abs(np.linalg.eigvals(mat.toarray())).max())
        from scipy.sparse.linalg import eigs

        # several eigenvalues: with k=1 ARPACK can settle on one of the many near the spectrum's edge
        v0 = np.random.default_rng(seed).standard_normal(units)
        vals = eigs(mat, k=min(12, units - 2), which="LM", v0=v0, tol=1e-8, maxiter=20 * units,
                    return_eigenvectors=False)
        return float(np.abs(vals).max())
    if method == "power":
        # growth rate of ||W^k v|| over a long window (Gelfand's formula); handles complex dominant pairs
        v = np.random.default_rng(seed).standard_normal(units)
        v /= np.linalg.norm(v)
        log_growth, burn, window = 0.0, 200, 2000
        for it in range(burn + window):
            v = mat @ v
            n = float(np.linalg.norm(v))
            if n == 0.0:
                return 0.0
            v /= n
            if it >= burn:
                log_growth += math.log(n)
        return float(math.exp(log_growth / window))
    raise ValueError(f"radius_method must be 'eig' or 'power', got {method!r}")


_measure_radius = spectral_radius  # the EchoStateNetwork argument of the same name shadows it


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"{name} must be positive, got {v!r}")


class ReservoirCore(RecurrentCore):
    """Shared part of the reservoir cores: sparse frozen recurrence, input weights and the linear readout.

    Subclasses implement ``_reservoir_torch(x, state) -> (features (B,T,units), state)`` (the reference,
    any device), ``_compiled(x, state, with_input)`` (the numba kernels; with the input appended to the
    features when asked) and ``_kernel_serves(x, state)`` (whether the kernels take this call).
    """

    units: int

    def _init_common(self, input_size: int, output_size: int, units: int, density: float | None,
                     seed: int) -> np.random.Generator:
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.input_size, self.output_size, self.units = input_size, output_size, units
        self.readout = nn.Linear(units + input_size, output_size)
        self._emit_features = False
        rng = np.random.default_rng(seed)
        self.register_buffer("rec_idx", torch.from_numpy(sparse_fanin(units, density, rng)))
        return rng

    @staticmethod
    def units_for_budget(budget: int, input_size: int, output_size: int, tolerance: float = 0.10) -> int:
        """Units whose readout ``(units + input_size + 1) * output_size`` is closest to ``budget``."""
        units = int(round(budget / output_size)) - input_size - 1
        if units < 1:
            raise ValueError(f"budget {budget} is too small for a reservoir readout from {input_size} inputs "
                             f"to {output_size} outputs")
        got = (units + input_size + 1) * output_size
        if abs(got - budget) > tolerance * budget:
            raise ValueError(f"no reservoir size lands within {tolerance:.0%} of {budget} parameters")
        return units

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy without the cached sparse copies of W (rebuilt on demand)."""
        state = self.__dict__.copy()
        for key in ("_csr", "_csc", "_fanin"):
            state.pop(key, None)
        return state

    @property
    def readout_features(self) -> int:
        """Width of the readout's input (reservoir features + the core's input)."""
        return self.units + self.input_size

    def recurrent_matrix(self) -> np.ndarray:
        """The dense (units x units) recurrent weight matrix (for plots and tests)."""
        return to_scipy(self.rec_idx.cpu().numpy(), self.rec_val.cpu().numpy(), self.units).toarray()

    def connectivity(self) -> np.ndarray:
        """Alias of :meth:`recurrent_matrix` (what ``plot wiring`` draws for a reservoir)."""
        return self.recurrent_matrix()

    def state_groups(self) -> dict[str, list[int]]:
        """Named index ranges of the state vector (what ``plot activity`` draws)."""
        return {"reservoir": list(range(self.units))}

    def _recurrent(self, s: Tensor) -> Tensor:
        """W s for a batch of states s (B, units).

        Without autograd (state collection, deployment) through a cached CSR copy of W (several times
        faster than gathering the fan-in lists); with autograd through the fan-in lists.
        """
        if torch.is_grad_enabled() and (s.requires_grad or self.rec_val.requires_grad):
            return (s[:, self.rec_idx] * self.rec_val).sum(-1)
        return (self.sparse_recurrent() @ s.T).T

    def _derived(self, name: str, build: Callable[[], Any]) -> Any:
        """A copy of W in another layout (``build()``), cached under ``name`` (dropped from pickles) and
        rebuilt whenever the recurrent buffers change (load_state_dict, .to, in-place edits)."""
        key = (self.rec_val.data_ptr(), self.rec_val._version, self.rec_idx.data_ptr(), self.rec_idx._version,
               str(self.rec_val.device), self.rec_val.dtype)
        cached = self.__dict__.get(name)
        if cached is None or cached[0] != key:
            self.__dict__[name] = cached = (key, build())
        return cached[1]

    def fanin_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """W's fan-in lists sorted by presynaptic unit, for the compiled kernels (cached)."""
        return self._derived("_fanin", lambda: _kernels.fanin_sorted(self.rec_idx.numpy(),
                                                                     self.rec_val.detach().float().numpy()))

    def sparse_recurrent(self) -> Tensor:
        """W as a torch CSR tensor (cached, see :meth:`_derived`)."""
        return self._derived("_csr", self._build_csr)

    def _build_csr(self) -> Tensor:
        idx, val = self.rec_idx, self.rec_val.detach()
        crow = torch.arange(0, idx.numel() + 1, idx.shape[1], device=idx.device)
        order = torch.argsort(idx, dim=1)  # CSR wants sorted column indices within a row
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(crow, torch.gather(idx, 1, order).reshape(-1),
                                           torch.gather(val, 1, order).reshape(-1),
                                           size=(self.units, self.units))

    def readout_inputs(self, x: Tensor, state: Tensor | None = None, resets: Tensor | None = None
                       ) -> tuple[Tensor, Tensor]:
        """Run the reservoir and return the readout's inputs ``(B, T, units + input_size)`` and the state."""
        self._emit_features = True
        try:
            return RecurrentCore.forward(self, x, state, resets)
        finally:
            self._emit_features = False

    def _run(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        phi, state = self._features(x, state)
        return (phi if self._emit_features else self.readout(phi)), state

    def _features(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """The readout's inputs ``[reservoir features, x] (B, T, units + input_size)`` and the new state
        (the kernels write both into one array: no concatenation copy)."""
        if self._kernel_serves(x, state):
            return self._compiled(x, state, with_input=True)
        feats, state = self._reservoir_torch(x, state)
        return torch.cat([feats, x], dim=-1), state

    def _reservoir(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Reservoir features ``(B, T, units)`` and the new state: the compiled kernels where they serve,
        else :meth:`_reservoir_torch`."""
        if self._kernel_serves(x, state):
            return self._compiled(x, state, with_input=False)
        return self._reservoir_torch(x, state)

    def _kernel_serves(self, x: Tensor, state: Tensor) -> bool:
        raise NotImplementedError  # pragma: no cover - abstract

    def _compiled(self, x: Tensor, state: Tensor, with_input: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _reservoir_torch(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract


class EchoStateNetwork(ReservoirCore):
    """Leaky echo state network: frozen sparse reservoir scaled to ``spectral_radius``, linear readout."""

    kind = "esn"

    def __init__(self, input_size: int, output_size: int, units: int = 200, density: float | None = None,
                 spectral_radius: float = 0.9, radius_method: str = "eig", input_scaling: float = 0.5,
                 leak_rate: float = 0.3, bias_scaling: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        _check_positive(spectral_radius=spectral_radius, input_scaling=input_scaling)
        if not 0.0 < leak_rate <= 1.0:
            raise ValueError(f"leak_rate must be in (0, 1], got {leak_rate}")
        if bias_scaling < 0:
            raise ValueError(f"bias_scaling must be >= 0, got {bias_scaling}")
        rng = self._init_common(input_size, output_size, units, density, seed)
        idx = self.rec_idx.numpy()
        val = rng.uniform(-1.0, 1.0, size=idx.shape)
        rho = _measure_radius(idx, val, units, radius_method, seed)
        if rho > 0:
            val = val * (spectral_radius / rho)
        self.register_buffer("rec_val", torch.as_tensor(val, dtype=torch.float32))
        self.register_buffer("w_in", torch.as_tensor(
            rng.uniform(-input_scaling, input_scaling, size=(units, input_size)), dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(
            rng.uniform(-bias_scaling, bias_scaling, size=units), dtype=torch.float32))
        self.leak_rate = leak_rate
        self.state_size = units
        self._config = {"units": units, "density": density, "spectral_radius": spectral_radius,
                        "radius_method": radius_method, "input_scaling": input_scaling,
                        "leak_rate": leak_rate, "bias_scaling": bias_scaling, "seed": seed}

    def _kernel_serves(self, x: Tensor, state: Tensor) -> bool:
        """The compiled kernel takes gradient-free float32 CPU sequences (T > 1: state collection for the
        readout fit); everything else runs :meth:`_reservoir_torch` (closed-loop single steps keep its
        exact bits; the two agree to float32 rounding: the kernel's tanh is correctly rounded, torch's
        within 1 ulp)."""
        return not (_kernels is None or x.device.type != "cpu" or x.dtype != torch.float32
                    or state.dtype != torch.float32 or x.shape[1] < 2
                    or (torch.is_grad_enabled() and any(t.requires_grad for t in (x, state, self.rec_val,
                                                                                   self.w_in, self.bias))))

    def _compiled(self, x: Tensor, state: Tensor, with_input: bool) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            drive = x @ self.w_in.T
            drive += self.bias  # in place: the sums of x W_in^T + bias, one (B, T, n) array less
            extra = x.detach().numpy() if with_input else None
            out = torch.from_numpy(_kernels.run_esn(drive.numpy(), state.detach().numpy(), self.fanin_lists(),
                                                    self.leak_rate, extra=extra))
        return out, out[:, -1, :self.units].clone()

    def _reservoir_torch(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Reference implementation in torch (any device, differentiable)."""
        drive = x @ self.w_in.T + self.bias
        a, h, hs = self.leak_rate, state, []
        for t in range(x.shape[1]):
            h = (1.0 - a) * h + a * torch.tanh(drive[:, t] + self._recurrent(h))
            hs.append(h)
        return torch.stack(hs, dim=1), h


class LiquidStateMachine(ReservoirCore):
    """Spiking liquid: leaky integrate-and-fire neurons, readout on exponentially filtered spike trains.

    Membrane (per neuron, threshold-normalised): ``tau_m dv/dt = -(v - 0) + R I`` with ``R I = bias +
    input_scaling * W_in x`` held for the control step; a spike when ``v >= threshold`` resets ``v`` to
    ``v_reset`` and clamps it there for ``t_ref``; each spike of neuron j adds ``W[i, j]`` to ``v_i`` at
    the next sub-step. Trace: ``r <- r exp(-dt_s / tau_trace) + spikes``. State = [v, refractory time
    left, trace, last spikes] (B, 4 units).
    """

    kind = "lsm"

    def __init__(self, input_size: int, output_size: int, units: int = 200, density: float | None = None,
                 excitatory: float = 0.8, dale: bool = True, w_exc: float = 0.15, w_inh: float = 0.6,
                 tau_m: float = 0.02, threshold: float = 1.0, v_reset: float = 0.0, t_ref: float = 0.002,
                 tau_trace: float = 0.05, dt: float = 0.05, substeps: int = 10, input_scaling: float = 1.0,
                 bias: float = 0.9, bias_spread: float = 0.3, seed: int = 0) -> None:
        super().__init__()
        _check_positive(tau_m=tau_m, threshold=threshold, tau_trace=tau_trace, dt=dt,
                        input_scaling=input_scaling)
        if not 0.0 <= excitatory <= 1.0:
            raise ValueError(f"excitatory must be a fraction in [0, 1], got {excitatory}")
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be a positive int, got {substeps!r}")
        if t_ref < 0 or w_exc < 0 or w_inh < 0 or bias_spread < 0:
            raise ValueError("t_ref, w_exc, w_inh and bias_spread must be >= 0")
        if v_reset >= threshold:
            raise ValueError(f"v_reset ({v_reset}) must lie below the threshold ({threshold})")
        rng = self._init_common(input_size, output_size, units, density, seed)
        idx = self.rec_idx.numpy()
        n_exc = int(round(excitatory * units))
        exc = np.zeros(units, bool)
        exc[rng.permutation(units)[:n_exc]] = True
        mag = rng.uniform(0.5, 1.5, size=idx.shape)
        if dale:  # sign of a synapse = type of its presynaptic neuron
            sign = np.where(exc[idx], 1.0, -1.0)
        else:
            sign = np.where(rng.random(idx.shape) < excitatory, 1.0, -1.0)
        val = mag * np.where(sign > 0, w_exc, -w_inh)
        self.register_buffer("rec_val", torch.as_tensor(val, dtype=torch.float32))
        self.register_buffer("excitatory_mask", torch.as_tensor(exc))
        self.register_buffer("w_in", torch.as_tensor(
            rng.uniform(-1.0, 1.0, size=(units, input_size)) * input_scaling, dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(
            bias + rng.uniform(-bias_spread, bias_spread, size=units), dtype=torch.float32))
        self.tau_m, self.threshold, self.v_reset, self.t_ref = tau_m, threshold, v_reset, t_ref
        self.tau_trace, self.dt, self.substeps = tau_trace, dt, substeps
        self.state_size = 4 * units
        self._config = {"units": units, "density": density, "excitatory": excitatory, "dale": dale,
                        "w_exc": w_exc, "w_inh": w_inh, "tau_m": tau_m, "threshold": threshold,
                        "v_reset": v_reset, "t_ref": t_ref, "tau_trace": tau_trace, "dt": dt,
                        "substeps": substeps, "input_scaling": input_scaling, "bias": bias,
                        "bias_spread": bias_spread, "seed": seed}

    def state_groups(self) -> dict[str, list[int]]:
        """Spike traces and membrane potentials (refractory timers and last spikes are not drawn)."""
        n = self.units
        return {"trace": list(range(2 * n, 3 * n)), "membrane": list(range(n))}

    def lif_step(self, v: Tensor, ref: Tensor, current: Tensor, syn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One sub-step of the LIF neurons: exact integration of a constant drive ``current`` (= R I)
        plus instantaneous synaptic jumps ``syn``; returns (v, refractory time left, spikes)."""
        ds = self.dt / self.substeps
        decay = math.exp(-ds / self.tau_m)
        active = ref <= 1e-12
        v_new = current + (v - current) * decay + syn
        v = torch.where(active, v_new, torch.full_like(v, self.v_reset))
        spikes = (v >= self.threshold).to(v.dtype)
        v = torch.where(spikes > 0, torch.full_like(v, self.v_reset), v)
        ref = torch.where(spikes > 0, torch.full_like(ref, self.t_ref), (ref - ds).clamp(min=0.0))
        return v, ref, spikes

    def _kernel_serves(self, x: Tensor, state: Tensor) -> bool:
        """Compiled kernels on CPU when numba is there (:func:`reservoir_numba.run_lsm`: event driven for a
        few samples, sample lanes for batches), else :meth:`_reservoir_torch`. All give the same traces
        (spikes are hard thresholds, so no gradient flows through any)."""
        return _kernels is not None and x.device.type == "cpu"

    def _compiled(self, x: Tensor, state: Tensor, with_input: bool) -> tuple[Tensor, Tensor]:
        n = self.units
        with torch.no_grad():
            current = x @ self.w_in.T
            current += self.bias  # in place: the sums of bias + x W_in^T, one (B, T, n) array less
            current = current.float().numpy()
            parts = tuple(state[:, k * n:(k + 1) * n].detach().float().numpy() for k in range(4))
            extra = x.detach().float().numpy() if with_input else None
        csc = self._derived("_csc", lambda: _kernels.csc_of(self.rec_idx.numpy(),
                                                            self.rec_val.detach().float().numpy(), n))
        ds = self.dt / self.substeps
        out, new = _kernels.run_lsm(current, parts, csc, self.fanin_lists(), decay=math.exp(-ds / self.tau_m),
                                    trace_decay=math.exp(-ds / self.tau_trace), ds=ds, t_ref=self.t_ref,
                                    v_reset=self.v_reset, threshold=self.threshold, substeps=self.substeps,
                                    extra=extra)
        dtype = x.dtype if x.dtype.is_floating_point else torch.float32
        return (torch.from_numpy(out).to(dtype),
                torch.from_numpy(np.concatenate(new, axis=1)).to(dtype))

    def _reservoir_torch(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Reference implementation in torch (any device)."""
        n = self.units
        v, ref, trace, spikes = state[:, :n], state[:, n:2 * n], state[:, 2 * n:3 * n], state[:, 3 * n:]
        current = self.bias + x @ self.w_in.T  # (B, T, n): R·I per control step
        trace_decay = math.exp(-self.dt / self.substeps / self.tau_trace)
        tiny = torch.finfo(torch.float32).tiny
        out = []
        for t in range(x.shape[1]):
            for _ in range(self.substeps):
                v, ref, spikes = self.lif_step(v, ref, current[:, t], self._recurrent(spikes))
                trace = trace * trace_decay + spikes
                trace = trace.masked_fill(trace < tiny, 0.0)  # no subnormals (as the compiled kernel)
            out.append(trace)
        return torch.stack(out, dim=1), torch.cat([v, ref, trace, spikes], dim=1)


def reservoir_kinds() -> dict[str, type[ReservoirCore]]:
    """Core kinds served by this module (registered in :func:`liquid_control.nets.core.make_core`)."""
    return {"esn": EchoStateNetwork, "lsm": LiquidStateMachine}


# ---- readouts: ridge in closed form, recursive least squares online --------------------------------

_GRAM_TINY = float(np.sqrt(np.finfo(np.float32).tiny))  # ~1.08e-19: smaller products are subnormal


def _copy_flushed(src: Tensor, dst: Tensor) -> None:
    """``dst[:] = src`` (float32, same shape) with values below ``sqrt(FLT_MIN)`` in magnitude set to 0."""
    if _kernels is not None and src.device.type == "cpu":
        _kernels.copy_flushed(np.ascontiguousarray(src.numpy()), dst.numpy(), np.float32(_GRAM_TINY))
        return
    dst.copy_(src)
    dst.masked_fill_(dst.abs() < _GRAM_TINY, 0.0)


def _cho_solve(chol: Tensor, b: Tensor) -> Tensor:
    """``(L Lᵀ)^-1 b`` by two triangular solves (~4x faster here than ``torch.cholesky_solve``, which
    copies the factor into column-major order on every call)."""
    return torch.linalg.solve_triangular(chol.mT, torch.linalg.solve_triangular(chol, b, upper=False),
                                         upper=True)


def _refined_solve(g: Tensor, g32: Tensor, c: Tensor, ridge: float, g_norm: float, max_iter: int = 30,
                   work: Tensor | None = None) -> Tensor | None:
    """``(g + ridge I)^-1 c`` in float64 from a float32 Cholesky factor and iterative refinement.

    LAPACK's ``dsposv`` scheme: the residual in float64, corrections from the float32 factor, until the
    normwise backward error is at float64 level (``|r| <= |w| |A| eps sqrt(d)`` per column); a float32
    factorisation costs ~0.6 of a float64 one at d ~ 7000. None when the float32 factorisation fails or
    the refinement does not converge (ill-conditioned beyond float32's reach): the caller factors in
    float64 then. ``work``: a float32 (d, d) buffer reused across calls for ``g32 + ridge I`` (fresh
    memory costs first-touch page faults, ~0.1-0.5 s per 180 MB here)."""
    a = work if work is not None else torch.empty_like(g32)
    a.copy_(g32)
    a.diagonal().add_(ridge)
    chol, info = torch.linalg.cholesky_ex(a)  # into a new column-major array: out= costs a copy
    if int(info) != 0:
        return None
    tol = (g_norm + ridge) * torch.finfo(torch.float64).eps * math.sqrt(g.shape[0])
    w = _cho_solve(chol, c.float()).double()
    for _ in range(max_iter):
        r = c - torch.addmm(w, g, w, beta=ridge)  # c - (g + ridge I) w
        if not torch.isfinite(r).all():
            return None
        if bool((r.abs().amax(0) <= w.abs().amax(0) * tol).all()):
            return w
        w += _cho_solve(chol, r.float()).double()
    return None


class RidgeAccumulator:
    """Streams (features, targets) and fits ``y ≈ W x + b`` by ridge regression (bias not penalised).

    Accumulates the sufficient statistics (Σx, Σy, Σxxᵀ, Σxyᵀ, n), so any number of steps costs O(d²)
    memory. Tensor rows are copied into a reused float32 buffer of ``chunk_rows`` rows and multiplied
    there (BLAS), only the upper triangle of ``Σxxᵀ`` in column blocks (half the flops of ``XᵀX``), and
    summed across chunks in float64; numpy rows are accumulated in float64. In the float32 path a value
    below ``sqrt(FLT_MIN)`` (~1.1e-19) in magnitude enters as 0: a product of two such values would be a
    subnormal float, which BLAS computes ~1.5x slower (decayed LSM traces sit there), and each of them is
    below 1e-19 of any sum it joins. :meth:`solve` / :meth:`solve_many` return ``(W (out, d), b (out,))``
    per ``alpha`` (one centred Gram matrix; per alpha a float32 Cholesky factorisation refined to
    float64 accuracy, or a float64 one where that fails).
    """

    def __init__(self, features: int, outputs: int, chunk_rows: int = 8192, block: int = 768) -> None:
        if features < 1 or outputs < 1:
            raise ValueError(f"features and outputs must be positive, got {features} and {outputs}")
        self.n = 0
        self.sx = np.zeros(features)
        self.sy = np.zeros(outputs)
        self.xx = np.zeros((features, features))  # only the upper triangle is kept up to date
        self.xy = np.zeros((features, outputs))
        self.chunk_rows, self.block = max(1, int(chunk_rows)), max(1, int(block))
        self._xbuf: Tensor | None = None  # (chunk_rows, d) float32, allocated on the first tensor rows
        self._ybuf: Tensor | None = None
        self._fill = 0

    def add(self, x: np.ndarray | Tensor, y: np.ndarray | Tensor) -> None:
        """Add rows ``x (N, d)`` with targets ``y (N, out)``."""
        if isinstance(x, Tensor):
            xt = x.detach().to(torch.float32)
            yt = torch.as_tensor(y).detach().to(torch.float32)
            self._check(tuple(xt.shape), tuple(yt.shape))
            self._reserve(xt.shape[0], yt.shape[1])
            i = 0
            while i < xt.shape[0]:
                take = min(xt.shape[0] - i, self.chunk_rows - self._fill)
                _copy_flushed(xt[i:i + take], self._xbuf[self._fill:self._fill + take])
                self._ybuf[self._fill:self._fill + take] = yt[i:i + take]
                self._fill += take
                i += take
                if self._fill == self.chunk_rows:
                    self._flush()
            return
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self._check(x.shape, y.shape)
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.n += len(x)

    def _reserve(self, rows: int, outputs: int) -> None:
        """Grow the row buffers (doubling, up to ``chunk_rows``) to take ``rows`` more: a few small adds
        then touch no more memory than they need."""
        have = 0 if self._xbuf is None else self._xbuf.shape[0]
        if have >= self.chunk_rows or self._fill + rows <= have:
            return
        size = min(self.chunk_rows, max(2 * have, self._fill + rows))
        xbuf, ybuf = torch.empty(size, len(self.sx)), torch.empty(size, outputs)
        if self._fill:
            xbuf[:self._fill], ybuf[:self._fill] = self._xbuf[:self._fill], self._ybuf[:self._fill]
        self._xbuf, self._ybuf = xbuf, ybuf

    def _check(self, xs: tuple, ys: tuple) -> None:
        if len(xs) != 2 or len(ys) != 2 or xs[0] != ys[0] or xs[1] != len(self.sx) or ys[1] != len(self.sy):
            raise ValueError(f"ridge data must be (N, {len(self.sx)}) and (N, {len(self.sy)}), "
                             f"got {xs} and {ys}")

    def _flush(self) -> None:
        """Fold the buffered tensor rows into the float64 statistics."""
        if not self._fill:
            return
        xt, yt = self._xbuf[:self._fill], self._ybuf[:self._fill]
        d = xt.shape[1]
        xx = torch.from_numpy(self.xx)  # the float64 sums, updated in place
        scratch = torch.empty(d * min(self.block, d))  # one float32 product buffer, reused for every block
        for j0 in range(0, d, self.block):  # upper triangle by column blocks: rows [0, j1) x cols [j0, j1)
            j1 = min(d, j0 + self.block)
            prod = torch.mm(xt[:, :j1].T, xt[:, j0:j1], out=scratch[:j1 * (j1 - j0)].view(j1, j1 - j0))
            xx[:j1, j0:j1].add_(prod)  # float32 -> float64 in the same pass (no temporary copy)
        self.xy += (xt.T @ yt).double().numpy()
        self.sx += xt.sum(0).double().numpy()  # torch's float32 sums are cascaded (~1e-7 relative); a
        self.sy += yt.sum(0).double().numpy()  # float64 copy of the chunk first cost ~1/10 of the Gram
        self.n += xt.shape[0]
        self._fill = 0

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(gram, cross, mean_x, mean_y)`` of the centred data (full symmetric gram, float64)."""
        self._flush()
        if self.n < 1:
            raise ValueError("no data to fit a readout on")
        mx, my = self.sx / self.n, self.sy / self.n
        gram = torch.from_numpy(self.xx).triu()
        gram.add_(gram.T.tril(-1))  # mirror the upper triangle
        gram.addr_(torch.from_numpy(mx), torch.from_numpy(mx), alpha=-self.n)
        cross = self.xy - self.n * np.outer(mx, my)
        return gram.numpy(), cross, mx, my

    def solve_many(self, alphas: tuple[float, ...] | list[float]
                   ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Ridge weights and bias for each regularisation ``alpha`` (scaled by the sample count)."""
        if any(a < 0 for a in alphas):
            raise ValueError(f"ridge alphas must be >= 0, got {list(alphas)}")
        gram, cross, mx, my = self.centred()
        g, c = torch.from_numpy(gram), torch.from_numpy(cross)
        g32 = g.float()
        g_norm = float(g.abs().sum(0).max())  # the inf-norm of the symmetric Gram matrix
        out, work = {}, torch.empty_like(g32)
        for alpha in alphas:
            ridge = alpha * self.n
            w = _refined_solve(g, g32, c, ridge, g_norm, work=work)
            if w is None:  # float32 factor failed or refinement stalled: the float64 factorisation
                a = g.clone()
                a.diagonal().add_(ridge)
                chol, info = torch.linalg.cholesky_ex(a)
                if int(info) == 0:
                    w = torch.cholesky_solve(c, chol)
                else:  # singular (alpha = 0 on degenerate data): least squares instead
                    w = torch.from_numpy(np.linalg.lstsq(a.numpy(), cross, rcond=None)[0])
            w = w.numpy()
            out[alpha] = (w.T, my - mx @ w)
        return out

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Ridge weights and bias for regularisation ``alpha`` (scaled by the sample count)."""
        return self.solve_many([alpha])[alpha]


class RLS:
    """Recursive least squares for a linear map ``y = W [x, 1]`` with forgetting, bounded.

    ``forgetting`` λ ∈ (0, 1] discounts old samples by λ per step (λ = 1: exact running least squares);
    ``delta`` is the initial inverse-covariance scale ``P0 = delta I`` (small = trust the initial
    weights). Bounds: the per-step error is clipped to ``max_error`` and ``trace(P)`` is capped at its
    initial value (no covariance wind-up when the input stops exciting some directions).

    ``P = scale * S`` with ``S`` symmetric (only its upper triangle is stored up to date): a step is one
    BLAS symmetric matrix-vector product and one symmetric rank-1 update of ``S`` (O(d²), in place), the
    forgetting and the trace cap only change the scalar ``scale``.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, forgetting: float = 0.995, delta: float = 1.0,
                 max_error: float = math.inf) -> None:
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting factor must be in (0, 1], got {forgetting}")
        _check_positive(delta=delta, max_error=max_error)
        weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
        self.theta = np.concatenate([weight, bias[:, None]], axis=1).T.copy()  # (d+1, out)
        d1 = self.theta.shape[0]
        self.P = np.eye(d1) * delta
        self.trace_cap = float(d1 * delta)
        self.forgetting, self.max_error = forgetting, max_error
        self.updates = 0

    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the textbook name
        """The inverse-covariance matrix (a full symmetric copy)."""
        s = np.triu(self._S)
        return self._scale * (s + np.triu(s, 1).T)

    @P.setter
    def P(self, value: np.ndarray) -> None:  # noqa: N802
        value = np.asarray(value, np.float64)
        if value.ndim != 2 or value.shape[0] != value.shape[1] or value.shape[0] != self.theta.shape[0]:
            raise ValueError(f"P must be ({self.theta.shape[0]}, {self.theta.shape[0]}), got {value.shape}")
        self._S = np.array(value, order="F", copy=True)
        self._scale = 1.0
        self._trace = float(np.trace(value))

    @property
    def weight(self) -> np.ndarray:
        """Current W (out, d)."""
        return self.theta[:-1].T

    @property
    def bias(self) -> np.ndarray:
        """Current b (out,)."""
        return self.theta[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``W x + b`` for one feature vector (d,) or a batch (N, d)."""
        x = np.asarray(x, np.float64)
        return x @ self.theta[:-1] + self.theta[-1]

    def update(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One RLS step on sample (x (d,), target y (out,)); returns the a-priori error."""
        from scipy.linalg import blas

        phi = np.append(np.asarray(x, np.float64), 1.0)
        err = np.asarray(y, np.float64) - phi @ self.theta
        if np.isfinite(self.max_error):
            err = np.clip(err, -self.max_error, self.max_error)
        p_phi = blas.dsymv(self._scale, self._S, phi, lower=0)  # P phi
        denom = self.forgetting + float(phi @ p_phi)
        self.theta += np.outer(p_phi / denom, err)
        # P <- (P - p_phi p_phiᵀ / denom) / λ, i.e. S <- S - p_phi p_phiᵀ / (denom scale), scale <- scale / λ
        self._S = blas.dsyr(-1.0 / (denom * self._scale), p_phi, a=self._S, lower=0, overwrite_a=1)
        self._scale /= self.forgetting
        self._trace = (self._trace - float(p_phi @ p_phi) / denom) / self.forgetting
        if self._trace > self.trace_cap:  # bound: no covariance wind-up
            self._scale *= self.trace_cap / self._trace
            self._trace = self.trace_cap
        self.updates += 1
        if self.updates % 256 == 0:  # fold the scale in and refresh the trace against round-off drift
            self._S *= self._scale
            self._scale = 1.0
            self._trace = float(np.trace(self._S))
        return err


def is_reservoir(module: Any) -> bool:
    """True when ``module`` (a core or a policy with ``.core``) is a reservoir core."""
    core = getattr(module, "core", module)
    return isinstance(core, ReservoirCore)


def frozen_tensors(core: ReservoirCore) -> dict[str, Tensor]:
    """Copies of the reservoir's frozen tensors (tests check they survive training unchanged)."""
    return {k: v.detach().clone() for k, v in core.named_buffers()}
