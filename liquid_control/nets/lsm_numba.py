"""Compiled liquid-state-machine kernel (numba): a whole (B, T) sequence of LIF sub-steps per call.

Same function as ``LiquidStateMachine._reservoir_torch`` (tests compare them), but event driven: each
sub-step only the neurons that spiked push their outgoing synapses (a CSC copy of the recurrent matrix),
and one fused loop updates membrane, refractory timer and trace, instead of a dozen full-size tensor
passes. Import fails cleanly when numba is missing; the torch path is used then.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _run(current, v, ref, trace, spikes, out_ptr, out_idx, out_val, decay, trace_decay, ds, t_ref, v_reset,
         threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
    out = np.empty((batch, steps, n), np.float32)
    syn = np.zeros(n, np.float32)
    zero, one, eps = np.float32(0.0), np.float32(1.0), np.float32(1e-12)
    for b in range(batch):
        for t in range(steps):
            for _ in range(substeps):
                syn[:] = zero
                for j in range(n):  # presynaptic spikes of the previous sub-step, pushed to their targets
                    if spikes[b, j] > zero:
                        for k in range(out_ptr[j], out_ptr[j + 1]):
                            syn[out_idx[k]] += out_val[k]
                for i in range(n):
                    cur = current[b, t, i]
                    if ref[b, i] <= eps:
                        vi = cur + (v[b, i] - cur) * decay + syn[i]
                    else:
                        vi = v_reset
                    if vi >= threshold:
                        v[b, i] = v_reset
                        ref[b, i] = t_ref
                        spikes[b, i] = one
                        trace[b, i] = trace[b, i] * trace_decay + one
                    else:
                        v[b, i] = vi
                        r = ref[b, i] - ds
                        ref[b, i] = r if r > zero else zero
                        spikes[b, i] = zero
                        trace[b, i] = trace[b, i] * trace_decay
            out[b, t] = trace[b]
    return out


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
    out = _run(np.ascontiguousarray(current, np.float32), v, ref, trace, spikes, *csc, f(decay),
               f(trace_decay), f(ds), f(t_ref), f(v_reset), f(threshold), int(substeps))
    return out, (v, ref, trace, spikes)
