"""Compiled LTC kernels (numba): a whole sequence per call, forward and analytic backward.

Samples of a batch are independent through time, so one compiled loop per sample runs all time steps,
the sensory synapses and the ``ode_unfolds`` solver iterations over the synapse lists, in parallel over
the batch. The backward pass recomputes each step's unfolds from the saved step-start potentials, so
the memory kept for backward is (T, B, N) whatever ``ode_unfolds`` is. A batch-1 step kernel serves
closed-loop control. Same function as ``LTCCell._ode_reference`` (tests compare them).

Import fails cleanly when numba is missing; :mod:`liquid_control.nets.ltc` then uses the torch path.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

_OPTS = {"cache": True, "fastmath": False, "nogil": True}


# exp(x) = 2^k exp(r), |r| <= ln2/2, exp(r) by its Taylor series to r^13 (< 1 ulp in float64). Written
# with plain arithmetic and an integer-to-float bit cast so the loop vectorises (libm exp does not).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_C = [1.0 / math.factorial(k) for k in range(14)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C


def _sigmoid_into(z, out, bits):
    """out[i] = 1 / (1 + exp(-z[i])) for float64 z, out; bits is int64 scratch of the same length."""
    fl = bits.view(np.float64)
    for i in range(z.shape[0]):
        x = min(max(-z[i], -700.0), 700.0)
        k = math.floor(x * _LOG2E + 0.5)
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
        out[i] = p * r + _C0
        bits[i] = (np.int64(k) + 1023) << 52
    for i in range(z.shape[0]):
        out[i] = 1.0 / (1.0 + out[i] * fl[i])


_sigmoid_jit = numba.njit(inline="always", **_OPTS)(_sigmoid_into)


def _activate(pre, src, sig, mu, z, out, bits, n_dst, dense):
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
    _sigmoid_jit(z, out, bits)


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


def _grad_synapses(pre, act, gnum, gden, src, dst, sig, mu, wn, wd, dense, b, g_wn, g_wd, g_sig, g_mu, g_pre):
    """Backward of _activate + _collect for sample b: parameter gradients and g_pre += d/d pre."""
    n_dst = gnum.shape[0]
    if dense:
        for i in range(pre.shape[0]):
            x = pre[i]
            base = i * n_dst
            acc = 0.0
            for j in range(n_dst):
                e = base + j
                s = act[e]
                g_wn[b, e] += s * gnum[j]
                g_wd[b, e] += s * gden[j]
                gz = (gnum[j] * wn[e] + gden[j] * wd[e]) * s * (1.0 - s)
                g_sig[b, e] += gz * (x - mu[e])
                g_mu[b, e] -= gz * sig[e]
                acc += gz * sig[e]
            g_pre[i] += acc
    else:
        for e in range(act.shape[0]):
            x = pre[src[e]]
            s = act[e]
            gn, gd = gnum[dst[e]], gden[dst[e]]
            g_wn[b, e] += s * gn
            g_wd[b, e] += s * gd
            gz = (gn * wn[e] + gd * wd[e]) * s * (1.0 - s)
            g_sig[b, e] += gz * (x - mu[e])
            g_mu[b, e] -= gz * sig[e]
            g_pre[src[e]] += gz * sig[e]


_activate_jit = numba.njit(**_OPTS)(_activate)
_collect_jit = numba.njit(**_OPTS)(_collect)
_grad_synapses_jit = numba.njit(**_OPTS)(_grad_synapses)


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
        zb, sb, bits = np.empty(src.shape[0]), np.empty(src.shape[0]), np.empty(src.shape[0], np.int64)
        zs, ss, sbits = np.empty(ssrc.shape[0]), np.empty(ssrc.shape[0]), np.empty(ssrc.shape[0], np.int64)
        for t in range(steps):
            k = keep[t, b]
            for i in range(n):
                v[i] *= k
                ns[i] = 0.0
                ds[i] = 0.0
            _activate_jit(u[t, b], ssrc, ssig, smu, zs, ss, sbits, n, sdense)
            _collect_jit(ss, sdst, swn, swd, ns, ds, sdense)
            v_start[t, b, :] = v
            ns_out[t, b, :] = ns
            ds_out[t, b, :] = ds
            for _ in range(unfolds):
                for i in range(n):
                    num[i] = cm_t[t, b, i] * v[i] + gvl[i] + ns[i]
                    den[i] = cm_t[t, b, i] + g[i] + ds[i] + eps
                _activate_jit(v, src, sig, mu, zb, sb, bits, n, dense)
                _collect_jit(sb, dst, wn, wd, num, den, dense)
                for i in range(n):
                    v[i] = num[i] / den[i]
            v_out[t, b, :] = v


def _backward_impl(
    gV,
    u,
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
    v_start,
    ns_all,
    ds_all,
    g_u,
    g_h0,
    g_cm,
    g_g,
    g_gvl,
    g_sig,
    g_mu,
    g_wd,
    g_wn,
    g_ssig,
    g_smu,
    g_swd,
    g_swn,
):
    """Reverse pass; per-sample parameter gradients (B, ...) are summed by the caller."""
    steps, batch, n_in = u.shape
    n = g_h0.shape[1]
    dense, sdense = src.shape[0] == n * n, ssrc.shape[0] == n_in * n
    for b in numba.prange(batch):
        vs = np.empty((unfolds + 1, n), dtype=u.dtype)
        sv = np.empty((unfolds, src.shape[0]))  # synapse activations of this step
        zb, bits = np.empty(src.shape[0]), np.empty(src.shape[0], np.int64)
        zs, ss, sbits = np.empty(ssrc.shape[0]), np.empty(ssrc.shape[0]), np.empty(ssrc.shape[0], np.int64)
        dens = np.empty((unfolds, n), dtype=u.dtype)
        num = np.empty(n, dtype=u.dtype)
        gv = np.zeros(n, dtype=u.dtype)
        gv_new = np.empty(n, dtype=u.dtype)
        gnum = np.empty(n, dtype=u.dtype)
        gden = np.empty(n, dtype=u.dtype)
        gns = np.empty(n, dtype=u.dtype)
        gds = np.empty(n, dtype=u.dtype)
        for t in range(steps - 1, -1, -1):
            # recompute this step's unfold trajectory
            vs[0, :] = v_start[t, b, :]
            for k in range(unfolds):
                for i in range(n):
                    num[i] = cm_t[t, b, i] * vs[k, i] + gvl[i] + ns_all[t, b, i]
                    dens[k, i] = cm_t[t, b, i] + g[i] + ds_all[t, b, i] + eps
                _activate_jit(vs[k], src, sig, mu, zb, sv[k], bits, n, dense)
                _collect_jit(sv[k], dst, wn, wd, num, dens[k], dense)
                for i in range(n):
                    vs[k + 1, i] = num[i] / dens[k, i]
            for i in range(n):
                gv[i] += gV[t, b, i]
                gns[i] = 0.0
                gds[i] = 0.0
            for k in range(unfolds - 1, -1, -1):
                for i in range(n):
                    gnum[i] = gv[i] / dens[k, i]
                    gden[i] = -gnum[i] * vs[k + 1, i]
                    g_cm[t, b, i] += gnum[i] * vs[k, i] + gden[i]
                    gns[i] += gnum[i]
                    gds[i] += gden[i]
                    g_g[b, i] += gden[i]
                    g_gvl[b, i] += gnum[i]
                    gv_new[i] = gnum[i] * cm_t[t, b, i]
                _grad_synapses_jit(
                    vs[k],
                    sv[k],
                    gnum,
                    gden,
                    src,
                    dst,
                    sig,
                    mu,
                    wn,
                    wd,
                    dense,
                    b,
                    g_wn,
                    g_wd,
                    g_sig,
                    g_mu,
                    gv_new,
                )
                for i in range(n):
                    gv[i] = gv_new[i]
            _activate_jit(u[t, b], ssrc, ssig, smu, zs, ss, sbits, n, sdense)
            _grad_synapses_jit(
                u[t, b],
                ss,
                gns,
                gds,
                ssrc,
                sdst,
                ssig,
                smu,
                swn,
                swd,
                sdense,
                b,
                g_swn,
                g_swd,
                g_ssig,
                g_smu,
                g_u[t, b],
            )
            k_t = keep[t, b]
            for i in range(n):
                gv[i] *= k_t
        g_h0[b, :] = gv


_forward_par = numba.njit(parallel=True, **_OPTS)(_forward_impl)
_forward_ser = numba.njit(**_OPTS)(_forward_impl)
_backward_par = numba.njit(parallel=True, **_OPTS)(_backward_impl)
_backward_ser = numba.njit(**_OPTS)(_backward_impl)

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


class LTCSequence(torch.autograd.Function):
    """V (T,B,N) = LTC potentials after each step, from mapped inputs u (T,B,S) and h0 (B,N)."""

    @staticmethod
    def forward(ctx, u, h0, cm_t, keep, g, gvl, sig, mu, wd, wn, ssig, smu, swd, swn, plans, unfolds, eps):
        (src, dst), (ssrc, sdst) = plans
        arrays = [_np(a) for a in (u, h0, cm_t, keep, g, gvl)]
        edges = [_np(a) for a in (sig, mu, wd, wn)]
        sedges = [_np(a) for a in (ssig, smu, swd, swn)]
        steps, batch, _ = u.shape
        n = h0.shape[1]
        v_out = np.empty((steps, batch, n), dtype=arrays[0].dtype)
        v_start, ns, ds = (np.empty_like(v_out) for _ in range(3))
        _threads()
        kernel = _forward_par if use_parallel(steps, batch) else _forward_ser
        kernel(*arrays, src, dst, *edges, ssrc, sdst, *sedges, eps, unfolds, v_out, v_start, ns, ds)
        ctx.plans, ctx.unfolds, ctx.eps = plans, unfolds, eps
        kept = [torch.from_numpy(a) for a in (v_start, ns, ds)]  # (T,B,N) each, whatever the unfolds
        ctx.save_for_backward(u, cm_t, keep, g, gvl, sig, mu, wd, wn, ssig, smu, swd, swn, *kept)
        return torch.from_numpy(v_out)

    @staticmethod
    def backward(ctx, gV):
        (src, dst), (ssrc, sdst) = ctx.plans
        u, cm_t, keep, g, gvl, sig, mu, wd, wn, ssig, smu, swd, swn, *kept = ctx.saved_tensors
        v_start, ns, ds = (a.numpy() for a in kept)
        un = _np(u)
        steps, batch, _ = un.shape
        n = v_start.shape[2]
        dt = un.dtype
        g_u = np.zeros_like(un)
        g_h0 = np.empty((batch, n), dtype=dt)
        g_cm = np.zeros((steps, batch, n), dtype=dt)
        g_g, g_gvl = np.zeros((batch, n), dtype=dt), np.zeros((batch, n), dtype=dt)
        e, es = src.shape[0], ssrc.shape[0]
        g_edges = [np.zeros((batch, e), dtype=dt) for _ in range(4)]
        g_sedges = [np.zeros((batch, es), dtype=dt) for _ in range(4)]
        _threads()
        kernel = _backward_par if use_parallel(steps, batch) else _backward_ser
        kernel(
            _np(gV), un, _np(cm_t), _np(keep), _np(g), _np(gvl), src, dst,
            *(_np(a) for a in (sig, mu, wd, wn)), ssrc, sdst, *(_np(a) for a in (ssig, smu, swd, swn)),
            ctx.eps, ctx.unfolds, v_start, ns, ds, g_u, g_h0, g_cm, g_g, g_gvl, *g_edges, *g_sedges,
        )  # fmt: skip
        t = torch.from_numpy
        sums = [t(a.sum(0)) for a in (g_g, g_gvl, *g_edges, *g_sedges)]
        return (t(g_u), t(g_h0), t(g_cm), None, *sums, None, None, None)


def plans_np(cell) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(src, dst) int64 arrays of the recurrent and the sensory synapses, cached per mask version."""
    key = (cell.sparsity_mask._version, cell.sensory_sparsity_mask._version,
           cell.sparsity_mask.data_ptr(), cell.sensory_sparsity_mask.data_ptr())  # fmt: skip
    cached = cell._edge_cache.get("numba_plans")
    if cached is None or cached[0] != key:
        out = []
        for mask in (cell.sparsity_mask, cell.sensory_sparsity_mask):
            src, dst = np.nonzero(mask.detach().cpu().numpy())
            out.append((src.astype(np.int64), dst.astype(np.int64)))
        cached = (key, tuple(out))
        cell._edge_cache["numba_plans"] = cached
    return cached[1]


def _edge_params(cell, plans) -> tuple[list[Tensor], list[Tensor]]:
    """Per-synapse (sigma, mu, w*mask, w*mask*erev) for recurrent and sensory synapses (autograd)."""
    f = cell._positive
    out = []
    for (src, dst), names in (
        (plans[0], ("sigma", "mu", "w", "erev", "sparsity_mask")),
        (plans[1], ("sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev", "sensory_sparsity_mask")),
    ):
        sigma, mu, w, erev, mask = (getattr(cell, nm) for nm in names)
        idx = torch.from_numpy(src * w.shape[1] + dst)
        sig_e = sigma.reshape(-1)[idx]
        mu_e = mu.reshape(-1)[idx]
        wd = f(w).reshape(-1)[idx] * mask.reshape(-1)[idx]
        out.append([sig_e, mu_e, wd, wd * erev.reshape(-1)[idx]])
    return out[0], out[1]


def run_sequence(cell, u: Tensor, h0: Tensor, cm_t: Tensor, keep: Tensor) -> Tensor:
    """Potentials after each step (T,B,N) for mapped inputs u (T,B,S); differentiable."""
    plans = plans_np(cell)
    rec, sens = _edge_params(cell, plans)
    g = cell._positive(cell.gleak)
    gvl = g * cell.vleak
    return LTCSequence.apply(u, h0, cm_t, keep, g, gvl, *rec, *sens, plans, cell._ode_unfolds, cell._epsilon)


def _step_impl(x, h, ts, P, I, meta, eps, y, v):
    """One batch-1 step with input/output mappings; all weights packed in P (float) and I (int)."""
    n_in, n, motors, n_e, n_es, unfolds = meta[0], meta[1], meta[2], meta[3], meta[4], meta[5]
    o = 0
    in_w = P[o : o + n_in]
    o += n_in
    in_b = P[o : o + n_in]
    o += n_in
    cm = P[o : o + n]
    o += n
    g = P[o : o + n]
    o += n
    gvl = P[o : o + n]
    o += n
    sig = P[o : o + n_e]
    o += n_e
    mu = P[o : o + n_e]
    o += n_e
    wd = P[o : o + n_e]
    o += n_e
    wn = P[o : o + n_e]
    o += n_e
    ssig = P[o : o + n_es]
    o += n_es
    smu = P[o : o + n_es]
    o += n_es
    swd = P[o : o + n_es]
    o += n_es
    swn = P[o : o + n_es]
    o += n_es
    out_w = P[o : o + motors]
    o += motors
    out_b = P[o : o + motors]
    src = I[0:n_e]
    dst = I[n_e : 2 * n_e]
    ssrc = I[2 * n_e : 2 * n_e + n_es]
    sdst = I[2 * n_e + n_es : 2 * n_e + 2 * n_es]
    num = np.empty(n, dtype=P.dtype)
    den = np.empty(n, dtype=P.dtype)
    ns = np.zeros(n, dtype=P.dtype)
    ds = np.zeros(n, dtype=P.dtype)
    zs, ss, sbits = np.empty(n_es), np.empty(n_es), np.empty(n_es, np.int64)
    zb, sb, bits = np.empty(n_e), np.empty(n_e), np.empty(n_e, np.int64)
    xm = np.empty(n_in)
    for j in range(n_in):
        xm[j] = x[j] * in_w[j] + in_b[j]
    dense, sdense = n_e == n * n, n_es == n_in * n
    _activate_jit(xm, ssrc, ssig, smu, zs, ss, sbits, n, sdense)
    _collect_jit(ss, sdst, swn, swd, ns, ds, sdense)
    for i in range(n):
        v[i] = h[i]
    scale = unfolds / ts
    for _ in range(unfolds):
        for i in range(n):
            c = cm[i] * scale
            num[i] = c * v[i] + gvl[i] + ns[i]
            den[i] = c + g[i] + ds[i] + eps
        _activate_jit(v, src, sig, mu, zb, sb, bits, n, dense)
        _collect_jit(sb, dst, wn, wd, num, den, dense)
        for i in range(n):
            v[i] = num[i] / den[i]
    for i in range(motors):
        y[i] = v[i] * out_w[i] + out_b[i]


_step = numba.njit(**_OPTS)(_step_impl)


class FrozenStep:
    """A compiled batch-1 LTC step with the cell's current weights frozen in (closed-loop control).

    ``step(x (S,), h (N,), ts=1.0) -> (y (M,), v (N,))`` on numpy arrays; one call, no autograd.
    """

    def __init__(self, cell) -> None:
        with torch.no_grad():
            plans = plans_np(cell)
            rec, sens = _edge_params(cell, plans)
            s, m = cell.sensory_size, cell.motor_size
            dtype = cell.gleak.dtype
            in_w = cell.input_w if cell._input_mapping in ("affine", "linear") else torch.ones(s, dtype=dtype)
            in_b = cell.input_b if cell._input_mapping == "affine" else torch.zeros(s, dtype=dtype)
            out_w = (
                cell.output_w if cell._output_mapping in ("affine", "linear") else torch.ones(m, dtype=dtype)
            )
            out_b = cell.output_b if cell._output_mapping == "affine" else torch.zeros(m, dtype=dtype)
            g = cell._positive(cell.gleak)
            parts = [in_w, in_b, cell._positive(cell.cm), g, g * cell.vleak, *rec, *sens, out_w, out_b]
            self.P = np.ascontiguousarray(torch.cat([p.reshape(-1) for p in parts]).numpy())
        self.I = np.ascontiguousarray(np.concatenate([plans[0][0], plans[0][1], plans[1][0], plans[1][1]]))
        n_e, n_es = len(plans[0][0]), len(plans[1][0])
        self.meta = np.array([s, cell.state_size, m, n_e, n_es, cell._ode_unfolds], dtype=np.int64)
        self.eps = float(cell._epsilon)
        self.motors, self.units, self.inputs = m, cell.state_size, s

    def __call__(self, x: np.ndarray, h: np.ndarray, ts: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty(self.motors, dtype=self.P.dtype)
        v = np.empty(self.units, dtype=self.P.dtype)
        _step(x, h, float(ts), self.P, self.I, self.meta, self.eps, y, v)
        return y, v


def frozen_step(cell) -> FrozenStep:
    """The cell's FrozenStep, rebuilt only when a parameter or mask changed."""
    key = tuple((id(p), p._version) for p in cell._parameters.values()) + tuple(
        (id(b), b._version) for b in cell._buffers.values()
    )
    cached = cell._edge_cache.get("frozen")
    if cached is None or cached[0] != key:
        cached = (key, FrozenStep(cell))
        cell._edge_cache["frozen"] = cached
    return cached[1]


def step_inference(cell, x: Tensor, h: Tensor, ts: float) -> tuple[Tensor, Tensor]:
    """Batch-1 step without autograd: x (1,S), h (1,N) -> (y (1,M), v (1,N)) as tensors."""
    step = frozen_step(cell)
    xn = x.detach().numpy()[0]
    if not np.isfinite(xn).all():
        raise ValueError("input contains NaN or inf")
    y, v = step(
        xn.astype(step.P.dtype, copy=False), h.detach().numpy()[0].astype(step.P.dtype, copy=False), ts
    )
    return torch.from_numpy(y).unsqueeze(0), torch.from_numpy(v).unsqueeze(0)
