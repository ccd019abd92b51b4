"""Compiled liquid-state-machine kernel (numba): a whole (B, T) sequence of LIF sub-steps per call.

Same function as ``LiquidStateMachine._reservoir_torch`` (tests compare them), but event driven: each
sub-step only the neurons that spiked push their outgoing synapses (a CSC copy of the recurrent matrix),
and one fused loop updates membrane, refractory timer and trace, instead of a dozen full-size tensor
passes. A trace that decays below the smallest normal float32 is set to 0: subnormal numbers are ~100×
slower on x86 in every later operation (this kernel and the readout's Gram matrix), and they are far
below anything a readout can resolve. Batches of many samples (the readout fit runs 32 episodes at a
time) run one sample per thread (numba's pool, as many threads as torch's), single steps serially.
Import fails cleanly when numba is missing; the torch path is used then.
"""

from __future__ import annotations

import numba
import numpy as np

from liquid_control.nets.ltc_numba import _threads, _twin, use_parallel


def _run_impl(current, v, ref, trace, spikes, out_ptr, out_idx, out_val, decay, trace_decay, ds, t_ref,
              v_reset, threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
    out = np.empty((batch, steps, n), np.float32)
    zero, one, eps = np.float32(0.0), np.float32(1.0), np.float32(1e-12)
    tiny = np.float32(1.1754944e-38)  # smallest normal float32: a decayed trace below it becomes 0
    for b in numba.prange(batch):  # the samples are independent: the only parallel loop
        syn = np.zeros(n, np.float32)
        vb, rb, tb, sb = v[b], ref[b], trace[b], spikes[b]
        for t in range(steps):
            cb = current[b, t]
            for _ in range(substeps):
                for j in range(n):  # presynaptic spikes of the previous sub-step, pushed to their targets
                    if sb[j] > zero:
                        for k in range(out_ptr[j], out_ptr[j + 1]):
                            syn[out_idx[k]] += out_val[k]
                for i in range(n):
                    cur = cb[i]
                    if rb[i] <= eps:
                        vi = cur + (vb[i] - cur) * decay + syn[i]
                    else:
                        vi = v_reset
                    syn[i] = zero
                    if vi >= threshold:
                        vb[i] = v_reset
                        rb[i] = t_ref
                        sb[i] = one
                        tb[i] = tb[i] * trace_decay + one
                    else:
                        vb[i] = vi
                        r = rb[i] - ds
                        rb[i] = r if r > zero else zero
                        sb[i] = zero
                        tr = tb[i] * trace_decay
                        tb[i] = tr if tr >= tiny else zero
            out[b, t] = tb
    return out


_run_ser = numba.njit(cache=True, nogil=True)(_run_impl)
_run_par = numba.njit(cache=True, nogil=True, parallel=True)(_twin(_run_impl, "_parallel"))


def csc_of(rec_idx: np.ndarray, rec_val: np.ndarray, units: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outgoing synapse lists ``(ptr (units+1,), post (nnz,), weight (nnz,))`` of W[i, rec_idx[i, j]]."""
    post = np.repeat(np.arange(units), rec_idx.shape[1])
    pre = rec_idx.ravel()
    order = np.lexsort((post, pre))  # by presynaptic neuron, then postsynaptic (ascending)
    ptr = np.zeros(units + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=units), out=ptr[1:])
    return ptr, post[order].astype(np.int64), rec_val.ravel()[order].astype(np.float32)


def run_lsm(current: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
            csc: tuple[np.ndarray, np.ndarray, np.ndarray], *, decay: float, trace_decay: float, ds: float,
            t_ref: float, v_reset: float, threshold: float, substeps: int
            ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Traces ``(B, T, n)`` for the drive ``current (B, T, n)`` from ``state`` = (v, ref, trace, spikes).

    The state arrays are copied; the new state is returned."""
    v, ref, trace, spikes = (np.array(a, np.float32, order="C", copy=True) for a in state)
    f = np.float32
    batch, steps = current.shape[:2]
    kernel = _run_par if use_parallel(steps, batch) else _run_ser  # many samples: one thread each
    if kernel is _run_par:
        _threads()
    out = kernel(np.ascontiguousarray(current, np.float32), v, ref, trace, spikes, *csc, f(decay),
               f(trace_decay), f(ds), f(t_ref), f(v_reset), f(threshold), int(substeps))
    return out, (v, ref, trace, spikes)
