"""The numba LTC kernels: fast (training, compile_step) and compat (inference) paths against the reference.

* fast kernels: float32 arithmetic for float32 inputs, vectorisable exp, dense FC loops; they must give
  the reference function (outputs and gradients within 1e-5 in float32, gradcheck in float64);
* compat kernels: the no-grad sequence path; its numpy/numba input and output mappings must reproduce the
  bits of the torch mapping code they replace (shipped closed-loop results depend on them).
"""

import numpy as np
import pytest
import torch

from liquid_control.nets import LTC, AutoNCP, FullyConnected, LTCCell
from liquid_control.nets.ltc import ltc_numba

pytestmark = pytest.mark.skipif(ltc_numba is None, reason="numba not installed")


def _grads(model, x, ts=None):
    model.zero_grad()
    y, h = model(x, timespans=ts)
    (y.sin().sum() + h.square().sum()).backward()
    return [y.detach(), h.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("wiring", ["fc64", "autoncp64"])
def test_fast_kernels_match_reference_at_bench_sizes(wiring):
    """The benchmark's configurations (32 inputs, 64 units): float32 outputs and gradients within 1e-5."""
    torch.manual_seed(0)
    w = FullyConnected(64, 4) if wiring == "fc64" else AutoNCP(64, 4)
    model = LTC(32, w, implementation="reference")
    x = torch.randn(3, 5, 32)
    ts = 0.5 + torch.rand(3, 5)
    ref = _grads(model, x, ts)
    model.rnn_cell.implementation = "numba"
    ours = _grads(model, x, ts)
    for a, b in zip(ref, ours, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())


@pytest.mark.parametrize("wiring", ["fc", "autoncp"])
def test_sequence_gradcheck_float64(wiring):
    """LTC over a sequence with resets and per-step times: float64 gradcheck of the fast kernels."""
    torch.manual_seed(1)
    w = FullyConnected(5, 2) if wiring == "fc" else AutoNCP(8, 2)
    model = LTC(3, w, ode_unfolds=2, implementation="numba").double()
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, model.state_size, dtype=torch.float64, requires_grad=True)
    ts = 0.5 + torch.rand(2, 3, dtype=torch.float64)
    resets = torch.tensor([[0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    names = [n for n, p in model.named_parameters()]

    def fn(x, h0, *ps):
        y, h = torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x, h0, ts, resets))
        return y, h

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(fn, (x, h0, *params))


def _reference_synapses(pre, sig, smu, wn, wd, src, dst, n_dst, gnum, gden):
    """Activations, num/den and the gradients of one synapse pass, per synapse, in float64 numpy."""
    z = sig * pre[src] - smu
    act = 1.0 / (1.0 + np.exp(-z))
    num, den = np.zeros(n_dst), np.zeros(n_dst)
    np.add.at(num, dst, act * wn)
    np.add.at(den, dst, act * wd)
    gz = (gnum[dst] * wn + gden[dst] * wd) * act * (1 - act)
    g_pre = np.zeros(len(pre))
    np.add.at(g_pre, src, gz * sig)
    return act, num, den, [act * gnum[dst], act * gden[dst], gz, gz * pre[src]], g_pre


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("density", "n_src", "n_dst"), [
    (1.0, 9, 7), (1.0, 9, 32), (0.3, 9, 7), (0.3, 9, 40),
    (1.0, 16, 64), (1.0, 37, 80), (0.3, 37, 40),  # 4-column blocks (+ 1), 16-row blocks (+ 5 rows)
])
def test_row_segment_loops_match_per_synapse_math(dtype, density, n_src, n_dst):
    """The padded row-segment loops (dense matrices and sparse wirings; float32 runs 16-lane vectors, a
    dense matrix by column vectors) give the per-synapse values: activations and num/den of a pass, the
    source gradients of a pass (``_synapse_back``, 16 rows at a time) and the parameter sums of two
    passes at once (``_synapse_accum``)."""
    rng = np.random.default_rng(0)
    mask = rng.random((n_src, n_dst)) < density
    if density < 1.0:
        mask[0] = False  # a source without synapses
    src, dst = (a.astype(np.int64) for a in np.nonzero(mask))
    rows, pidx, size = ltc_numba._segments(src, dst, mask.shape)
    assert (pidx is None) == (density == 1.0 and n_dst % 16 == 0)
    assert (rows[:, 2] % 16 == 0).all() and (rows[:, 1] + rows[:, 2] <= n_dst + 15).all()
    sig, smu, wn, wd = (rng.uniform(0.1, 2.0, size=src.size) for _ in range(4))
    log2e = 1.4426950408889634  # the kernels' sigmoid is base 2 on log2(e)-scaled sigma, sigma*mu
    padded = [ltc_numba._pad(a.astype(dtype), pidx, size) for a in (sig * log2e, smu * log2e, wn, wd)]
    sig_p, _, wn_p, wd_p = padded
    width = n_dst + 16  # the kernels' destination scratch: runs reach n_dst + 15, tails stay zero
    tol = 1e-5 if dtype == np.float32 else 1e-12
    dense = bool(ltc_numba._is_dense(rows, size, width))  # summed by column vectors
    assert dense == (pidx is None)
    passes = 2
    pres, acts = np.zeros((passes + 1, n_src), dtype), np.empty((passes, size), dtype)
    gns, gds = np.zeros((passes, width), dtype), np.zeros((passes, width), dtype)
    grads_ref = [0.0] * 4
    for k in range(passes):
        pre = rng.normal(size=n_src)
        gnum, gden = rng.normal(size=n_dst), rng.normal(size=n_dst)
        act_ref, num_ref, den_ref, grads_k, g_pre_ref = _reference_synapses(
            pre, sig, smu, wn, wd, src, dst, n_dst, gnum, gden
        )
        pres[k] = pre
        num, den = np.zeros(width, dtype), np.zeros(width, dtype)
        ltc_numba._synapses_jit(pres[k], *padded, rows, num, den, acts[k], dense)
        assert not num[n_dst:].any() and not den[n_dst:].any()
        gns[k, :n_dst], gds[k, :n_dst] = gnum, gden
        g_pre = np.zeros(n_src, dtype)
        ltc_numba._synapse_back_jit(pres[k], acts[k], gns[k], gds[k], sig_p, wn_p, wd_p, rows, g_pre)
        got = [ltc_numba._unpad(acts[k], pidx), num[:n_dst], den[:n_dst], g_pre]
        for x, y in zip(got, [act_ref, num_ref, den_ref, g_pre_ref], strict=True):
            np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
        grads_ref = [r + g for r, g in zip(grads_ref, grads_k, strict=True)]
    grads = [np.zeros(size, dtype) for _ in range(4)]
    ltc_numba._synapse_accum_jit(pres, acts, gns, gds, wn_p, wd_p, rows, *grads)
    for x, y in zip((ltc_numba._unpad(g, pidx) for g in grads), grads_ref, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 4), (np.float64, 4)])
def test_kernel_logistic_is_accurate(dtype, ulps):
    """The synapse loops' act = 1 / (1 + 2^a2) (16-lane vector code for float32, the scalar loop for
    float64) within a few ulps of longdouble numpy, finite and in [0, 1] at the extremes."""
    a2 = np.concatenate([np.linspace(-45, 45, 20000), [-1e4, -200.0, -127.0, -126.0, 0.0, 126.0, 127.0, 200.0,
                                                        1e4, 3e38, -3e38]])  # fmt: skip
    a2 = a2.astype(dtype)
    n = a2.size  # 20011 sources, one synapse each to destination 0: act[i] = 1 / (1 + 2^(0 - (-a2[i]) * 1))
    rows = np.stack([np.arange(n) * 16, np.zeros(n), np.full(n, 16)], 1).astype(np.int64)
    size = 16 * n
    sig = np.zeros(size, dtype)
    sig[::16] = -a2
    smu, w = np.zeros(size, dtype), np.zeros(size, dtype)
    act = np.empty(size, dtype)
    ltc_numba._synapses_jit(np.ones(n, dtype), sig, smu, w, w, rows, np.zeros(32, dtype), np.zeros(32, dtype),
                            act)  # fmt: skip
    out = act[::16]
    with np.errstate(over="ignore"):
        exact = 1.0 / (1.0 + np.exp2(a2.astype(np.longdouble)))
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))
    rel = np.abs(out.astype(np.longdouble) - exact) / np.maximum(exact, np.finfo(dtype).tiny)
    big = exact > np.finfo(dtype).tiny * 2**30  # away from underflow: relative accuracy
    assert float(rel[big].max()) <= ulps * np.finfo(dtype).eps
    tiny = exact <= np.finfo(dtype).tiny * 2**30
    assert float(np.abs(out[tiny] - exact[tiny]).max()) < 1e-28


def test_kernel_logistic_keeps_nan():
    """A NaN potential gives NaN activations (the float32 vector path), not a clamped number."""
    rows = np.array([[0, 0, 16]], np.int64)
    sig = np.ones(16, np.float32)
    act = np.empty(16, np.float32)
    z = np.zeros(16, np.float32)
    ltc_numba._synapses_jit(np.array([np.nan], np.float32), sig, z, z, z, rows, np.zeros(32, np.float32),
                            np.zeros(32, np.float32), act)  # fmt: skip
    assert np.isnan(act).all()


def _host_has_avx2() -> bool:
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("avx2", False))
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _host_has_avx2(), reason="needs an AVX2 host to run code compiled for haswell")
def test_kernel_logistic_without_avx512(tmp_path):
    """The vector logistic's non-AVX-512 branch (division, exponent bits built by hand) keeps NaN and its
    accuracy: run the two logistic tests in a subprocess whose numba compiles for an AVX2 CPU (haswell),
    so an AVX-512 machine checks the code an AVX2 machine runs (and vice versa)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path))
    code = ("from liquid_control.nets import simd; assert not simd.AVX512; "
            "import tests.nets.test_ltc_fast as t; t.test_kernel_logistic_keeps_nan(); "
            "[t.test_kernel_logistic_is_accurate(d, u) for d, u in ((np.float32, 4), (np.float64, 4))]")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", "import numpy as np; " + code], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("mapping", ["affine", "linear", "none"])
def test_inference_path_reproduces_torch_mapping_bits(mapping):
    """No-grad LTC calls run the compat kernel with compiled mappings: bit-identical to mapping in torch."""
    torch.manual_seed(2)
    model = LTC(6, AutoNCP(12, 3), input_mapping=mapping, output_mapping=mapping, implementation="numba")
    cell = model.rnn_cell
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x = torch.randn(3, 4, 6)
        resets = torch.zeros(3, 4)
        resets[1, 2] = 1
        for ts in (None, 0.37):
            y, h = model(x, timespans=ts, resets=resets)
            # the torch mapping code the compiled path replaces, around the same compat kernel
            xt = x.transpose(0, 1)
            u = cell._map_inputs(xt)
            tsv = torch.full((4, 3, 1), 1.0 if ts is None else ts)
            cm_t = (cell._positive(cell.cm) / (tsv / cell.ode_unfolds)).expand(4, 3, cell.state_size)
            keep = (1.0 - resets.transpose(0, 1)).contiguous()
            v = ltc_numba.infer_sequence(
                cell, *(t.contiguous().numpy() for t in (u, torch.zeros(3, 12), cm_t, keep))
            )
            y_ref = cell._map_outputs(v.reshape(12, -1)).reshape(4, 3, -1).transpose(0, 1)
            assert torch.equal(y, y_ref) and torch.equal(h, v[-1])
        # and it is the function the (fast, differentiable) training path computes
    y_train, _ = model(x, timespans=0.37, resets=resets)
    assert torch.allclose(y_train.detach(), y, atol=1e-6)


def test_frozen_weights_follow_dtype_conversion_and_updates():
    """Cached inference weights are rebuilt after .double() and after in-place updates."""
    torch.manual_seed(3)
    cell = LTCCell(AutoNCP(10, 2), 4, implementation="auto")
    model = LTC(4, AutoNCP(10, 2), implementation="auto")
    x1, h1 = torch.randn(1, 4), torch.zeros(1, 10)
    xs = torch.randn(2, 3, 4)
    with torch.no_grad():
        cell(x1, h1)
        model(xs)
        cell.double()
        model.double()
        y, _ = cell(x1.double(), h1.double())
        ys, _ = model(xs.double())
        assert y.dtype == torch.float64 and ys.dtype == torch.float64
        cell.implementation = model.rnn_cell.implementation = "reference"
        y_ref, _ = cell(x1.double(), h1.double())
        ys_ref, _ = model(xs.double())
        assert torch.allclose(y, y_ref, atol=1e-12) and torch.allclose(ys, ys_ref, atol=1e-12)
        cell.implementation = model.rnn_cell.implementation = "auto"
        model.rnn_cell.vleak.add_(0.3)
        ys2, _ = model(xs.double())
        model.rnn_cell.implementation = "reference"
        assert torch.allclose(ys2, model(xs.double())[0], atol=1e-12) and not torch.allclose(ys2, ys)


def test_compiled_step_rejects_non_finite_state():
    cell = LTCCell(6, 3, implementation="numba")
    step = cell.compile_step()
    x = np.zeros(3, np.float32)
    h = np.zeros(6, np.float32)
    step(x, h)
    h[2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        step(x, h)


def test_vector_kernels_without_avx512_give_the_same_values(monkeypatch):
    """The portable IR (exponent bits and an IEEE division instead of vscalefps / vrcp14ps) computes the
    same activations and sums: compiled here, uncached, with the AVX-512 intrinsics switched off."""
    import numba

    from liquid_control.nets import simd

    rng = np.random.default_rng(5)
    n_src, n_dst = 5, 32
    rows = np.stack([np.arange(n_src) * n_dst, np.zeros(n_src), np.full(n_src, n_dst)], 1).astype(np.int64)
    pre = rng.normal(size=n_src).astype(np.float32)
    sig, smu, wn, wd = (rng.uniform(-3, 3, n_src * n_dst).astype(np.float32) for _ in range(4))
    sig[:3] = [200.0, -200.0, 0.0]  # saturated activations: 2^a2 over- and underflow

    def run(portable):
        monkeypatch.setattr(simd, "AVX512", simd.AVX512 and not portable)

        @numba.njit(cache=False)
        def rows16(pre, sig, smu, wn, wd, rows, num, den, act):
            for i in range(pre.shape[0]):
                ltc_numba._synapse_row16(pre[i], sig, smu, wn, wd, act, num, den, rows[i, 0], rows[i, 1],
                                         rows[i, 2])  # fmt: skip

        num, den, act = np.zeros(n_dst + 16, np.float32), np.zeros(n_dst + 16, np.float32), np.empty_like(sig)
        rows16(pre, sig, smu, wn, wd, rows, num, den, act)
        return act, num, den

    exact = 1.0 / (1.0 + np.exp2(np.clip(smu.astype(np.float64) - sig * pre.repeat(n_dst), -1000, 1000)))
    for got in (run(portable=True), run(portable=False)):
        np.testing.assert_allclose(got[0], exact, rtol=1e-6, atol=1e-30)
        num_exact = (exact * wn).reshape(n_src, n_dst).sum(0)
        np.testing.assert_allclose(got[1][:n_dst], num_exact, rtol=1e-5, atol=1e-6)


def test_kernel_modules_name_the_simd_source_they_compile():
    """The compiled kernels' modules carry the digest of simd.py, so an edit there changes them too (numba's
    cache only notices edits of the file that defines a kernel): update SIMD_SHA256 after editing simd.py."""
    import hashlib
    from pathlib import Path

    from liquid_control.nets import reservoir_numba, simd

    digest = hashlib.sha256(Path(simd.__file__).read_bytes()).hexdigest()[:12]
    assert ltc_numba.SIMD_SHA256 == digest
    assert reservoir_numba.SIMD_SHA256 == digest
