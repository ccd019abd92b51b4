"""Compiled reservoir kernels (numba): a whole (B, T) sequence of LSM sub-steps or ESN steps per call.

LSM: the same function as ``LiquidStateMachine._reservoir_torch`` (tests compare them), two ways that give
the same bits:

* event driven, for one or a few samples (closed-loop control): each sub-step only the neurons that
  spiked push their outgoing synapses (a CSC copy of the recurrent matrix; the spiking neurons are
  listed, in ascending order, by a branch-free pass), and one fused, branch-free loop updates membrane,
  refractory timer and trace, instead of a dozen full-size tensor passes;
* sample lanes, for batches (the readout fit runs 64 episodes at a time): 16 samples side by side,
  each neuron's state a contiguous row of 16 lanes and its spikes one bit per lane, so the recurrent
  input is pulled over the fan-in lists (ascending presynaptic index, the push order) as one vector
  register per neuron, then updated in place (LLVM vector code written through numba intrinsics:
  :func:`_neuron16`). Spikes are exactly 0 or 1, so adding ``w`` or +0.0 per lane gives the sums of
  ``w * s``, in the same order as the push: identical bits. At 6684 units this runs ~3x faster than the
  earlier float-lane pull of 32 samples and ~6x faster than one event-driven sample per thread (~16% of
  the neurons spike per sub-step; the scattered pushes were the bottleneck).

A trace that decays below the smallest normal float32 is set to 0: subnormal numbers are ~100× slower on
x86 in every later operation (these kernels and the readout's Gram matrix), and they are far below
anything a readout can resolve.

ESN: ``h <- (1-a) h + a tanh(drive + W h)`` with W's fan-in lists (sorted by presynaptic unit, the order
of the CSR product of the torch path) and a branch-free tanh evaluated in float64 and rounded to float32
(so within float32 rounding of torch's tanh, not bit-identical to it). Batches run 16 samples side by
side as the LSM does (the fan-in sum of 16 lanes in one register, then the leaky update as one long
loop; the same operations per sample as the one-sample-per-thread kernel, so the same bits, ~3x faster).

Batches run on numba's pool (as many threads as torch's), small calls serially. Import fails cleanly
when numba is missing; the torch paths are used then.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from liquid_control.nets import simd
from liquid_control.nets.ltc_numba import _OPTS, _exp64_compat, _twin, pick_kernel, use_parallel

SIMD_SHA256 = "32e1123c1d55"  # simd.py's digest, so editing simd.py recompiles these kernels (see ltc_numba)
LANES = simd.LANES  # samples side by side in the lane kernel (one <16 x float> vector per neuron)


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


def _run_impl(current, v, ref, trace, spikes, out_ptr, out_idx, out_val, extra, out, decay, trace_decay, ds,
              t_ref, v_reset, threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
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
            out[b, t, :n] = tb
            out[b, t, n:] = extra[b, t]


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


# The lane kernel's inner loop as LLVM vector code (numba intrinsics): 16 lanes of one neuron held in a
# <16 x float> register through the fan-in sum, the spikes of the previous sub-step as one bit per lane
# (a uint32 per neuron; the 27 KB of them stay in L1 where 16 float lanes per neuron did not), and the LIF
# update of _lif_update on the vector, operation for operation (no fused multiply-add: same bits).

def _lif_update16(builder, cur, v, ref, trace, syn, decay, trace_decay, ds, t_ref, v_reset, threshold):
    """:func:`_lif_update` on 16 lanes (IR values); returns (v, ref, trace, spiked <16 x i1>)."""
    const = simd.const
    zero = const(0.0)
    vi = builder.fadd(builder.fadd(cur, builder.fmul(builder.fsub(v, cur), decay)), syn)
    vi = builder.select(builder.fcmp_ordered("<=", ref, const(1e-12)), vi, v_reset)
    spk = builder.fcmp_ordered(">=", vi, threshold)
    r = builder.fsub(ref, ds)
    r = builder.select(builder.fcmp_ordered(">", r, zero), r, zero)
    tr = builder.fmul(trace, trace_decay)
    kept = builder.select(builder.fcmp_ordered(">=", tr, const(1.1754944e-38)), tr, zero)
    return (builder.select(spk, v_reset, vi), builder.select(spk, t_ref, r),
            builder.select(spk, builder.fadd(tr, const(1.0)), kept), spk)


def _fanin_sum16(builder, row, fan, term):
    """IR of ``acc = +0.0; for k < fan: acc = acc + term(row * fan + k)`` over 16-lane vectors (the
    running sum in a register, added in k order); returns ``acc``, the builder after the loop."""
    start = builder.mul(row, fan)

    def body(k, acc):
        return builder.fadd(acc, term(builder.add(start, k)))

    return simd.loop(builder, fan, body, simd.const(0.0))


@intrinsic
def _neuron16(typingctx, cur, v, ref, trace, old, new, pre, w, row, decay, trace_decay, ds, t_ref, v_reset,
              threshold):
    """One sub-step of neuron ``row`` in 16 lanes: ``syn = sum_k w[row, k] * spike(pre[row, k])`` over the
    bits ``old``, in k order (a select of ``w`` or +0.0 per lane: the sums of ``w * s``), then the LIF
    update of ``cur/v/ref/trace[16 row : 16 row + 16]`` in place; the new spike bits go to ``new[row]``."""
    def codegen(context, builder, sig, args):
        ptrs = simd.pointers(context, builder, sig, args, range(8))
        cur_d, v_d, ref_d, tr_d, old_d, new_d, pre_d, w_d = ptrs
        fan = simd.dim(context, builder, sig, args, 6, 1)
        row = args[8]
        consts = [simd.splat(builder, x) for x in args[9:]]
        zero = simd.const(0.0)

        def term(j):  # w[j] in the lanes whose presynaptic neuron spiked, +0.0 in the others
            bits = builder.load(builder.gep(old_d, [builder.load(builder.gep(pre_d, [j]))]))
            lanes = builder.bitcast(builder.trunc(bits, ir.IntType(16)), simd.M16)
            return builder.select(lanes, simd.splat(builder, builder.load(builder.gep(w_d, [j]))), zero)

        syn = _fanin_sum16(builder, row, fan, term)
        off = builder.mul(row, ir.Constant(simd.I64, simd.LANES))
        c, vv, r, tr = (simd.load(builder, d, off) for d in (cur_d, v_d, ref_d, tr_d))
        nv, nr, nt, spk = _lif_update16(builder, c, vv, r, tr, syn, *consts)
        for d, val in zip((v_d, ref_d, tr_d), (nv, nr, nt), strict=True):
            simd.store(builder, val, d, off)
        builder.store(builder.zext(builder.bitcast(spk, ir.IntType(16)), ir.IntType(32)),
                      builder.gep(new_d, [row]))
        return context.get_dummy_value()

    f = types.float32
    return types.void(cur, v, ref, trace, old, new, pre, w, types.int64, f, f, f, f, f, f), codegen


def _lanes_impl(current, v, ref, trace, spikes, pre, w, extra, out, decay, trace_decay, ds, t_ref, v_reset,
                threshold, substeps):  # pragma: no cover - compiled
    batch, steps, n = current.shape
    lanes = 16
    size = n * lanes
    zero, one = np.float32(0.0), np.uint32(1)
    for g in numba.prange((batch + lanes - 1) // lanes):  # groups of samples: the only parallel loop
        b0 = g * lanes
        nb = min(lanes, batch - b0)  # a last, partial group leaves its spare lanes at rest
        vs, rs, ts, cur = (np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32),
                           np.zeros(size, np.float32))  # neuron-major rows of 16 lanes
        old, new = np.zeros(n, np.uint32), np.zeros(n, np.uint32)  # spike bits, lane q = bit q
        for q in range(nb):
            for i in range(n):
                e = i * lanes + q
                vs[e], rs[e], ts[e] = v[b0 + q, i], ref[b0 + q, i], trace[b0 + q, i]
                if spikes[b0 + q, i] > zero:
                    old[i] |= one << np.uint32(q)
        for t in range(steps):
            for q in range(nb):
                for i in range(n):
                    cur[i * lanes + q] = current[b0 + q, t, i]
            for _ in range(substeps):
                for i in range(n):
                    _neuron16(cur, vs, rs, ts, old, new, pre, w, i, decay, trace_decay, ds, t_ref, v_reset,
                              threshold)
                old, new = new, old
            for q in range(nb):
                for i in range(n):
                    out[b0 + q, t, i] = ts[i * lanes + q]
                out[b0 + q, t, n:] = extra[b0 + q, t]
        for q in range(nb):
            for i in range(n):
                e = i * lanes + q
                v[b0 + q, i], ref[b0 + q, i], trace[b0 + q, i] = vs[e], rs[e], ts[e]
                spikes[b0 + q, i] = np.float32(1.0) if (old[i] >> np.uint32(q)) & one else zero


_lanes_ser = numba.njit(**_OPTS)(_lanes_impl)
_lanes_par = numba.njit(parallel=True, **_OPTS)(_twin(_lanes_impl, "_parallel"))


def run_lsm(current: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
            csc: tuple[np.ndarray, np.ndarray, np.ndarray], fanin: tuple[np.ndarray, np.ndarray], *,
            decay: float, trace_decay: float, ds: float, t_ref: float, v_reset: float, threshold: float,
            substeps: int, lanes: bool | None = None, extra: np.ndarray | None = None
            ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Traces ``(B, T, n)`` for the drive ``current (B, T, n)`` from ``state`` = (v, ref, trace, spikes).

    ``csc`` serves the event-driven kernel, ``fanin`` (:func:`fanin_sorted`) the lane kernel; ``lanes``
    forces one (False: event driven, True: groups of :data:`LANES` samples), by default the lane kernel
    once every thread gets a full group, else event driven. ``extra (B, T, k)``: columns appended after
    the traces in the same output array (the readout's inputs without a concatenation copy). The state
    arrays are copied; the new state is returned."""
    v, ref, trace, spikes = (np.array(a, np.float32, order="C", copy=True) for a in state)
    f = np.float32
    batch, steps, n = current.shape
    current = np.ascontiguousarray(current, np.float32)
    _check_fanin(fanin)
    extra, out = _output(extra, batch, steps, n)
    consts = (f(decay), f(trace_decay), f(ds), f(t_ref), f(v_reset), f(threshold), int(substeps))
    lanes, kernel = _pick(lanes, steps, batch, (_lanes_par, _lanes_ser), (_run_par, _run_ser))
    kernel(current, v, ref, trace, spikes, *(fanin if lanes else csc), extra, out, *consts)
    return out, (v, ref, trace, spikes)


def _pick(lanes: bool | None, steps: int, batch: int, lane_kernels: tuple, sample_kernels: tuple) -> tuple:
    """``(lanes, kernel)``: the lane kernel (groups of :data:`LANES` samples) when forced, or by default
    once every thread gets a full group; else one sample per thread. Parallel twins for large calls."""
    if lanes is None:
        lanes = batch >= LANES * (numba.get_num_threads() if use_parallel(steps, batch) else 1)
    if lanes:
        return True, pick_kernel(*lane_kernels, steps, batch) if batch > LANES else lane_kernels[1]
    return False, pick_kernel(*sample_kernels, steps, batch)


def _check_fanin(fanin: tuple[np.ndarray, np.ndarray]) -> None:
    """The lane kernels' fan-in loops run at least once: every unit needs k >= 1 inputs."""
    if fanin[0].ndim != 2 or fanin[0].shape[1] < 1:
        raise ValueError(f"fan-in lists must be (units, k >= 1), got shape {fanin[0].shape}")


def _output(extra: np.ndarray | None, batch: int, steps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(extra, out)``: the columns to append after a kernel's ``n`` states, ``(B, T, k)`` float32
    contiguous (k = 0 for none), and the ``(B, T, n + k)`` output, each row written once by the kernel."""
    if extra is None:
        extra = np.zeros((batch, steps, 0), np.float32)
    elif extra.ndim != 3 or extra.shape[:2] != (batch, steps):
        raise ValueError(f"extra columns must be ({batch}, {steps}, k), got {extra.shape}")
    extra = np.ascontiguousarray(extra, np.float32)
    return extra, np.empty((batch, steps, n + extra.shape[2]), np.float32)


# ---- echo state network -------------------------------------------------------------------------------

def _tanh64(z):
    """tanh(z) in float64 (a few ulp); branch-free, so loops over it vectorise (no libm call)."""
    e = _exp64_compat(2.0 * min(max(z, -20.0), 20.0))
    z2 = z * z
    small = z * (1.0 - z2 * (1.0 / 3.0 - z2 * (2.0 / 15.0)))  # |z| < 1e-3: no cancellation in e - 1
    return small if abs(z) < 1e-3 else (e - 1.0) / (e + 1.0)


_tanh64_jit = numba.njit(inline="always", **_OPTS)(_tanh64)


def _esn_impl(drive, h0, pre, w, keep, leak, extra, out):  # pragma: no cover - compiled
    batch, steps, n = drive.shape
    fan = pre.shape[1]
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
                h[i] = keep * h[i] + leak * np.float32(_tanh64_jit(np.float64(z[i])))
                ob[i] = h[i]
            ob[n:] = extra[b, t]


_esn_ser = numba.njit(**_OPTS)(_esn_impl)
_esn_par = numba.njit(parallel=True, **_OPTS)(_twin(_esn_impl, "_parallel"))


@intrinsic
def _esn_pull16(typingctx, h, pre, w, row, cur, z):
    """``z[16 row : 16 row + 16] = cur[...] + sum_k w[row, k] * h[16 pre[row, k] : ... + 16]`` (16 lanes,
    the sum held in a register, multiply then add in k order: the per-sample kernel's operations)."""
    def codegen(context, builder, sig, args):
        h_d, pre_d, w_d, cur_d, z_d = simd.pointers(context, builder, sig, args, (0, 1, 2, 4, 5))
        fan = simd.dim(context, builder, sig, args, 1, 1)
        row, sixteen = args[3], ir.Constant(simd.I64, simd.LANES)

        def term(j):  # w[j] * h[16 pre[j] : 16 pre[j] + 16]
            src = builder.mul(builder.load(builder.gep(pre_d, [j])), sixteen)
            hv = simd.load(builder, h_d, src)
            return builder.fmul(simd.splat(builder, builder.load(builder.gep(w_d, [j]))), hv)

        acc = _fanin_sum16(builder, row, fan, term)
        off = builder.mul(row, sixteen)
        simd.store(builder, builder.fadd(simd.load(builder, cur_d, off), acc), z_d, off)
        return context.get_dummy_value()

    return types.void(h, pre, w, types.int64, cur, z), codegen


def _esn_lanes_impl(drive, h0, pre, w, keep, leak, extra, out):  # pragma: no cover - compiled
    batch, steps, n = drive.shape
    lanes = 16
    size = n * lanes
    for g in numba.prange((batch + lanes - 1) // lanes):  # groups of 16 samples: the only parallel loop
        b0 = g * lanes
        nb = min(lanes, batch - b0)  # a last, partial group leaves its spare lanes at rest
        h, cur, z = np.zeros(size, np.float32), np.zeros(size, np.float32), np.empty(size, np.float32)
        for q in range(nb):
            for i in range(n):
                h[i * lanes + q] = h0[b0 + q, i]
        for t in range(steps):
            for q in range(nb):
                for i in range(n):
                    cur[i * lanes + q] = drive[b0 + q, t, i]
            for i in range(n):  # z = drive + W h for every neuron (reads the old h)
                _esn_pull16(h, pre, w, i, cur, z)
            for e in range(size):  # then the leaky update, one long loop
                h[e] = keep * h[e] + leak * np.float32(_tanh64_jit(np.float64(z[e])))
            for q in range(nb):
                for i in range(n):
                    out[b0 + q, t, i] = h[i * lanes + q]
                out[b0 + q, t, n:] = extra[b0 + q, t]


_esn_lanes_ser = numba.njit(**_OPTS)(_esn_lanes_impl)
_esn_lanes_par = numba.njit(parallel=True, **_OPTS)(_twin(_esn_lanes_impl, "_parallel"))


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


def run_esn(drive: np.ndarray, h0: np.ndarray, fanin: tuple[np.ndarray, np.ndarray], leak: float,
            extra: np.ndarray | None = None, lanes: bool | None = None) -> np.ndarray:
    """States ``(B, T, n)`` of the leaky ESN for ``drive = W_in x + b (B, T, n)`` from ``h0 (B, n)``;
    ``extra (B, T, k)`` is appended after the states in the same array (as in :func:`run_lsm`). Batches
    run 16 samples side by side (:func:`_esn_pull16`, the same operations per sample, so the same bits
    as one sample per thread; ``lanes`` forces either)."""
    batch, steps, n = drive.shape
    _check_fanin(fanin)
    extra, out = _output(extra, batch, steps, n)
    _, kernel = _pick(lanes, steps, batch, (_esn_lanes_par, _esn_lanes_ser), (_esn_par, _esn_ser))
    kernel(np.ascontiguousarray(drive, np.float32), np.ascontiguousarray(h0, np.float32), *fanin,
           np.float32(1.0 - leak), np.float32(leak), extra, out)
    return out


# ---- readout statistics -------------------------------------------------------------------------------

def _copy_flushed_impl(src, dst, tiny):  # pragma: no cover - compiled
    zero = np.float32(0.0)
    for i in numba.prange(src.shape[0]):
        for j in range(src.shape[1]):
            x = src[i, j]
            dst[i, j] = zero if abs(x) < tiny else x  # NaN stays NaN


_copy_flushed_par = numba.njit(parallel=True, **_OPTS)(_copy_flushed_impl)


def copy_flushed(src: np.ndarray, dst: np.ndarray, tiny: np.float32) -> None:
    """``dst[:] = src`` for 2-D float32 arrays, values below ``tiny`` in magnitude set to 0 (threaded)."""
    if src.shape != dst.shape:
        raise ValueError(f"shapes differ: {src.shape} vs {dst.shape}")
    _copy_flushed_par(src, dst, tiny)
