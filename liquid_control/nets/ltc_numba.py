"""Compiled LTC kernels (numba): a whole sequence per call, forward and analytic backward.

Samples of a batch are independent through time, so one compiled loop per sample runs all time steps,
the sensory synapses and the ``ode_unfolds`` solver iterations, in parallel over the batch. Two kernel
families compute the same function as ``LTCCell._ode_reference`` (tests compare them):

* fast (training, :class:`LTCSequence`, and ``compile_step``/batch-1 ``cell()`` steps): arithmetic in the
  input's precision; float32 runs LLVM vector code on 16 lanes (numba intrinsics, :mod:`.simd`: one
  AVX-512 register where the CPU has it) with a base-2 sigmoid on log2(e)-scaled sigma and sigma*mu
  (~1 ulp), float64 a scalar loop. Synapses are stored per source neuron as contiguous runs of
  destinations padded to whole vectors (a dense matrix for FC wirings, summed in registers four column
  vectors at a time with AVX-512, one at a time without), arrays 64-byte aligned, FMA and reassociated
  sums allowed; the backward's source gradients are reduced 16 rows at a time. One autograd node holds
  the input/output mappings too. Backward recomputes each step's unfolds from the saved step-start
  potentials (the memory kept is (T, B, N) twice whatever ``ode_unfolds`` is), runs one source-gradient
  pass per unfold and then a single pass over the synapses for the parameter gradients of all unfolds
  of the step (four accumulators read and written once per step, not per unfold);
* compat (inference without gradients, e.g. closed-loop controllers through ``LTC.forward``): float64
  activations and a fixed operation order, bit-identical to the kernels every shipped policy was
  evaluated with (so their stored per-episode results still reproduce).

Import fails cleanly when numba is missing; :mod:`liquid_control.nets.ltc` then uses the torch path.
"""

from __future__ import annotations

import math
import operator
import types as types_module

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload
from torch import Tensor

from liquid_control.nets import simd

# error_model="numpy": no Python ZeroDivisionError check on each float division, which also kept LLVM
# from vectorising every loop with a division in it; results are unchanged (IEEE division either way)
# numba's on-disk cache is keyed on this file, not on simd.py, whose IR the kernels compile in: the
# digest of simd.py (first 12 hex digits of its SHA-256) is written here so that changing simd.py means
# changing this file too, which invalidates the cached kernels (a test checks that they agree).
SIMD_SHA256 = "32e1123c1d55"
_OPTS = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}


# exp(x) = 2^k exp(r), |r| <= ln2/2, exp(r) by its Taylor series to r^13 (< 1 ulp in float64). Written
# with plain arithmetic and an integer-to-float bit cast so the loop vectorises (libm exp does not).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_C = [1.0 / math.factorial(k) for k in range(14)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C


@intrinsic
def _bits_to_float(typingctx, x):
    """Reinterpret an int64 as the float64 with the same bits."""
    if x == types.int64:
        return types.float64(types.int64), lambda ctx, b, sig, args: b.bitcast(args[0], ir.DoubleType())
    return None


def _sigmoid_into(z, out):
    """out[i] = 1 / (1 + exp(-z[i])) for float64 z, out (compat arithmetic: no FMA, fixed order)."""
    for i in range(z.shape[0]):
        out[i] = 1.0 / (1.0 + _exp64_compat(-z[i]))


_sigmoid_jit = numba.njit(inline="always", **_OPTS)(_sigmoid_into)


def _activate(pre, src, sig, mu, z, out, n_dst, dense):
    """out[e] = sigmoid(sig[e] (pre[src[e]] - mu[e])); ``dense``: all synapses in row-major order."""
    if dense:  # contiguous loops the compiler vectorises
        for i in range(pre.shape[0]):
            p = pre[i]
            base = i * n_dst
            for j in range(n_dst):
                z[base + j] = sig[base + j] * (p - mu[base + j])
    else:
        for e in range(z.shape[0]):
            z[e] = sig[e] * (pre[src[e]] - mu[e])
    _sigmoid_jit(z, out)


def _collect(act, dst, wn, wd, num, den, dense):
    """num[dst] += act * wn, den[dst] += act * wd over the synapses."""
    n_dst = num.shape[0]
    if dense:
        for i in range(act.shape[0] // n_dst):
            base = i * n_dst
            for j in range(n_dst):
                num[j] += act[base + j] * wn[base + j]
                den[j] += act[base + j] * wd[base + j]
    else:
        for e in range(act.shape[0]):
            num[dst[e]] += act[e] * wn[e]
            den[dst[e]] += act[e] * wd[e]


_activate_jit = numba.njit(**_OPTS)(_activate)
_collect_jit = numba.njit(**_OPTS)(_collect)


def _forward_impl(
    u,
    h0,
    cm_t,
    keep,
    g,
    gvl,
    src,
    dst,
    sig,
    mu,
    wd,
    wn,
    ssrc,
    sdst,
    ssig,
    smu,
    swd,
    swn,
    eps,
    unfolds,
    v_out,
    v_start,
    ns_out,
    ds_out,
):
    """u (T,B,S), h0 (B,N), cm_t (T,B,N), keep (T,B) -> v_out (T,B,N); saves v_start/ns/ds (T,B,N)."""
    steps, batch, n_in = u.shape
    n = h0.shape[1]
    dense, sdense = src.shape[0] == n * n, ssrc.shape[0] == n_in * n
    for b in numba.prange(batch):
        v = h0[b].copy()
        num = np.empty(n, dtype=h0.dtype)
        den = np.empty(n, dtype=h0.dtype)
        ns = np.empty(n, dtype=h0.dtype)
        ds = np.empty(n, dtype=h0.dtype)
        zb, sb = np.empty(src.shape[0]), np.empty(src.shape[0])
        zs, ss = np.empty(ssrc.shape[0]), np.empty(ssrc.shape[0])
        for t in range(steps):
            k = keep[t, b]
            for i in range(n):
                v[i] *= k
                ns[i] = 0.0
                ds[i] = 0.0
            _activate_jit(u[t, b], ssrc, ssig, smu, zs, ss, n, sdense)
            _collect_jit(ss, sdst, swn, swd, ns, ds, sdense)
            v_start[t, b, :] = v
            ns_out[t, b, :] = ns
            ds_out[t, b, :] = ds
            for _ in range(unfolds):
                for i in range(n):
                    num[i] = cm_t[t, b, i] * v[i] + gvl[i] + ns[i]
                    den[i] = cm_t[t, b, i] + g[i] + ds[i] + eps
                _activate_jit(v, src, sig, mu, zb, sb, n, dense)
                _collect_jit(sb, dst, wn, wd, num, den, dense)
                for i in range(n):
                    v[i] = num[i] / den[i]
            v_out[t, b, :] = v


def _twin(fn, suffix: str):
    """A copy of ``fn`` under another name. numba's on-disk cache names its files after the function and
    does not key them by ``parallel``: a parallel and a serial compilation of one function would load
    each other's machine code (the "parallel" kernels then ran serially, or the serial ones threaded)."""
    twin = types_module.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__)
    twin.__qualname__ = fn.__qualname__ + suffix
    twin.__doc__ = fn.__doc__
    return twin


_forward_par = numba.njit(parallel=True, **_OPTS)(_twin(_forward_impl, "_parallel"))
_forward_ser = numba.njit(**_OPTS)(_forward_impl)


# ----- fast kernels (training, batch-1 steps): the input's precision, vector code -------------------------
# The compat kernels above compute the activations in float64 with a strict operation order (the shipped
# closed-loop results depend on those bits); they serve inference. Training runs these instead: float32
# arithmetic for float32 inputs on 16-lane vectors (``simd``: AVX-512 registers where the CPU has them),
# the sigmoid in base 2 on log2(e)-scaled sigma and sigma*mu (no libm call), fused multiply-adds and
# reassociated sums, contiguous per-source runs of destinations (a dense matrix for FC), and gradients
# of sigma and mu gathered as two sums. They agree with the reference to ~1e-6 (tests).
_FAST = {"cache": True, "nogil": True, "error_model": "numpy",
         "fastmath": {"nsz", "arcp", "contract", "afn", "reassoc"}}  # fmt: skip
_LN2 = 0.6931471805599453


def _exp64(x):
    """exp(x) in float64 (< 1 ulp), x clamped to [-700, 700]; vectorises."""
    x = min(max(x, -700.0), 700.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _C13 * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    return p * _bits_to_float((np.int64(k) + 1023) << 52)


_exp64_jit = numba.njit(inline="always", **_FAST)(_exp64)
_exp64_compat = numba.njit(inline="always", **_OPTS)(_exp64)  # compat: no fastmath


@numba.njit(inline="always", **_FAST)
def _logistic_neg2(a2):
    """1 / (1 + 2^a2) in float64 (the scalar loops' sigmoid of -a2 ln 2): 2^a2 = 2^k exp(r ln 2) with
    k = round(a2) and r = a2 - k exact, so no rounding of a2 ln 2 scales the error with |a2|."""
    a2 = min(max(a2, -1000.0), 1000.0)
    k = np.floor(a2 + 0.5)
    return 1.0 / (1.0 + _exp64_jit((a2 - k) * _LN2) * _bits_to_float((np.int64(k) + 1023) << 52))


def _synapses(pre, sig, smu, wn, wd, rows, num, den, act, dense):
    """act = sigmoid(z), z = sigma pre[i] - sigma mu, over each source's row segment; num[dst] += act wn,
    den[dst] += act wd. ``sig`` and ``smu`` hold sigma and sigma*mu times log2(e) (:func:`act_edges`):
    act = 1 / (1 + 2^(smu - sig pre[i])).

    The synapses of source neuron i are stored as one contiguous run of destinations, ``rows[i] =
    (offset, first destination, length)``, padded with wn = wd = 0 where a destination inside the run has
    no synapse (those add exact zeros) and to whole 16-lane vectors. A dense matrix is one run of N per
    source. This scalar loop serves float64; float32 runs :func:`_synapse_row16` (``dense``: the layout
    is a dense matrix, see :func:`_is_dense`; the vector path then sums by column vectors). Unsigned
    offsets: signed ones got numba's negative-index wraparound on every access, which kept LLVM from
    vectorising."""
    for i in range(pre.shape[0]):
        p = pre[i]
        o, lo, ln = np.uint64(rows[i, 0]), np.uint64(rows[i, 1]), np.uint64(rows[i, 2])  # no wraparound
        for jj in range(ln):
            s = _logistic_neg2(smu[o + jj] - sig[o + jj] * p)
            act[o + jj] = s
            num[lo + jj] += s * wn[o + jj]
            den[lo + jj] += s * wd[o + jj]


def _synapse_back(pre, act, gnum, gden, sig, wn, wd, rows, g_pre):
    """Backward of one :func:`_synapses` pass to the source potentials: g_pre[i] += sum dz sigma, with
    dz = (gnum wn + gden wd) act (1 - act) the gradient of z (``sig`` holds sigma log2(e))."""
    for i in range(pre.shape[0]):
        o, lo, ln = np.uint64(rows[i, 0]), np.uint64(rows[i, 1]), np.uint64(rows[i, 2])  # no wraparound
        acc = pre.dtype.type(0)
        for jj in range(ln):
            e = o + jj
            s = act[e]
            acc += (gnum[lo + jj] * wn[e] + gden[lo + jj] * wd[e]) * (s - s * s) * sig[e]
        g_pre[i] += acc * _LN2


def _synapse_accum(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx):
    """The per-synapse gradient sums of K passes at once (pre (>=K, S), act (K, E), gnum/gden (K, W)):
    g_wn += sum_k act gnum, g_wd += sum_k act gden, g_z += sum_k dz, g_zx += sum_k dz pre. Run once per
    time step over its unfolds, so the four accumulators are read and written once, not per unfold."""
    for i in range(pre.shape[1]):
        o, lo, ln = np.uint64(rows[i, 0]), np.uint64(rows[i, 1]), np.uint64(rows[i, 2])  # no wraparound
        for jj in range(ln):
            e, d = o + jj, lo + jj
            a_wn = a_wd = a_z = a_zx = pre.dtype.type(0)
            for k in range(act.shape[0]):
                s, gn, gd = act[k, e], gnum[k, d], gden[k, d]
                a_wn += s * gn
                a_wd += s * gd
                gz = (gn * wn[e] + gd * wd[e]) * (s - s * s)
                a_z += gz
                a_zx += gz * pre[k, i]
            g_wn[e] += a_wn
            g_wd[e] += a_wd
            g_z[e] += a_z
            g_zx[e] += a_zx


def _arrays_f32(*arrays, ndim: int = 1) -> bool:
    """Whether every numba type is a C-contiguous float32 array of ``ndim`` dimensions."""
    return all(isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == ndim and a.layout == "C"
               for a in arrays)  # fmt: skip


def _at(builder, base, c, stride=simd.LANES):
    """i64 IR of ``base + c * stride``."""
    step = ir.Constant(simd.I64, stride) if isinstance(stride, int) else stride
    return builder.add(base, builder.mul(c, step))


def _vectors(builder, n):
    """i64 IR of n // 16 (run lengths are whole vectors)."""
    return builder.lshr(n, ir.Constant(simd.I64, 4))


def _activation16(builder, sig_d, smu_d, e, pv):
    """act = 1 / (1 + 2^(smu - sig p)) of the 16 entries at e."""
    a2 = simd.fma(builder, builder.fneg(simd.load(builder, sig_d, e)), pv, simd.load(builder, smu_d, e))
    return simd.logistic_neg2(builder, a2)


def _add_product(builder, s, w_d, e, acc_d, d):
    """acc[d : d + 16] += s * w[e : e + 16]."""
    total = simd.fma(builder, s, simd.load(builder, w_d, e), simd.load(builder, acc_d, d))
    simd.store(builder, total, acc_d, d)


def _dz16(builder, s, gn, gd, wn, wd):
    """The gradient of z on 16 lanes: (gn wn + gd wd) s (1 - s)."""
    back = simd.fma(builder, gn, wn, builder.fmul(gd, wd))
    return builder.fmul(back, simd.fma(builder, builder.fneg(s), s, s))


@intrinsic
def _synapse_row16(typingctx, p, sig, smu, wn, wd, act, num, den, o, lo, ln):
    """:func:`_synapses` for one source row in float32, 16 destinations per vector (``ln`` a multiple of
    16, see :func:`_segments`): act = 1 / (1 + 2^(smu - sig p)), num += act wn, den += act wd."""
    if p != types.float32 or not _arrays_f32(sig, smu, wn, wd, act, num, den):
        return None

    def codegen(context, builder, sg, args):
        sig_d, smu_d, wn_d, wd_d, act_d, num_d, den_d = simd.pointers(context, builder, sg, args, range(1, 8))
        pv, o, lo = simd.splat(builder, args[0]), args[8], args[9]

        def body(c, _):
            e, d = _at(builder, o, c), _at(builder, lo, c)
            s = _activation16(builder, sig_d, smu_d, e, pv)
            simd.store(builder, s, act_d, e)
            _add_product(builder, s, wn_d, e, num_d, d)
            _add_product(builder, s, wd_d, e, den_d, d)

        simd.loop(builder, _vectors(builder, args[10]), body)
        return context.get_dummy_value()

    i = types.int64
    return types.void(p, sig, smu, wn, wd, act, num, den, i, i, i), codegen


def _dense_columns(m: int):
    """An intrinsic: :func:`_synapses` of a dense matrix (rows of ``len(num) - 16`` destinations, see
    :func:`_is_dense`) for the ``m`` column vectors c .. c + m - 1 (16 destinations each), summed over
    the sources in registers (no read-modify-write of num/den per source: ~20% faster than row by row).
    ``m`` = 4 gives each source four independent sigmoid chains (~50 dependent cycles each) that the core
    overlaps better than one chain per loop iteration: FC64 training ~10% faster than m = 1 (m = 2: ~5%)."""

    def typer(typingctx, pre, sig, smu, wn, wd, act, num, den, c):
        if not _arrays_f32(pre, sig, smu, wn, wd, act, num, den):
            return None

        def codegen(context, builder, sg, args):
            pre_d, sig_d, smu_d, wn_d, wd_d, act_d, num_d, den_d = simd.pointers(context, builder, sg, args,
                                                                                 range(8))  # fmt: skip
            width = builder.sub(simd.dim(context, builder, sg, args, 6, 0), ir.Constant(simd.I64, simd.LANES))
            cols = [_at(builder, ir.Constant(simd.I64, 0), builder.add(args[8], ir.Constant(simd.I64, q)))
                    for q in range(m)]  # fmt: skip

            def body(i, acc):
                pv = simd.splat(builder, builder.load(builder.gep(pre_d, [i])))
                sums = simd.unpack(builder, acc)
                out = []
                for q, col in enumerate(cols):
                    e = _at(builder, col, i, width)
                    s = _activation16(builder, sig_d, smu_d, e, pv)
                    simd.store(builder, s, act_d, e)
                    out.append(simd.fma(builder, s, simd.load(builder, wn_d, e), sums[2 * q]))
                    out.append(simd.fma(builder, s, simd.load(builder, wd_d, e), sums[2 * q + 1]))
                return simd.pack(builder, out)

            init = simd.pack(builder, [simd.load(builder, d_, col) for col in cols for d_ in (num_d, den_d)])
            n_src = simd.dim(context, builder, sg, args, 0, 0)
            sums = simd.unpack(builder, simd.loop(builder, n_src, body, init))
            for q, col in enumerate(cols):
                simd.store(builder, sums[2 * q], num_d, col)
                simd.store(builder, sums[2 * q + 1], den_d, col)
            return context.get_dummy_value()

        return types.void(pre, sig, smu, wn, wd, act, num, den, types.int64), codegen

    typer.__name__ = f"_dense_columns{m}"
    return intrinsic(typer)


_dense_column16 = _dense_columns(1)
# column vectors per pass: 4 with AVX-512 (32 vector registers hold the four chains); with 16 AVX2
# registers the four chains spill and one column at a time was ~10% faster (FC64 training, Zen 2)
_DENSE_BLOCK = 4 if simd.AVX512 else 1
_dense_column16xb = _dense_columns(_DENSE_BLOCK)


def _back_sum16(builder, ptrs, o, lo, ln):
    """IR of one source row's backward on 16 lanes: the vector sum of dz sig over its run (``ptrs``: act,
    gnum, gden, sig, wn, wd data pointers; o, lo, ln the row's offset, first destination, length)."""
    act_d, gn_d, gd_d, sig_d, wn_d, wd_d = ptrs

    def body(c, acc):
        e, d = _at(builder, o, c), _at(builder, lo, c)
        s, gn, gd = simd.load(builder, act_d, e), simd.load(builder, gn_d, d), simd.load(builder, gd_d, d)
        gz = _dz16(builder, s, gn, gd, simd.load(builder, wn_d, e), simd.load(builder, wd_d, e))
        return simd.fma(builder, gz, simd.load(builder, sig_d, e), acc)

    return simd.loop(builder, _vectors(builder, ln), body, simd.const(0.0))


@intrinsic
def _back_row16(typingctx, act, gnum, gden, sig, wn, wd, o, lo, ln):
    """:func:`_synapse_back` for one source row in float32, 16 per vector: the row's sum dz sig."""
    if not _arrays_f32(act, gnum, gden, sig, wn, wd):
        return None

    def codegen(context, builder, sg, args):
        ptrs = simd.pointers(context, builder, sg, args, range(6))
        return simd.hsum(builder, _back_sum16(builder, ptrs, args[6], args[7], args[8]))

    i = types.int64
    return types.float32(act, gnum, gden, sig, wn, wd, i, i, i), codegen


@intrinsic
def _accum_row16(typingctx, pre, act, gnum, gden, wn, wd, g_wn, g_wd, g_z, g_zx, i, o, lo, ln):
    """:func:`_synapse_accum` for source row i in float32, 16 per vector: the K passes' sums held in
    registers, then one read-modify-write of each accumulator."""
    if not (_arrays_f32(pre, act, gnum, gden, ndim=2) and _arrays_f32(wn, wd, g_wn, g_wd, g_z, g_zx)):
        return None

    def codegen(context, builder, sg, args):
        pre_d, act_d, gn_d, gd_d, wn_d, wd_d, *acc_d = simd.pointers(context, builder, sg, args, range(10))
        n_src, passes = simd.dim(context, builder, sg, args, 0, 1), simd.dim(context, builder, sg, args, 1, 0)
        n_e, width = simd.dim(context, builder, sg, args, 1, 1), simd.dim(context, builder, sg, args, 2, 1)
        row, o, lo = args[10], args[11], args[12]

        def body(c, _):
            e, d = _at(builder, o, c), _at(builder, lo, c)
            wn, wd = simd.load(builder, wn_d, e), simd.load(builder, wd_d, e)

            def per_pass(k, acc):
                a_wn, a_wd, a_z, a_zx = simd.unpack(builder, acc)
                s = simd.load(builder, act_d, _at(builder, e, k, n_e))
                gn, gd = (simd.load(builder, g_d, _at(builder, d, k, width)) for g_d in (gn_d, gd_d))
                x = simd.splat(builder, builder.load(builder.gep(pre_d, [_at(builder, row, k, n_src)])))
                gz = _dz16(builder, s, gn, gd, wn, wd)
                a_wn, a_wd = simd.fma(builder, s, gn, a_wn), simd.fma(builder, s, gd, a_wd)
                return simd.pack(builder, [a_wn, a_wd, builder.fadd(a_z, gz), simd.fma(builder, gz, x, a_zx)])

            sums = simd.loop(builder, passes, per_pass, simd.pack(builder, [simd.const(0.0)] * 4))
            for total, g_d in zip(simd.unpack(builder, sums), acc_d, strict=True):
                simd.store(builder, builder.fadd(simd.load(builder, g_d, e), total), g_d, e)

        simd.loop(builder, _vectors(builder, args[13]), body)
        return context.get_dummy_value()

    i = types.int64
    return types.void(pre, act, gnum, gden, wn, wd, g_wn, g_wd, g_z, g_zx, i, i, i, i), codegen


def _sum16x16(builder, vecs):
    """A vector whose lane j is the sum of the 16 lanes of ``vecs[j]`` (16 vectors): a butterfly of 15
    adds and 30 two-source shuffles, against ~8 dependent operations per vector for a horizontal sum."""
    idx = ir.VectorType(simd.I32, simd.LANES)
    width = simd.LANES
    while len(vecs) > 1:  # halve each row's partial sums while packing two vectors' rows into one
        groups, half = simd.LANES // width, width // 2
        lo = [src + g * width + k for src in (0, simd.LANES) for g in range(groups) for k in range(half)]
        hi = [q + half for q in lo]
        vecs = [builder.fadd(builder.shuffle_vector(a, b, ir.Constant(idx, lo)),
                             builder.shuffle_vector(a, b, ir.Constant(idx, hi)))
                for a, b in zip(vecs[0::2], vecs[1::2], strict=True)]  # fmt: skip
        width = half
    return vecs[0]


@intrinsic
def _back_block16(typingctx, act, gnum, gden, sig, wn, wd, rows, i0, g_pre, scale):
    """:func:`_synapse_back` for the 16 source rows i0 .. i0 + 15 in float32: each row's sum dz sig on
    16 lanes, the 16 sums reduced together (:func:`_sum16x16`), then g_pre[i0 : i0 + 16] += scale sums."""
    if not (_arrays_f32(act, gnum, gden, sig, wn, wd, g_pre) and isinstance(rows, types.Array)
            and rows.dtype == types.int64 and rows.ndim == 2 and rows.layout == "C"):
        return None

    def codegen(context, builder, sg, args):
        ptrs = simd.pointers(context, builder, sg, args, range(6))
        rows_d, g_d = simd.pointers(context, builder, sg, args, (6, 8))
        i0, sums = args[7], []
        for q in range(simd.LANES):
            base = builder.mul(builder.add(i0, ir.Constant(simd.I64, q)), ir.Constant(simd.I64, 3))
            o, lo, ln = (builder.load(builder.gep(rows_d, [builder.add(base, ir.Constant(simd.I64, k))]))
                         for k in range(3))  # fmt: skip
            sums.append(_back_sum16(builder, ptrs, o, lo, ln))
        scaled = simd.fma(builder, _sum16x16(builder, sums), simd.splat(builder, args[9]),
                          simd.load(builder, g_d, i0))  # fmt: skip
        simd.store(builder, scaled, g_d, i0)
        return context.get_dummy_value()

    i = types.int64
    return types.void(act, gnum, gden, sig, wn, wd, rows, i, g_pre, types.float32), codegen


@numba.njit(inline="always", **_FAST)
def _is_dense(rows, size, scratch):
    """Whether the row segments are a dense matrix (every row one run of the same length from 0) whose
    rows fill a destination scratch of ``scratch`` = length + 16 entries: the layout
    :func:`_dense_column16` sums by column vectors. The kernels check once per call and pass the answer
    as ``dense`` to :func:`_synapses_jit`."""
    if rows.shape[0] == 0:
        return False
    width = rows[0, 2]
    dense = size == rows.shape[0] * width and width + _PAD == scratch
    for i in range(rows.shape[0]):
        dense &= rows[i, 0] == i * width and rows[i, 1] == 0 and rows[i, 2] == width
    return dense


def _synapses16(pre, sig, smu, wn, wd, rows, num, den, act, dense):
    if dense:
        n_col = rows[0, 2] // _PAD
        blocked = n_col // _DENSE_BLOCK * _DENSE_BLOCK  # blocks of column vectors, then single ones
        for cb in range(0, blocked, _DENSE_BLOCK):
            _dense_column16xb(pre, sig, smu, wn, wd, act, num, den, cb)
        for c1 in range(blocked, n_col):
            _dense_column16(pre, sig, smu, wn, wd, act, num, den, c1)
        return
    for i in range(pre.shape[0]):
        _synapse_row16(pre[i], sig, smu, wn, wd, act, num, den, rows[i, 0], rows[i, 1], rows[i, 2])


def _synapse_back16(pre, act, gnum, gden, sig, wn, wd, rows, g_pre):
    full = pre.shape[0] // _PAD * _PAD
    for i0 in range(0, full, _PAD):
        _back_block16(act, gnum, gden, sig, wn, wd, rows, i0, g_pre, np.float32(_LN2))
    for i in range(full, pre.shape[0]):
        row_sum = _back_row16(act, gnum, gden, sig, wn, wd, rows[i, 0], rows[i, 1], rows[i, 2])
        g_pre[i] += np.float32(_LN2) * row_sum


def _synapse_accum16(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx):
    for i in range(pre.shape[1]):
        o, lo, ln = rows[i, 0], rows[i, 1], rows[i, 2]
        _accum_row16(pre, act, gnum, gden, wn, wd, g_wn, g_wd, g_z, g_zx, i, o, lo, ln)


def _synapse_pass(pre, sig, smu, wn, wd, rows, num, den, act, dense):
    """:func:`_synapses`, by 16-lane vectors for float32 arrays (the scalar loop for float64)."""


def _synapse_back_pass(pre, act, gnum, gden, sig, wn, wd, rows, g_pre):
    """:func:`_synapse_back`, by 16-lane vectors for float32 arrays (the scalar loop for float64)."""


def _synapse_accum_pass(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx):
    """:func:`_synapse_accum`, by 16-lane vectors for float32 arrays (the scalar loop for float64)."""


@overload(_synapse_pass, jit_options=_FAST, inline="always")
def _synapse_pass_overload(pre, sig, smu, wn, wd, rows, num, den, act, dense):
    return _synapses16 if _arrays_f32(pre, sig, smu, wn, wd, num, den, act) else _synapses


@overload(_synapse_back_pass, jit_options=_FAST, inline="always")
def _synapse_back_pass_overload(pre, act, gnum, gden, sig, wn, wd, rows, g_pre):
    return _synapse_back16 if _arrays_f32(pre, act, gnum, gden, sig, wn, wd, g_pre) else _synapse_back


@overload(_synapse_accum_pass, jit_options=_FAST, inline="always")
def _synapse_accum_pass_overload(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx):
    vector = _arrays_f32(pre, act, gnum, gden, ndim=2) and _arrays_f32(wn, wd, g_wn, g_wd, g_z, g_zx)
    return _synapse_accum16 if vector else _synapse_accum


def _synapses_any(pre, sig, smu, wn, wd, rows, num, den, act, dense=False):
    _synapse_pass(pre, sig, smu, wn, wd, rows, num, den, act, dense)


def _synapse_back_any(pre, act, gnum, gden, sig, wn, wd, rows, g_pre):
    _synapse_back_pass(pre, act, gnum, gden, sig, wn, wd, rows, g_pre)


def _synapse_accum_any(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx):
    _synapse_accum_pass(pre, act, gnum, gden, wn, wd, rows, g_wn, g_wd, g_z, g_zx)


# inlined into the kernels: as a called function its 10 array arguments cost an atomic refcount
# increment and decrement each per call (NRT_incref/decref were ~5% of FC64 training in a profile)
_synapses_jit = numba.njit(inline="always", **_FAST)(_synapses_any)
_synapse_back_jit = numba.njit(**_FAST)(_synapse_back_any)
_synapse_accum_jit = numba.njit(**_FAST)(_synapse_accum_any)
_PAD = simd.LANES  # row runs are whole vectors: destination scratch arrays have N + 16 entries
_ALIGN = 64  # bytes: a 16-lane float32 vector. Loads and stores that straddle two cache lines cost ~20%


@numba.njit(inline="always", **_FAST)
def _r16(n):
    """n rounded up to whole 16-lane vectors."""
    return (n + _PAD - 1) // _PAD * _PAD


@numba.njit(inline="always", **_FAST)
def _azeros(n, like):
    """Zeros of length n in the dtype of ``like``, starting on a 64-byte boundary."""
    buf = np.zeros(n + _PAD, like.dtype)
    off = ((_ALIGN - buf.ctypes.data % _ALIGN) % _ALIGN) // buf.itemsize
    return buf[off : off + n]


def aligned_zeros(shape: int | tuple[int, ...], dtype) -> np.ndarray:
    """numpy zeros starting on a 64-byte boundary (the compiled kernels' vector loads and stores)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    size = int(np.prod(dims))
    buf = np.zeros(size + _PAD, dtype)
    off = (-buf.ctypes.data % _ALIGN) // buf.itemsize
    return buf[off : off + size].reshape(dims)


def _fast_forward_impl(u, h0, cm_t, keep, g, gvl, rows, sig, smu, wd, wn,
                       srows, ssig, ssmu, swd, swn, eps, unfolds, v_out, v_start):  # fmt: skip
    """u (T,B,S), h0 (B,N), cm_t (T,B,N), keep (T,B) -> v_out (T,B,N); v_start (T,B,N) for backward."""
    steps, batch, n_in = u.shape
    n = h0.shape[1]
    w = _r16(n) + _PAD  # row runs reach n + 15 (zero tails)
    dense, sdense = _is_dense(rows, sig.shape[0], w), _is_dense(srows, ssig.shape[0], w)
    for b in numba.prange(batch):
        v = h0[b].copy()
        num, den, ns, ds = _azeros(w, v), _azeros(w, v), _azeros(w, v), _azeros(w, v)
        act, sact = _azeros(sig.shape[0], v), _azeros(ssig.shape[0], v)
        for t in range(steps):
            k = keep[t, b]
            for i in range(n):
                v[i] *= k
                ns[i] = 0.0
                ds[i] = 0.0
            _synapses_jit(u[t, b], ssig, ssmu, swn, swd, srows, ns, ds, sact, sdense)
            v_start[t, b, :] = v
            for _ in range(unfolds):
                for i in range(n):
                    c = cm_t[t, b, i]
                    num[i] = c * v[i] + gvl[i] + ns[i]
                    den[i] = c + g[i] + ds[i] + eps
                _synapses_jit(v, sig, smu, wn, wd, rows, num, den, act, dense)
                for i in range(n):
                    v[i] = num[i] / den[i]
            v_out[t, b, :] = v


def _fast_backward_impl(gV, u, cm_t, keep, g, gvl, rows, sig, smu, wd, wn,
                        srows, ssig, ssmu, swd, swn, eps, unfolds, v_start,
                        g_u, g_h0, g_cm, g_g, g_gvl, g_wd, g_wn, g_z, g_zx,
                        g_swd, g_swn, g_sz, g_szx):  # fmt: skip
    """Reverse pass from the saved step-start potentials. The samples are split into G = len(g_wd)
    groups (one per thread), each summing its parameter gradients into its own row (G, ...)."""
    steps, batch, n_in = u.shape
    n = g_h0.shape[1]
    ne, nes = sig.shape[0], ssig.shape[0]
    groups = g_wd.shape[0]
    w = _r16(n) + _PAD  # row runs reach n + 15 (zero tails); rows stay 64-byte aligned
    dense, sdense = _is_dense(rows, ne, w), _is_dense(srows, nes, w)
    for grp in numba.prange(groups):
        vs = np.empty((unfolds + 1, n), dtype=u.dtype)
        dens = _azeros(unfolds * w, u).reshape(unfolds, w)
        acts = _azeros(unfolds * ne, u).reshape(unfolds, ne)  # this step's synapse activations
        sact = _azeros(nes, u).reshape(1, nes)  # the sensory pass: one "unfold" for _synapse_accum
        ub = np.empty((1, n_in), dtype=u.dtype)
        num, ns, ds = _azeros(w, u), _azeros(w, u), _azeros(w, u)
        gv, gv_new = np.empty(n, dtype=u.dtype), np.empty(n, dtype=u.dtype)
        gnum, gden = _azeros(unfolds * w, u).reshape(unfolds, w), _azeros(unfolds * w, u).reshape(unfolds, w)
        gns, gds = _azeros(w, u).reshape(1, w), _azeros(w, u).reshape(1, w)
        for b in range(grp, batch, groups):  # the group's samples, one after another
            for i in range(n):
                gv[i] = 0.0  # each sample of the group starts from zero
            for t in range(steps - 1, -1, -1):
                for i in range(n):
                    ns[i] = 0.0
                    ds[i] = 0.0
                ub[0, :] = u[t, b]
                _synapses_jit(ub[0], ssig, ssmu, swn, swd, srows, ns, ds, sact[0], sdense)
                vs[0, :] = v_start[t, b, :]
                for k in range(unfolds):
                    for i in range(n):
                        c = cm_t[t, b, i]
                        num[i] = c * vs[k, i] + gvl[i] + ns[i]
                        dens[k, i] = c + g[i] + ds[i] + eps
                    _synapses_jit(vs[k], sig, smu, wn, wd, rows, num, dens[k], acts[k], dense)
                    for i in range(n):
                        vs[k + 1, i] = num[i] / dens[k, i]
                for i in range(n):
                    gv[i] += gV[t, b, i]
                    gns[0, i] = 0.0
                    gds[0, i] = 0.0
                for k in range(unfolds - 1, -1, -1):
                    for i in range(n):
                        gn = gv[i] / dens[k, i]
                        gd = -gn * vs[k + 1, i]
                        gnum[k, i] = gn
                        gden[k, i] = gd
                        g_cm[t, b, i] += gn * vs[k, i] + gd
                        gns[0, i] += gn
                        gds[0, i] += gd
                        gv_new[i] = gn * cm_t[t, b, i]
                    _synapse_back_jit(vs[k], acts[k], gnum[k], gden[k], sig, wn, wd, rows, gv_new)
                    for i in range(n):
                        gv[i] = gv_new[i]
                # the synapses' parameter gradients of all unfolds of this step, one pass over them
                _synapse_accum_jit(vs, acts, gnum, gden, wn, wd, rows, g_wn[grp], g_wd[grp], g_z[grp],
                                   g_zx[grp])  # fmt: skip
                for i in range(n):
                    g_g[grp, i] += gds[0, i]
                    g_gvl[grp, i] += gns[0, i]
                _synapse_back_jit(ub[0], sact[0], gns[0], gds[0], ssig, swn, swd, srows, g_u[t, b])
                _synapse_accum_jit(ub, sact, gns, gds, swn, swd, srows, g_swn[grp], g_swd[grp], g_sz[grp],
                                   g_szx[grp])  # fmt: skip
                k_t = keep[t, b]
                for i in range(n):
                    gv[i] *= k_t
            g_h0[b, :] = gv


_fast_forward_par = numba.njit(parallel=True, **_FAST)(_twin(_fast_forward_impl, "_parallel"))
_fast_forward_ser = numba.njit(**_FAST)(_fast_forward_impl)
_fast_backward_par = numba.njit(parallel=True, **_FAST)(_twin(_fast_backward_impl, "_parallel"))
_fast_backward_ser = numba.njit(**_FAST)(_fast_backward_impl)

# Below this many (time step, sample) pairs a call is too small to pay for waking numba's thread pool:
# a PPO rollout step (T=1, B=16) took ~8 ms through the parallel kernel on a loaded 2-core machine and
# ~0.9 ms serially. Both kernels compute the same thing (the batch loop is the only prange).
PARALLEL_MIN_WORK = 256


def use_parallel(steps: int, batch: int) -> bool:
    """Whether a (steps, batch) call should run the multi-threaded kernels."""
    return batch > 1 and steps * batch >= PARALLEL_MIN_WORK and numba.config.NUMBA_NUM_THREADS > 1


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _threads() -> None:
    want = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)


def pick_kernel(parallel, serial, steps: int, batch: int):
    """The multi-threaded twin for a large (steps, batch) call (numba's pool sized to torch's threads
    first), else the serial one; both compute the same thing."""
    if use_parallel(steps, batch):
        _threads()
        return parallel
    return serial


class LTCSequence(torch.autograd.Function):
    """(outputs (T,B,M), final state (B,N)) of the LTC over raw inputs x (T,B,S) from h0 (B,N).

    One autograd node for the whole sequence: input mapping (u = x in_w + in_b), cm_t = f(cm) / (ts /
    unfolds) per step, the fast kernels in the input's precision, and the output mapping (v[:M] out_w +
    out_b), with every backward in numpy/numba (no per-op torch dispatch: on a busy machine each small
    multi-threaded torch op cost milliseconds). Keeps the mapped inputs, cm_t, the (T,B,N) start and end
    potentials and the kernel layout of the weights for backward; nothing per ODE unfold."""

    @staticmethod
    def forward(ctx, x, h0, in_w, in_b, cm, ts, keep, g, gvl, sig, mu, wd, wn, ssig, smu, swd, swn,
                out_w, out_b, plans, unfolds, eps, motors):  # fmt: skip
        (rows, pidx, size), (srows, spidx, ssize) = plans
        xn, tsn, cmn = _np(x), _np(ts), _np(cm)
        u = xn * _np(in_w) + _np(in_b)
        cm_t = cmn / (tsn[:, :, None] / unfolds)
        edges, sedges = act_edges(sig, mu, wd, wn, pidx, size), act_edges(ssig, smu, swd, swn, spidx, ssize)
        steps, batch, _ = xn.shape
        v_out = np.empty((steps, batch, h0.shape[1]), dtype=xn.dtype)
        v_start = np.empty_like(v_out)
        eps_t = xn.dtype.type(eps)
        kernel = pick_kernel(_fast_forward_par, _fast_forward_ser, steps, batch)
        kernel(u, _np(h0), cm_t, _np(keep), _np(g), _np(gvl), rows, *edges, srows, *sedges,
               eps_t, unfolds, v_out, v_start)  # fmt: skip
        y = v_out[:, :, :motors] * _np(out_w) + _np(out_b)
        ctx.plans, ctx.unfolds, ctx.eps, ctx.motors = plans, unfolds, eps_t, motors
        ctx.edges = (edges, sedges)  # the kernel layout of the weights, for backward (O(synapses))
        t = torch.from_numpy
        ctx.save_for_backward(x, ts, keep, in_w, g, gvl, sig, mu, ssig, smu, out_w, t(u), t(cm_t),
                              t(v_start), t(v_out))  # fmt: skip
        return torch.from_numpy(y), torch.from_numpy(v_out[-1].copy())

    @staticmethod
    def backward(ctx, g_y, g_last):
        (rows, pidx, size), (srows, spidx, ssize) = ctx.plans
        x, ts, keep, in_w, g, gvl, sig, mu, ssig, smu, out_w, *arrays = ctx.saved_tensors
        u, cm_t, v_start, v_out = (a.numpy() for a in arrays)
        m, unfolds = ctx.motors, ctx.unfolds
        xn, tsn, in_wn = _np(x), _np(ts), _np(in_w)
        steps, batch, _ = xn.shape
        n = v_out.shape[2]
        dt = xn.dtype
        gyn = _np(g_y)
        gV = np.zeros((steps, batch, n), dtype=dt)
        gV[:, :, :m] = gyn * _np(out_w)
        gV[-1] += _np(g_last)
        g_u = np.zeros_like(u)
        g_h0 = np.empty((batch, n), dtype=dt)
        g_cmt = np.zeros((steps, batch, n), dtype=dt)
        kernel = pick_kernel(_fast_backward_par, _fast_backward_ser, steps, batch)
        groups = min(batch, numba.get_num_threads()) if kernel is _fast_backward_par else 1  # one per thread
        g_g, g_gvl = np.zeros((groups, n), dtype=dt), np.zeros((groups, n), dtype=dt)
        g_edges = [aligned_zeros((groups, size), dt) for _ in range(4)]  # wd, wn, sum dz, sum dz*pre
        g_sedges = [aligned_zeros((groups, ssize), dt) for _ in range(4)]
        sig_n, ssig_n = _np(sig), _np(ssig)
        edges, sedges = ctx.edges
        kernel(
            gV, u, cm_t, _np(keep), _np(g), _np(gvl), rows, *edges, srows, *sedges,
            ctx.eps, unfolds, v_start, g_u, g_h0, g_cmt, g_g, g_gvl, *g_edges, *g_sedges,
        )  # fmt: skip
        t = torch.from_numpy
        edge_grads = []
        for grads, s_, m_, idx in ((g_edges, sig_n, _np(mu), pidx), (g_sedges, ssig_n, _np(smu), spidx)):
            g_wd, g_wn, g_z, g_zx = (_unpad(a.sum(0), idx) for a in grads)
            edge_grads += [t(g_zx - m_ * g_z), t(-s_ * g_z), t(g_wd), t(g_wn)]
        rate = unfolds / tsn  # d cm_t / d cm; d cm_t / d ts = -cm_t / ts
        g_cm = np.einsum("tbn,tb->n", g_cmt, rate)
        g_ts = -np.einsum("tbn,tbn->tb", g_cmt, cm_t) / tsn
        flat = (steps * batch, -1)
        g_in_w = np.einsum("ij,ij->j", g_u.reshape(flat), xn.reshape(flat))
        g_out_w = np.einsum("ij,ij->j", gyn.reshape(flat), v_out[:, :, :m].reshape(flat))
        return (t(g_u * in_wn), t(g_h0), t(g_in_w), t(g_u.reshape(flat).sum(0)), t(g_cm), t(g_ts), None,
                t(g_g.sum(0)), t(g_gvl.sum(0)), *edge_grads, t(g_out_w), t(gyn.reshape(flat).sum(0)),
                None, None, None, None)  # fmt: skip


def plans_np(cell) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(src, dst) int64 arrays of the recurrent and the sensory synapses, cached per mask version.

    Row-major order, so a full mask is the dense (src, dst) matrix the kernels specialise on."""
    key = (cell.sparsity_mask._version, cell.sensory_sparsity_mask._version,
           cell.sparsity_mask.data_ptr(), cell.sensory_sparsity_mask.data_ptr())  # fmt: skip
    cached = cell._edge_cache.get("numba_plans")
    if cached is None or cached[0] != key:
        out, index = [], []
        for mask in (cell.sparsity_mask, cell.sensory_sparsity_mask):
            src, dst = np.nonzero(mask.detach().cpu().numpy())
            out.append((src.astype(np.int64), dst.astype(np.int64)))
            # None: every entry is a synapse (dense), the flat parameter is the per-synapse vector
            index.append(None if src.size == mask.numel() else torch.from_numpy(src * mask.shape[1] + dst))
        segments = tuple(_segments(src, dst, mask.shape) for (src, dst), mask in
                         zip(out, (cell.sparsity_mask, cell.sensory_sparsity_mask), strict=True))  # fmt: skip
        cached = (key, tuple(out), tuple(index), segments)
        cell._edge_cache["numba_plans"] = cached
    return cached[1]


def segments_np(cell) -> tuple[tuple[np.ndarray, np.ndarray | None, int], ...]:
    """(rows, pidx, size) of the recurrent and the sensory synapses for the fast kernels (see
    :func:`_synapses`): rows (n_src, 3) = (offset, first destination, length), lengths in whole 16-lane
    vectors; pidx maps each synapse of the list to its padded entry (None for a dense matrix whose rows
    are whole vectors: the identity); size = padded length."""
    plans_np(cell)
    return cell._edge_cache["numba_plans"][3]


def _segments(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]) -> tuple:
    n_src, n_dst = shape
    if src.size == n_src * n_dst and n_dst % _PAD == 0:  # dense, row-major: one run of n_dst per source
        rows = np.stack([np.arange(n_src) * n_dst, np.zeros(n_src, np.int64), np.full(n_src, n_dst)], 1)
        return rows.astype(np.int64), None, int(src.size)
    rows = np.zeros((n_src, 3), dtype=np.int64)
    pidx = np.empty(src.size, dtype=np.int64)
    off = 0
    for i in range(n_src):
        sel = np.flatnonzero(src == i)
        if sel.size == 0:
            rows[i] = (off, 0, 0)
            continue
        lo, hi = int(dst[sel].min()), int(dst[sel].max()) + 1
        length = -(-(hi - lo) // _PAD) * _PAD  # whole 16-lane vectors (zero weights pad the run)
        rows[i] = (off, lo, length)
        pidx[sel] = off + dst[sel] - lo
        off += length
    return rows, pidx, off


def _pad(a: np.ndarray, pidx: np.ndarray | None, size: int) -> np.ndarray:
    """Per-synapse values into the padded row-segment layout (zeros where there is no synapse), in a
    fresh 64-byte aligned array (the kernels' vector loads)."""
    out = aligned_zeros(size, a.dtype)
    out[slice(None) if pidx is None else pidx] = a
    return out


def act_edges(sig: Tensor, mu: Tensor, wd: Tensor, wn: Tensor, pidx: np.ndarray | None, size: int
              ) -> list[np.ndarray]:  # fmt: skip
    """The fast kernels' per-synapse arrays in the padded row-segment layout: sigma log2(e) and
    sigma mu log2(e) (their sigmoid is base 2), w*mask (wd) and w*mask*erev (wn)."""
    s = _np(sig)
    scale = s.dtype.type(_LOG2E)
    return [_pad(a, pidx, size) for a in (s * scale, s * _np(mu) * scale, _np(wd), _np(wn))]


def _unpad(a: np.ndarray, pidx: np.ndarray | None) -> np.ndarray:
    return a if pidx is None else a[pidx]


def _edge_params(cell, plans) -> tuple[list[Tensor], list[Tensor]]:
    """Per-synapse (sigma, mu, w*mask, w*mask*erev) for recurrent and sensory synapses (autograd)."""
    plans_np(cell)
    index = cell._edge_cache["numba_plans"][2]
    f = cell._positive
    out = []
    for idx, names in (
        (index[0], ("sigma", "mu", "w", "erev", "sparsity_mask")),
        (index[1], ("sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev", "sensory_sparsity_mask")),
    ):
        sigma, mu, w, erev, mask = (getattr(cell, nm) for nm in names)
        if idx is None:
            sig_e, mu_e, wd = sigma.reshape(-1), mu.reshape(-1), f(w).reshape(-1) * mask.reshape(-1)
            out.append([sig_e, mu_e, wd, wd * erev.reshape(-1)])
        else:
            wd = f(w).reshape(-1)[idx] * mask.reshape(-1)[idx]
            out.append([sigma.reshape(-1)[idx], mu.reshape(-1)[idx], wd, wd * erev.reshape(-1)[idx]])
    return out[0], out[1]


_VERSION = operator.attrgetter("_version")


def _weights_key(cell) -> tuple:
    """The version counters of the cell's parameters and buffers: they change on every in-place update.
    The cell clears its caches (this tensor list too) when a parameter or buffer is swapped or converted
    (``LTCCell.__setattr__``, ``register_*``, ``_apply``), which keep no version history."""
    tensors = cell._edge_cache.get("tensors")
    if tensors is None:
        tensors = cell._edge_cache["tensors"] = (*cell._parameters.values(), *cell._buffers.values())
    return tuple(map(_VERSION, tensors))


def _compat_weights(cell, plans) -> list[np.ndarray]:
    """g, gvl, the per-synapse arrays, then f(cm) and the mappings (in_w, in_b, out_w, out_b) as numpy
    (no autograd), cached per weights version."""
    key = _weights_key(cell)
    cached = cell._edge_cache.get("compat")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            rec, sens = _edge_params(cell, plans)
            g = cell._positive(cell.gleak)
            tensors = (g, g * cell.vleak, *rec, *sens, cell._positive(cell.cm), *_mappings(cell))
            arrays = [_np(a) for a in tensors]
        cached = (key, arrays)
        cell._edge_cache["compat"] = cached
    return cached[1]


def needs_grad(cell, *tensors: Tensor) -> bool:
    """Whether a call must record autograd (grad mode on and a tensor or a parameter requires grad)."""
    return torch.is_grad_enabled() and (
        any(t.requires_grad for t in tensors) or any(p.requires_grad for p in cell._parameters.values())
    )


def train_sequence(
    cell, x: Tensor, h0: Tensor, ts: float | Tensor, keep: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Differentiable (outputs (T,B,M), final state (B,N)) for raw inputs x (T,B,S) (fast kernels).

    ``ts`` is a scalar or a tensor broadcastable to (T,B); ``keep`` (T,B) or None."""
    steps, batch, _ = x.shape
    rec, sens = _edge_params(cell, plans_np(cell))
    plans = segments_np(cell)
    f = cell._positive
    g = f(cell.gleak)
    dt = x.dtype
    ts_t = (
        torch.full((steps, batch), float(ts), dtype=dt)
        if not torch.is_tensor(ts)
        else ts.to(dt).expand(steps, batch)
    )
    keep_t = torch.ones((steps, batch), dtype=dt) if keep is None else keep.to(dt)
    in_w, in_b, out_w, out_b = _mappings(cell)
    args = (x, h0, in_w, in_b, f(cell.cm), ts_t, keep_t, g, g * cell.vleak, *rec, *sens, out_w, out_b)
    return LTCSequence.apply(*args, plans, cell._ode_unfolds, cell._epsilon, cell.motor_size)


def run_sequence(cell, u: Tensor, h0: Tensor, cm_t: Tensor, keep: Tensor) -> Tensor:
    """Potentials after each step (T,B,N) for mapped inputs u (T,B,S), without autograd (compat kernels;
    :func:`train_sequence` is the differentiable path)."""
    return infer_sequence(cell, _np(u), _np(h0), _np(cm_t), _np(keep))


def infer_sequence(cell, u: np.ndarray, h0: np.ndarray, cm_t: np.ndarray, keep: np.ndarray) -> Tensor:
    """Forward only, compat kernels: u (T,B,S), h0 (B,N), cm_t (T,B,N), keep (T,B) -> (T,B,N)."""
    plans = plans_np(cell)
    (src, dst), (ssrc, sdst) = plans
    g, gvl, sig, mu, wd, wn, ssig, smu, swd, swn = _compat_weights(cell, plans)[:10]
    steps, batch, _ = u.shape
    v_out = np.empty((steps, batch, h0.shape[1]), dtype=u.dtype)
    v_start, ns, ds = (np.empty_like(v_out) for _ in range(3))
    kernel = pick_kernel(_forward_par, _forward_ser, steps, batch)
    kernel(u, h0, cm_t, keep, g, gvl, src, dst, sig, mu, wd, wn, ssrc, sdst, ssig, smu, swd, swn,
           cell._epsilon, cell._ode_unfolds, v_out, v_start, ns, ds)  # fmt: skip
    return torch.from_numpy(v_out)


def _step_impl(x, h, ts, P, rows, srows, meta, eps, y, v, work):
    """One batch-1 step with input/output mappings (fast kernels); weights packed in P, padded per row
    segment (``rows``, ``srows``: see :func:`_synapses`).

    ``work`` is zeroed, aligned float scratch of 4 (r16(N) + 16) + E + Es + S entries (E, Es: padded
    lengths; row runs reach N + 15, the tails stay zero). Returns False (and leaves y, v) when x or h
    holds a NaN or an inf."""
    n_in, n, motors, n_e, n_es, unfolds = meta[0], meta[1], meta[2], meta[3], meta[4], meta[5]
    finite = True
    for j in range(n_in):
        finite &= np.isfinite(x[j])
    for i in range(n):
        finite &= np.isfinite(h[i])
    if not finite:
        return False
    # P: every array in its own 64-byte aligned slot of whole vectors (see FrozenStep)
    o = 0
    sig, smu = P[o : o + n_e], P[o + n_e : o + 2 * n_e]
    wd, wn = P[o + 2 * n_e : o + 3 * n_e], P[o + 3 * n_e : o + 4 * n_e]
    o += 4 * n_e
    ssig, ssmu = P[o : o + n_es], P[o + n_es : o + 2 * n_es]
    swd, swn = P[o + 2 * n_es : o + 3 * n_es], P[o + 3 * n_es : o + 4 * n_es]
    o += 4 * n_es
    si, sn, sm = _r16(n_in), _r16(n), _r16(motors)
    in_w, in_b = P[o : o + n_in], P[o + si : o + si + n_in]
    o += 2 * si
    cm, g, gvl = P[o : o + n], P[o + sn : o + sn + n], P[o + 2 * sn : o + 2 * sn + n]
    o += 3 * sn
    out_w, out_b = P[o : o + motors], P[o + sm : o + sm + motors]
    w = _r16(n) + _PAD
    num, den, ns, ds = work[0:w], work[w : 2 * w], work[2 * w : 3 * w], work[3 * w : 4 * w]
    act = work[4 * w : 4 * w + n_e]
    sact = work[4 * w + n_e : 4 * w + n_e + n_es]
    xm = work[4 * w + n_e + n_es : 4 * w + n_e + n_es + n_in]
    for j in range(n_in):
        xm[j] = x[j] * in_w[j] + in_b[j]
    for i in range(n):
        ns[i] = 0.0
        ds[i] = 0.0
        v[i] = h[i]
    _synapses_jit(xm, ssig, ssmu, swn, swd, srows, ns, ds, sact, meta[7] == 1)
    scale = P.dtype.type(unfolds / ts)
    for _ in range(unfolds):
        for i in range(n):
            c = cm[i] * scale
            num[i] = c * v[i] + gvl[i] + ns[i]
            den[i] = c + g[i] + ds[i] + eps
        _synapses_jit(v, sig, smu, wn, wd, rows, num, den, act, meta[6] == 1)
        for i in range(n):
            v[i] = num[i] / den[i]
    for i in range(motors):
        y[i] = v[i] * out_w[i] + out_b[i]
    return True


_step = numba.njit(**_FAST)(_step_impl)


def _mappings(cell) -> list[Tensor]:
    """input_w, input_b, output_w, output_b, with the identity where a mapping is off."""
    s, m = cell.sensory_size, cell.motor_size
    dtype = cell.gleak.dtype
    in_w = cell.input_w if cell._input_mapping in ("affine", "linear") else torch.ones(s, dtype=dtype)
    in_b = cell.input_b if cell._input_mapping == "affine" else torch.zeros(s, dtype=dtype)
    out_w = cell.output_w if cell._output_mapping in ("affine", "linear") else torch.ones(m, dtype=dtype)
    out_b = cell.output_b if cell._output_mapping == "affine" else torch.zeros(m, dtype=dtype)
    return [in_w, in_b, out_w, out_b]


class FrozenStep:
    """A compiled batch-1 LTC step with the cell's current weights frozen in (closed-loop control).

    ``step(x (S,), h (N,), ts=1.0) -> (y (M,), v (N,))`` on numpy arrays; one call, no autograd. Runs
    the fast kernels in the cell's precision (same function as the reference, not the compat bits)."""

    def __init__(self, cell) -> None:
        with torch.no_grad():
            (sig, mu, wd, wn), (ssig, smu, swd, swn) = _edge_params(cell, plans_np(cell))
            (self.rows, pidx, n_e), (self.srows, spidx, n_es) = segments_np(cell)
            in_w, in_b, out_w, out_b = _mappings(cell)
            g = cell._positive(cell.gleak)
            rec, sens = act_edges(sig, mu, wd, wn, pidx, n_e), act_edges(ssig, smu, swd, swn, spidx, n_es)
            small = [_np(a) for a in (in_w, in_b, cell._positive(cell.cm), g, g * cell.vleak, out_w, out_b)]
            parts = [*rec, *sens, *small]  # each in an aligned slot of whole vectors (read by _step_impl)
            self.P = aligned_zeros(sum(_r16(a.size) for a in parts), rec[0].dtype)
            o = 0
            for a in parts:
                self.P[o : o + a.size] = a
                o += _r16(a.size)
        s, m, n = cell.sensory_size, cell.motor_size, cell.state_size
        width = _r16(n) + _PAD
        dense = [int(_is_dense(r, size, width)) for r, size in ((self.rows, n_e), (self.srows, n_es))]
        self.meta = np.array([s, n, m, n_e, n_es, cell._ode_unfolds, *dense], dtype=np.int64)
        self.eps = self.P.dtype.type(cell._epsilon)
        self.motors, self.units, self.inputs = m, n, s
        self._work = aligned_zeros(4 * (_r16(n) + _PAD) + n_e + n_es + _r16(s), self.P.dtype)

    def __call__(self, x: np.ndarray, h: np.ndarray, ts: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty(self.motors, dtype=self.P.dtype)
        v = np.empty(self.units, dtype=self.P.dtype)
        if not _step(x, h, float(ts), self.P, self.rows, self.srows, self.meta, self.eps, y, v, self._work):
            raise ValueError("input or state contains NaN or inf")
        return y, v


def frozen_step(cell) -> FrozenStep:
    """The cell's FrozenStep, rebuilt only when a parameter or mask changed."""
    key = _weights_key(cell)
    cached = cell._edge_cache.get("frozen")
    if cached is None or cached[0] != key:
        cached = (key, FrozenStep(cell))
        cell._edge_cache["frozen"] = cached
    return cached[1]


def _rows_impl(x, h, ts, P, rows, srows, meta, eps, y, v, work):
    """:func:`_step_impl` on (1, S) / (1, N) / (1, M) rows, so a tensor's ``numpy()`` view goes in as is."""
    return _step(x[0], h[0], ts, P, rows, srows, meta, eps, y[0], v[0], work)


_step_rows = numba.njit(**_FAST)(_rows_impl)


def _rows_of(t: Tensor, dt: np.dtype) -> np.ndarray:
    a = (t.detach() if t.requires_grad else t).numpy()
    return a if a.dtype == dt else a.astype(dt)


def step_inference(cell, x: Tensor, h: Tensor, ts: float) -> tuple[Tensor, Tensor]:
    """Batch-1 step without autograd: x (1,S), h (1,N) -> (y (1,M), v (1,N)) as tensors.

    The closed-loop hot path (``LTCCell.forward`` calls it before its own argument checks): shapes are
    checked here on the numpy views, and a mismatch goes back to the cell's checks for their errors."""
    step = frozen_step(cell)
    dt = step.P.dtype
    xa, ha = _rows_of(x, dt), _rows_of(h, dt)
    if xa.shape != (1, step.inputs) or ha.shape != (1, step.units):
        cell.check_arguments(x, h)
    y, v = np.empty((1, step.motors), dtype=dt), np.empty((1, step.units), dtype=dt)
    if not _step_rows(xa, ha, float(ts), step.P, step.rows, step.srows, step.meta, step.eps, y, v,
                      step._work):  # fmt: skip
        raise ValueError("input contains NaN or inf")
    return torch.from_numpy(y), torch.from_numpy(v)


def _map_in_impl(x, in_w, in_b, in_mode, cm, d, u, cm_t):
    """Input mapping and cm_t = cm / d with the float operations of the torch path, in its order
    (mode 0 none, 1 linear, 2 affine)."""
    steps, batch, n_in = x.shape
    cm_d = cm / d
    for t in range(steps):
        for b in range(batch):
            for j in range(n_in):
                val = x[t, b, j]
                if in_mode >= 1:
                    val = val * in_w[j]
                if in_mode == 2:
                    val = val + in_b[j]
                u[t, b, j] = val
            cm_t[t, b, :] = cm_d


def _map_out_impl(v, out_w, out_b, out_mode, y):
    """Output mapping of the motor neurons, as the torch path computes it."""
    for t in range(v.shape[0]):
        for b in range(v.shape[1]):
            for i in range(y.shape[2]):
                val = v[t, b, i]
                if out_mode >= 1:
                    val = val * out_w[i]
                if out_mode == 2:
                    val = val + out_b[i]
                y[t, b, i] = val


_map_in = numba.njit(**_OPTS)(_map_in_impl)
_map_out = numba.njit(**_OPTS)(_map_out_impl)
_MODES = {"none": 0, "linear": 1, "affine": 2}


def infer_mapped(cell, x: Tensor, h0: Tensor, ts: float, keep: Tensor | None) -> tuple[Tensor, Tensor]:
    """:meth:`LTCCell.sequence` without autograd for a constant time step, compiled end to end with the
    same float operations as the torch path (mappings, cm_t = f(cm) / (ts / unfolds)): the same bits.

    x (T,B,S), h0 (B,N), keep (T,B) or None -> (outputs (T,B,M), final state (B,N))."""
    cm, in_w, in_b, out_w, out_b = _compat_weights(cell, plans_np(cell))[10:]
    dt = cm.dtype
    x_n = np.ascontiguousarray(x.detach().numpy(), dtype=dt)
    steps, batch, _ = x_n.shape
    n = cm.shape[0]
    u, cm_t = np.empty_like(x_n), np.empty((steps, batch, n), dtype=dt)
    _map_in(
        x_n, in_w, in_b, _MODES[cell._input_mapping], cm, dt.type(ts) / dt.type(cell._ode_unfolds), u, cm_t
    )
    keep_n = np.ones((steps, batch), dtype=dt) if keep is None else np.ascontiguousarray(_np(keep), dtype=dt)
    h = np.ascontiguousarray(h0.detach().numpy(), dtype=dt)
    v_out = infer_sequence(cell, u, h, cm_t, keep_n).numpy()
    y = np.empty((steps, batch, cell.motor_size), dtype=dt)
    _map_out(v_out, out_w, out_b, _MODES[cell._output_mapping], y)
    return torch.from_numpy(y), torch.from_numpy(v_out[-1])
