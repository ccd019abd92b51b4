"""Compiled reservoir kernels (numba): a whole (B, T) sequence of LSM sub-steps or ESN steps per call.

LSM: the same function as ``LiquidStateMachine._reservoir_torch`` (tests compare them), two ways that give
the same bits:

* event driven, for one or a few samples (closed-loop control): each sub-step only the neurons that
  spiked push their outgoing synapses (a CSC copy of the recurrent matrix; the spiking neurons are
  listed, in ascending order, by a branch-free pass), and one fused, branch-free loop updates membrane,
  refractory timer and trace, instead of a dozen full-size tensor passes;
* sample lanes, for batches (the readout fit runs 64 episodes at a time): 16 or 32 samples side by
  side, each neuron's state a contiguous row of lanes, so the recurrent input is pulled over the fan-in
  lists (ascending presynaptic index, the push order) one vector of lanes per synapse and the update is
  one long vectorised loop. Spikes are exactly 0 or 1, so ``w * s`` adds either ``w`` or a zero in the
  same order as the push: identical sums. At 6684 units, 32 lanes run ~2x faster than one event-driven
  sample per thread (~16% of the neurons spike per sub-step; the scattered pushes were the bottleneck).

A trace that decays below the smallest normal float32 is set to 0: subnormal numbers are ~100× slower on
x86 in every later operation (these kernels and the readout's Gram matrix), and they are far below
anything a readout can resolve.

ESN: ``h <- (1-a) h + a tanh(drive + W h)`` with W's fan-in lists (sorted by presynaptic unit, the order
of the CSR product of the torch path) and a branch-free tanh evaluated in float64 and rounded to float32
(so within float32 rounding of torch's tanh, not bit-identical to it).

Batches run on numba's pool (as many threads as torch's), small calls serially. Offsets into the lane
arrays are unsigned: numba's negative-index wraparound on signed ones kept LLVM from vectorising. Import
fails cleanly when numba is missing; the torch paths are used then.
"""

from __future__ import annotations

import numba
import numpy as np

from liquid_control.nets.ltc_numba import _OPTS, _exp64_compat, _twin, pick_kernel, use_parallel

LANES = (32, 16)  # samples side by side in the lane kernel, the widest that gives every thread a group


def _lif_update(cur, v, ref, trace, syn, decay, trace_decay, ds, t_ref, v_reset, threshold):
    """One LIF sub-step of one neuron: (v, ref, trace, spiked) from its drive and recurrent input."""
    zero, one, eps = np.float32(0.0), np.float32(1.0), np.float32(1e-12)
    tiny = np.float32(1.1754944e-38)  # smallest normal float32: a decayed trace below it becomes 0
    vi = cur + (v - cur) * decay + syn
    vi = vi if ref <= eps else v_reset  # every value computed, then selected: no data-dependent branches
    spk = vi >= threshold
    r = ref - ds
    tr = trace * trace_decay
    return (v_reset if spk else vi, t_ref if spk else (r if r > zero else zero),
            (tr + one) if spk else (tr if tr >= tiny else zero), spk)


_lif_update_jit = numba.njit(inline="always", **_OPTS)(_lif_update)


def _run_impl(current, v, ref, trace, spikes, out_ptr, out_idx, out_val, decay, trace_decay, ds, t_ref,
              v_reset, threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
    out = np.empty((batch, steps, n), np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    for b in numba.prange(batch):  # the samples are independent: the only parallel loop
        syn = np.zeros(n, np.float32)
        fired = np.empty(n, np.int64)
        vb, rb, tb, sb = v[b], ref[b], trace[b], spikes[b]
        m = 0
        for j in range(n):  # the neurons that spiked last, ascending (branch-free compaction)
            fired[m] = j
            m += sb[j] > zero
        for t in range(steps):
            cb = current[b, t]
            for _ in range(substeps):
                for q in range(m):  # presynaptic spikes of the previous sub-step, pushed to their targets
                    j = fired[q]
                    for k in range(out_ptr[j], out_ptr[j + 1]):
                        syn[out_idx[k]] += out_val[k]
                for i in range(n):
                    vb[i], rb[i], tb[i], spk = _lif_update_jit(cb[i], vb[i], rb[i], tb[i], syn[i], decay,
                                                               trace_decay, ds, t_ref, v_reset, threshold)
                    syn[i] = zero
                    sb[i] = one if spk else zero
                m = 0
                for j in range(n):
                    fired[m] = j
                    m += sb[j] > zero
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


def _pull_impl(spikes, syn, pre, w, lanes):  # pragma: no cover - compiled
    """syn[i, :] = sum_k w[i, k] spikes[pre[i, k], :] over rows of ``lanes`` (flat arrays)."""
    n, fan = pre.shape
    zero = np.float32(0.0)
    for i in range(n):
        base = np.uint64(i) * lanes
        for q in range(lanes):
            syn[base + q] = zero
        for k in range(fan):
            src = np.uint64(pre[i, k]) * lanes
            wk = w[i, k]
            for q in range(lanes):
                syn[base + q] += wk * spikes[src + q]


def _update_impl(current, v, ref, trace, spikes, syn, decay, trace_decay, ds, t_ref, v_reset,
                 threshold):  # pragma: no cover - compiled
    one, zero = np.float32(1.0), np.float32(0.0)
    for e in range(current.shape[0]):
        v[e], ref[e], trace[e], spk = _lif_update_jit(current[e], v[e], ref[e], trace[e], syn[e], decay,
                                                      trace_decay, ds, t_ref, v_reset, threshold)
        spikes[e] = one if spk else zero


_pull = numba.njit(**_OPTS)(_pull_impl)  # separate functions: each loop nest vectorises on its own
_update = numba.njit(**_OPTS)(_update_impl)


def _lanes_impl(current, v, ref, trace, spikes, pre, w, lanes, decay, trace_decay, ds, t_ref, v_reset,
                threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
    out = np.empty((batch, steps, n), np.float32)
    size = np.uint64(n) * np.uint64(lanes)
    for g in numba.prange((batch + lanes - 1) // lanes):  # groups of samples: the only parallel loop
        b0 = g * lanes
        nb = min(lanes, batch - b0)  # a last, partial group leaves its spare lanes at rest
        st = np.zeros((4, size), np.float32)  # v, ref, trace, spikes: neuron-major rows of lanes
        cur, syn = np.zeros(size, np.float32), np.empty(size, np.float32)
        for q in range(nb):
            for i in range(n):
                e = np.uint64(i) * lanes + q
                b = b0 + q
                st[0, e], st[1, e], st[2, e], st[3, e] = v[b, i], ref[b, i], trace[b, i], spikes[b, i]
        for t in range(steps):
            for q in range(nb):
                for i in range(n):
                    cur[np.uint64(i) * lanes + q] = current[b0 + q, t, i]
            for _ in range(substeps):
                _pull(st[3], syn, pre, w, np.uint64(lanes))
                _update(cur, st[0], st[1], st[2], st[3], syn, decay, trace_decay, ds, t_ref, v_reset,
                        threshold)
            for q in range(nb):
                for i in range(n):
                    out[b0 + q, t, i] = st[2, np.uint64(i) * lanes + q]
        for q in range(nb):
            for i in range(n):
                e = np.uint64(i) * lanes + q
                b = b0 + q
                v[b, i], ref[b, i], trace[b, i], spikes[b, i] = st[0, e], st[1, e], st[2, e], st[3, e]
    return out


_lanes_ser = numba.njit(**_OPTS)(_lanes_impl)
_lanes_par = numba.njit(parallel=True, **_OPTS)(_twin(_lanes_impl, "_parallel"))


def run_lsm(current: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
            csc: tuple[np.ndarray, np.ndarray, np.ndarray], fanin: tuple[np.ndarray, np.ndarray], *,
            decay: float, trace_decay: float, ds: float, t_ref: float, v_reset: float, threshold: float,
            substeps: int, lanes: int | None = None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Traces ``(B, T, n)`` for the drive ``current (B, T, n)`` from ``state`` = (v, ref, trace, spikes).

    ``csc`` serves the event-driven kernel, ``fanin`` (:func:`fanin_sorted`) the lane kernel; ``lanes``
    forces one (0: event driven, k: lanes of k samples), by default the widest of :data:`LANES` that
    gives every thread a full group, else event driven. The state arrays are copied; the new state is
    returned."""
    v, ref, trace, spikes = (np.array(a, np.float32, order="C", copy=True) for a in state)
    f = np.float32
    batch, steps = current.shape[:2]
    current = np.ascontiguousarray(current, np.float32)
    consts = (f(decay), f(trace_decay), f(ds), f(t_ref), f(v_reset), f(threshold), int(substeps))
    if lanes is None:
        threads = numba.get_num_threads() if use_parallel(steps, batch) else 1
        lanes = next((k for k in LANES if batch >= k * threads), 0)
    if lanes:
        kernel = pick_kernel(_lanes_par, _lanes_ser, steps, batch) if batch > lanes else _lanes_ser
        out = kernel(current, v, ref, trace, spikes, *fanin, int(lanes), *consts)
    else:
        kernel = pick_kernel(_run_par, _run_ser, steps, batch)  # many samples: one thread each
        out = kernel(current, v, ref, trace, spikes, *csc, *consts)
    return out, (v, ref, trace, spikes)


# ---- echo state network -------------------------------------------------------------------------------

def _tanh64(z):
    """tanh(z) in float64 (a few ulp); branch-free, so loops over it vectorise (no libm call)."""
    e = _exp64_compat(2.0 * min(max(z, -20.0), 20.0))
    z2 = z * z
    small = z * (1.0 - z2 * (1.0 / 3.0 - z2 * (2.0 / 15.0)))  # |z| < 1e-3: no cancellation in e - 1
    return small if abs(z) < 1e-3 else (e - 1.0) / (e + 1.0)


_tanh64_jit = numba.njit(inline="always", **_OPTS)(_tanh64)


def _esn_impl(drive, h0, pre, w, keep, leak):  # pragma: no cover - compiled
    batch, steps, n = drive.shape
    fan = pre.shape[1]
    out = np.empty((batch, steps, n), np.float32)
    zero = np.float32(0.0)
    for b in numba.prange(batch):  # the samples are independent: the only parallel loop
        h = h0[b].copy()
        z = np.empty(n, np.float32)
        for t in range(steps):
            db = drive[b, t]
            for i in range(n):  # W h in the CSR order (ascending presynaptic index), then + drive
                s = zero
                for k in range(fan):
                    s += w[i, k] * h[pre[i, k]]
                z[i] = db[i] + s
            ob = out[b, t]
            for i in range(n):
                ob[i] = keep * h[i] + leak * np.float32(_tanh64_jit(np.float64(z[i])))
            h[:] = ob
    return out


_esn_ser = numba.njit(**_OPTS)(_esn_impl)
_esn_par = numba.njit(parallel=True, **_OPTS)(_twin(_esn_impl, "_parallel"))


@numba.njit(**_OPTS)
def tanh32(z: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The kernel's float32 tanh of a 1-d float32 array (for tests)."""
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        out[i] = np.float32(_tanh64_jit(np.float64(z[i])))
    return out


def fanin_sorted(rec_idx: np.ndarray, rec_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan-in lists ``(pre (units, k), weight (units, k))`` sorted by presynaptic unit within each row."""
    order = np.argsort(rec_idx, axis=1, kind="stable")
    return (np.ascontiguousarray(np.take_along_axis(rec_idx, order, 1), np.int64),
            np.ascontiguousarray(np.take_along_axis(rec_val, order, 1), np.float32))


def run_esn(drive: np.ndarray, h0: np.ndarray, fanin: tuple[np.ndarray, np.ndarray], leak: float
            ) -> np.ndarray:
    """States ``(B, T, n)`` of the leaky ESN for ``drive = W_in x + b (B, T, n)`` from ``h0 (B, n)``."""
    batch, steps = drive.shape[:2]
    kernel = pick_kernel(_esn_par, _esn_ser, steps, batch)
    return kernel(np.ascontiguousarray(drive, np.float32), np.ascontiguousarray(h0, np.float32), *fanin,
                  np.float32(1.0 - leak), np.float32(leak))
