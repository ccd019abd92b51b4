"""LLVM vector building blocks for the numba intrinsics of the compiled kernels: 16 float32 lanes.

numba's auto-vectoriser targets 256-bit registers even on AVX-512 CPUs (LLVM's preferred width there);
IR written on ``<16 x float>`` vectors gets one 512-bit register where the CPU has AVX-512 and two
256-bit ones elsewhere. These helpers build that IR inside ``@intrinsic`` code generators: constants and
broadcasts, vector pointers, a counted loop (with an optional vector accumulator), a horizontal sum,
``fma``, and float32 ``2^x`` / ``1 / x`` / logistic that vectorise (no libm calls).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from llvmlite import ir

LANES = 16
F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
V16 = ir.VectorType(F32, LANES)
M16 = ir.VectorType(ir.IntType(1), LANES)
_IDX16 = ir.VectorType(I32, LANES)


def _host_has_avx512() -> bool:
    """Whether numba compiles for this machine's CPU and that CPU has AVX-512F (for ``vrcp14ps``)."""
    try:
        import llvmlite.binding as llvm
        import numba

        if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES:
            return False
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - feature query unavailable
        return False


AVX512 = _host_has_avx512()


def const(x: float) -> ir.Constant:
    """A ``<16 x float>`` constant with every lane ``float32(x)``."""
    return ir.Constant(V16, [float(np.float32(x))] * LANES)


def splat(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Broadcast of the float ``x`` to 16 lanes."""
    v = builder.insert_element(ir.Constant(V16, ir.Undefined), x, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(V16, ir.Undefined), ir.Constant(_IDX16, [0] * LANES))


def vec_ptr(builder: ir.IRBuilder, data: ir.Value, off: ir.Value) -> ir.Value:
    """Pointer to the 16 floats at ``data + off``."""
    return builder.bitcast(builder.gep(data, [off]), V16.as_pointer())


def load(builder: ir.IRBuilder, data: ir.Value, off: ir.Value) -> ir.Value:
    """The 16 floats at ``data + off`` (unaligned load)."""
    return builder.load(vec_ptr(builder, data, off), align=4)


def store(builder: ir.IRBuilder, value: ir.Value, data: ir.Value, off: ir.Value) -> None:
    """Write 16 floats at ``data + off`` (unaligned store)."""
    builder.store(value, vec_ptr(builder, data, off), align=4)


def loop(
    builder: ir.IRBuilder,
    count: ir.Value,
    body: Callable[[ir.Value, ir.Value | None], ir.Value | None],
    acc: ir.Value | None = None,
) -> ir.Value | None:
    """IR of ``for k in range(count): acc = body(k, acc)`` (i64 ``count``; no iteration when it is <= 0).

    With ``acc`` (an initial vector, or several in a :func:`pack` struct) the running value stays in
    registers and is returned; without it ``body`` returns None. The builder is left after the loop."""
    entry = builder.block
    head, done = builder.append_basic_block("loop"), builder.append_basic_block("loop_done")
    builder.cbranch(builder.icmp_signed(">", count, ir.Constant(I64, 0)), head, done)
    builder.position_at_end(head)
    k = builder.phi(I64)
    k.add_incoming(ir.Constant(I64, 0), entry)
    carried = None
    if acc is not None:
        carried = builder.phi(acc.type)
        carried.add_incoming(acc, entry)
    nxt = body(k, carried)
    k1 = builder.add(k, ir.Constant(I64, 1))
    tail = builder.block  # body may have added blocks
    k.add_incoming(k1, tail)
    if carried is not None:
        carried.add_incoming(nxt, tail)
    builder.cbranch(builder.icmp_signed("<", k1, count), head, done)
    builder.position_at_end(done)
    if acc is None:
        return None
    out = builder.phi(acc.type)
    out.add_incoming(acc, entry)
    out.add_incoming(nxt, tail)
    return out


def pointers(context, builder, sig, args, indices) -> list[ir.Value]:
    """Data pointers of the array arguments ``indices`` of an intrinsic (``sig``, ``args`` of its codegen)."""
    return [context.make_array(sig.args[q])(context, builder, args[q]).data for q in indices]


def dim(context, builder, sig, args, q: int, axis: int) -> ir.Value:
    """Length (i64) of axis ``axis`` of the array argument ``q`` of an intrinsic."""
    return builder.extract_value(context.make_array(sig.args[q])(context, builder, args[q]).shape, axis)


def pack(builder: ir.IRBuilder, values: list[ir.Value]) -> ir.Value:
    """An IR struct of several vectors (one loop-carried value for :func:`loop`)."""
    out = ir.Constant(ir.LiteralStructType([v.type for v in values]), ir.Undefined)
    for q, v in enumerate(values):
        out = builder.insert_value(out, v, q)
    return out


def unpack(builder: ir.IRBuilder, packed: ir.Value) -> list[ir.Value]:
    """The vectors of a :func:`pack` struct."""
    return [builder.extract_value(packed, q) for q in range(len(packed.type.elements))]


def hsum(builder: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """Sum of the 16 lanes as a float (pairwise: halves added four times)."""
    width = LANES
    undef = ir.Constant(v.type, ir.Undefined)
    while width > 1:
        width //= 2
        hi = ir.Constant(_IDX16, [*range(width, 2 * width), *[0] * (LANES - width)])
        v = builder.fadd(v, builder.shuffle_vector(v, undef, hi))
    return builder.extract_element(v, ir.Constant(I32, 0))


def _intrinsic_fn(builder: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    module = builder.module
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def fma(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
    """``a * b + c`` on 16 lanes, rounded once (``llvm.fma``)."""
    return builder.call(_intrinsic_fn(builder, "llvm.fma.v16f32", V16, [V16, V16, V16]), [a, b, c])


# 2^r on 0 <= r < 1: a degree-5 polynomial fitted in Chebyshev nodes for relative error (numpy polyfit,
# weights 2^-r), max relative error ~1.2 ulp in float32 by Horner with FMA (tested through the logistic);
# constant term first
_EXP2_C = [0.9999999269249822, 0.6931529681766343, 0.24015452988670913, 0.05582360446232585,
           0.00899258403129463, 0.0018762329452059845]  # fmt: skip


def exp2(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """float32 2^x of 16 lanes (~1 ulp): 2^x = 2^k 2^r with k = floor(x), r = x - k exactly in [0, 1),
    2^r by a polynomial (Horner: fewest operations; the loops keep enough iterations in flight to hide
    its latency), times 2^k by ``vscalefps`` with AVX-512 (which floors x itself: exact, overflow to
    inf, underflow to 0, NaN kept) or by building the exponent bits (x clamped to [-126, 126])
    elsewhere."""
    if AVX512:  # r = x - floor(x) in one instruction (vreduceps, round down, precision exception off)
        reduce = _intrinsic_fn(builder, "llvm.x86.avx512.mask.reduce.ps.512", V16,
                               [V16, I32, V16, ir.IntType(16), I32])  # fmt: skip
        r = builder.call(reduce, [x, ir.Constant(I32, 9), const(0.0), ir.Constant(ir.IntType(16), -1),
                                  ir.Constant(I32, 4)])  # fmt: skip
        k = x
    else:  # clamp with compares that are false for NaN, so NaN passes through
        x = builder.select(builder.fcmp_ordered("<", x, const(-126.0)), const(-126.0), x)
        x = builder.select(builder.fcmp_ordered(">", x, const(126.0)), const(126.0), x)
        k = builder.call(_intrinsic_fn(builder, "llvm.floor.v16f32", V16, [V16]), [x])
        r = builder.fsub(x, k)
    p = const(_EXP2_C[-1])
    for c in reversed(_EXP2_C[:-1]):
        p = fma(builder, p, r, const(c))
    if AVX512:
        scalef = _intrinsic_fn(builder, "llvm.x86.avx512.mask.scalef.ps.512", V16,
                               [V16, V16, V16, ir.IntType(16), I32])  # fmt: skip
        return builder.call(scalef, [p, k, const(0.0), ir.Constant(ir.IntType(16), -1), ir.Constant(I32, 4)])
    # k + 127 as integer bits without fptosi (poison for NaN): k + (2^23 + 127) is exact for |k| <= 126 and
    # holds k + 127 in its low mantissa bits; shifting left by 23 drops the exponent field. NaN gives 0
    # bits, and p (NaN) * 0 stays NaN.
    biased = builder.bitcast(builder.fadd(k, const(8388608.0 + 127.0)), _IDX16)
    bits = builder.shl(biased, ir.Constant(_IDX16, [23] * LANES))
    return builder.fmul(p, builder.bitcast(bits, V16))


def logistic_neg2(builder: ir.IRBuilder, a2: ir.Value) -> ir.Value:
    """1 / (1 + 2^a2) on 16 lanes (the logistic sigmoid of -a2 ln2); a2 above 126 counts as 126 (the
    result is then below 1e-38 either way), NaN stays NaN."""
    big = const(126.0)
    a2 = builder.select(builder.fcmp_ordered(">", a2, big), big, a2)
    return reciprocal(builder, builder.fadd(const(1.0), exp2(builder, a2)))


def reciprocal(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """1 / x on 16 lanes: with AVX-512 a 14-bit estimate (``vrcp14ps``) and one Newton step (~1 ulp,
    about 4x the throughput of ``vdivps``), else an IEEE division."""
    if not AVX512:
        return builder.fdiv(const(1.0), x)
    rcp = _intrinsic_fn(builder, "llvm.x86.avx512.rcp14.ps.512", V16, [V16, V16, ir.IntType(16)])
    r0 = builder.call(rcp, [x, const(0.0), ir.Constant(ir.IntType(16), -1)])
    e = fma(builder, builder.fneg(x), r0, const(1.0))  # 1 - x r0
    return fma(builder, r0, e, r0)
