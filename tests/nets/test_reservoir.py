"""Reservoir cores: spectral radius, frozen weights, LIF firing rate, RLS, interface and budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liquid_control.nets.core import KINDS, make_core, size_for_budget
from liquid_control.nets.reservoir import (
    RLS,
    EchoStateNetwork,
    LiquidStateMachine,
    RidgeAccumulator,
    frozen_tensors,
    spectral_radius,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("method", ["eig", "power"])
@pytest.mark.parametrize("units,density", [(150, None), (300, 0.05)])
def test_spectral_radius_matches_request(method: str, units: int, density: float | None) -> None:
    core = make_core("esn", 8, 2, units=units, density=density, spectral_radius=0.8, radius_method=method,
                     seed=3)
    rho = np.abs(np.linalg.eigvals(core.recurrent_matrix())).max()
    assert abs(rho - 0.8) < 0.01 * 0.8
    k = core.rec_idx.shape[1]
    assert k == (10 if density is None else round(density * units))
    # each unit has k distinct presynaptic partners
    assert all(len(set(row)) == k for row in core.rec_idx.numpy())


def test_spectral_radius_sparse_eigensolver_matches_dense() -> None:
    core = make_core("esn", 4, 1, units=350, spectral_radius=1.1, seed=1)  # > 200 units: ARPACK
    idx, val = core.rec_idx.numpy(), core.rec_val.numpy()
    dense = np.abs(np.linalg.eigvals(core.recurrent_matrix())).max()
    assert dense == pytest.approx(1.1, rel=0.01)
    assert spectral_radius(idx, val, 350, "eig") == pytest.approx(dense, rel=1e-6)


def test_esn_interface_and_echo_state_property() -> None:
    core = make_core("esn", 6, 3, units=50, spectral_radius=0.9, leak_rate=0.5)
    x = torch.randn(2, 40, 6)
    y, s = core(x)
    assert y.shape == (2, 40, 3) and s.shape == (2, 50) and core.state_size == 50
    # chunked run == one run; resets zero the state
    y1, s1 = core(x[:, :15])
    y2, s2 = core(x[:, 15:], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-5, rtol=1e-5)
    resets = torch.zeros(2, 40)
    resets[:, 15] = 1
    yr, _ = core(x, resets=resets)
    y_fresh, _ = core(x[:, 15:])
    torch.testing.assert_close(yr[:, 15:], y_fresh, atol=1e-5, rtol=1e-5)
    # fading memory: two different initial states converge under the same input
    a, _ = core.readout_inputs(torch.randn(1, 200, 6).repeat(2, 1, 1), torch.randn(2, 50))
    assert (a[0, -1] - a[1, -1]).abs().max() < 1e-3 < (a[0, 0] - a[1, 0]).abs().max()
    phi, _ = core.readout_inputs(x)
    assert phi.shape == (2, 40, 50 + 6)
    torch.testing.assert_close(core.readout(phi), y)


def test_reservoir_weights_are_buffers_and_budget_counts_readout() -> None:
    assert "esn" in KINDS and "lsm" in KINDS
    for kind in ("esn", "lsm"):
        core = make_core(kind, 32, 4, budget=2000)
        names = {n for n, _ in core.named_parameters()}
        assert names == {"readout.weight", "readout.bias"}
        assert {"rec_idx", "rec_val", "w_in", "bias"} <= {n for n, _ in core.named_buffers()}
        trainable = sum(p.numel() for p in core.parameters())
        assert trainable == (core.units + 32 + 1) * 4
        assert abs(trainable - 2000) <= 0.1 * 2000
        assert size_for_budget(kind, 2000, 32, 4) == core.units
    with pytest.raises(ValueError):
        size_for_budget("esn", 10, 32, 4)


def test_reservoir_frozen_through_bc_training_step() -> None:
    from liquid_control.learn.bc import chunk_loss
    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    for kind in ("esn", "lsm"):
        torch.manual_seed(0)
        policy = PolicyNet(PolicyConfig(obs_dim=10, act_dim=2, core=kind, budget=None,
                                        core_kwargs={"units": 40}))
        before = frozen_tensors(policy.core)
        readout_before = policy.core.readout.weight.detach().clone()
        opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
        obs, act = torch.randn(4, 12, 10), torch.rand(4, 12, 2) * 2 - 1
        mask, resets = torch.ones(4, 12), torch.zeros(4, 12)
        resets[:, 0] = 1
        for _ in range(3):
            loss = chunk_loss(policy, obs, act, mask, resets, burn_in=4)
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = frozen_tensors(policy.core)
        for name, t in before.items():
            assert torch.equal(t, after[name]), f"{kind}: reservoir buffer {name} changed"
        assert not torch.equal(readout_before, policy.core.readout.weight), f"{kind}: readout did not train"
        assert all(not b.requires_grad for b in policy.core.buffers())


@pytest.mark.parametrize("t_ref", [0.0, 0.002, 0.005])
def test_lif_fires_at_analytic_rate(t_ref: float) -> None:
    """Constant drive R·I above threshold: rate = 1 / (t_ref + tau ln(R I / (R I - theta)))."""
    tau, theta, ds = 0.02, 1.0, 2e-5
    ri = torch.tensor([[1.1], [1.5], [3.0]])  # a batch of single neurons, one current each
    lsm = LiquidStateMachine(1, 1, units=1, tau_m=tau, threshold=theta, t_ref=t_ref, dt=ds, substeps=1,
                             w_exc=0.0, w_inh=0.0)
    v, ref, syn = torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1)
    times: list[list[float]] = [[], [], []]
    for k in range(int(round(0.25 / ds))):
        v, ref, s = lsm.lif_step(v, ref, ri, syn)
        for i in torch.nonzero(s[:, 0]).flatten().tolist():
            times[i].append(k * ds)
    for i, current in enumerate(ri[:, 0].tolist()):
        expected = 1.0 / (t_ref + tau * math.log(current / (current - theta)))
        assert len(times[i]) >= 3
        measured = (len(times[i]) - 1) / (times[i][-1] - times[i][0])  # from inter-spike intervals
        assert measured == pytest.approx(expected, rel=0.01)


def test_lif_below_threshold_is_silent_and_dale_signs() -> None:
    lsm = LiquidStateMachine(1, 1, units=1, w_exc=0.0, w_inh=0.0, dt=0.001, substeps=1)
    v, ref = torch.zeros(1, 1), torch.zeros(1, 1)
    for _ in range(2000):
        v, ref, s = lsm.lif_step(v, ref, torch.full((1, 1), 0.95), torch.zeros(1, 1))
        assert s.item() == 0
    big = LiquidStateMachine(3, 2, units=200, excitatory=0.75, dale=True, seed=2)
    w = big.recurrent_matrix()
    exc = big.excitatory_mask.numpy()
    assert exc.sum() == 150
    assert (w[:, exc] >= 0).all() and (w[:, ~exc] <= 0).all()  # column j = outgoing synapses of j
    assert (w[:, ~exc] < 0).any()


def test_lsm_runs_and_traces_follow_spikes() -> None:
    core = make_core("lsm", 5, 2, units=80, substeps=5, seed=1)
    x = torch.randn(2, 30, 5)
    y, s = core(x)
    assert y.shape == (2, 30, 2) and s.shape == (2, 320)
    phi, _ = core.readout_inputs(x)
    traces = phi[..., :80]
    assert (traces >= 0).all() and traces.sum() > 0  # the liquid is active
    assert (traces < core.units).all()
    groups = core.state_groups()  # what plot activity draws: traces (= readout features) and membranes
    torch.testing.assert_close(s[:, groups["trace"]], phi[:, -1, :80])
    assert groups["membrane"] == list(range(80))


def test_ridge_recovers_linear_map() -> None:
    rng = np.random.default_rng(0)
    w_true, b_true = rng.normal(size=(3, 12)), rng.normal(size=3)
    x = rng.normal(size=(5000, 12)) + 2.0
    y = x @ w_true.T + b_true + 0.01 * rng.normal(size=(5000, 3))
    acc = RidgeAccumulator(12, 3)
    for chunk in np.array_split(np.arange(5000), 7):
        acc.add(x[chunk], y[chunk])
    w, b = acc.solve(1e-8)
    np.testing.assert_allclose(w, w_true, atol=2e-3)
    np.testing.assert_allclose(b, b_true, atol=5e-3)
    acc_t = RidgeAccumulator(12, 3)
    acc_t.add(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(acc_t.solve(1e-8)[0], w_true, atol=5e-3)
    w_shrunk, _ = acc.solve(10.0)
    assert np.linalg.norm(w_shrunk) < 0.5 * np.linalg.norm(w_true)  # regularisation shrinks


def test_rls_converges_to_least_squares_and_tracks_switch() -> None:
    rng = np.random.default_rng(1)
    d = 6
    w1, w2 = rng.normal(size=(2, d)), rng.normal(size=(2, d))
    x = rng.normal(size=(3000, d))
    y = x @ w1.T + 0.05 * rng.normal(size=(3000, 2))
    rls = RLS(np.zeros((2, d)), np.zeros(2), forgetting=1.0, delta=1e4)
    for xi, yi in zip(x, y, strict=True):
        rls.update(xi, yi)
    xa = np.hstack([x, np.ones((3000, 1))])
    ls = np.linalg.lstsq(xa, y, rcond=None)[0]
    np.testing.assert_allclose(rls.weight, ls[:-1].T, atol=1e-3)
    np.testing.assert_allclose(rls.bias, ls[-1], atol=1e-3)
    # switched target: with forgetting the estimate moves to the new map; without it, it lags badly
    x2 = rng.normal(size=(600, d))
    y2 = x2 @ w2.T
    forgetting = RLS(rls.weight, rls.bias, forgetting=0.97, delta=1.0)
    forgetting.P, forgetting.trace_cap = rls.P.copy(), float(np.trace(np.eye(d + 1)))
    stiff = rls
    for xi, yi in zip(x2, y2, strict=True):
        forgetting.update(xi, yi)
        stiff.update(xi, yi)
    assert np.abs(forgetting.weight - w2).max() < 0.02
    assert np.abs(stiff.weight - w2).max() > 0.1
    assert np.trace(forgetting.P) <= forgetting.trace_cap + 1e-9  # bounded covariance


def test_rls_bounds_and_bad_options() -> None:
    rls = RLS(np.zeros((1, 2)), np.zeros(1), forgetting=0.9, delta=1.0, max_error=0.5)
    err = rls.update(np.array([1.0, 0.0]), np.array([100.0]))
    assert abs(err[0]) == 0.5
    assert np.abs(rls.theta).max() < 1.0
    for _ in range(500):  # no excitation of the second direction: P must not wind up
        rls.update(np.array([1.0, 0.0]), np.array([0.0]))
    assert np.trace(rls.P) <= rls.trace_cap + 1e-9
    with pytest.raises(ValueError):
        RLS(np.zeros((1, 2)), np.zeros(1), forgetting=1.5)
    with pytest.raises(ValueError):
        EchoStateNetwork(3, 1, units=10, leak_rate=0.0)
    with pytest.raises(ValueError):
        make_core("esn", 3, 1, units=10, radius_method="qr")
    with pytest.raises(ValueError):
        make_core("lsm", 3, 1, units=10, v_reset=2.0)


def test_sparse_recurrence_matches_fan_in_gather_and_tracks_weight_changes() -> None:
    core = make_core("esn", 4, 2, units=120, seed=2)
    s = torch.randn(5, 120)
    gathered = (s[:, core.rec_idx] * core.rec_val).sum(-1)
    with torch.no_grad():
        torch.testing.assert_close(core._recurrent(s), gathered, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.from_numpy(core.recurrent_matrix()).float() @ s.T, gathered.T,
                                   rtol=1e-5, atol=1e-5)
        core.load_state_dict(make_core("esn", 4, 2, units=120, seed=7).state_dict())  # new W: cache rebuilt
        torch.testing.assert_close(core._recurrent(s), (s[:, core.rec_idx] * core.rec_val).sum(-1),
                                   rtol=1e-5, atol=1e-5)
    s.requires_grad_(True)
    core._recurrent(s).sum().backward()  # the autograd path (gather) still gives gradients
    assert s.grad is not None and s.grad.abs().sum() > 0
    import copy
    import pickle

    pickle.dumps(copy.deepcopy(core))  # the cached CSR copy is not part of the pickled state


@pytest.mark.parametrize("dale", [True, False])
def test_compiled_lsm_equals_torch_reference(dale: bool) -> None:
    core = make_core("lsm", 6, 2, units=150, substeps=4, dale=dale, seed=4)
    x = torch.randn(3, 25, 6)
    state = core.initial_state(3)
    with torch.no_grad():
        first, mid = core._reservoir(x[:, :10], state)  # two calls carry the state across the split
        second, end = core._reservoir(x[:, 10:], mid)
        ref, ref_end = core._reservoir_torch(x, state)
    assert ref.sum() > 0  # spikes happened
    torch.testing.assert_close(torch.cat([first, second], 1), ref)
    torch.testing.assert_close(end, ref_end)


def test_ridge_float32_rows_read_values_below_sqrt_flt_min_as_zero() -> None:
    """Tiny values (whose products would be subnormal floats) enter the float32 sums as exact zeros, larger
    ones unchanged, NaN stays NaN; rows split over several adds and chunk boundaries give the same sums."""
    x = torch.rand(300, 9)
    x[::3, 2], x[5, 4], x[7, 1], x[8, 0] = 1e-25, -3e-20, 2e-19, -5e-19
    zeroed = x.clone()
    zeroed[::3, 2], zeroed[5, 4] = 0.0, 0.0
    y = torch.randn(300, 2)
    one, other, split = (RidgeAccumulator(9, 2, chunk_rows=300) for _ in range(3))
    one.add(x, y)
    other.add(zeroed, y)
    for part in np.array_split(np.arange(300), 7):
        split.add(x[part], y[part])
    for a, b in ((one, other), (one, split)):
        assert np.array_equal(a.centred()[0], b.centred()[0]) and np.array_equal(a.sx, b.sx)
    assert one.sx[0] == pytest.approx(float(x[:, 0].double().sum()), rel=1e-6)  # -5e-19 kept
    chunked = RidgeAccumulator(9, 2, chunk_rows=64)
    for part in np.array_split(np.arange(300), 7):  # 7 adds of ~43 rows over 64-row chunks
        chunked.add(x[part], y[part])
    chunked.centred()
    np.testing.assert_allclose(np.triu(chunked.xx), np.triu(one.xx), rtol=1e-6)  # float32 sums of 64 vs 300
    bad = x.clone()
    bad[3, 3] = float("nan")
    nan_acc = RidgeAccumulator(9, 2)
    nan_acc.add(bad, y)
    assert np.isnan(nan_acc.centred()[2][3])


def test_ridge_chunked_triangular_gram_equals_float64_and_alpha_grid() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 40)) + rng.normal(size=40)
    y = x @ rng.normal(size=(40, 2)) + 0.1 * rng.normal(size=(3000, 2))
    exact = RidgeAccumulator(40, 2)
    exact.add(x, y)
    chunked = RidgeAccumulator(40, 2, chunk_rows=700, block=16)  # blocks that do not divide 40
    for part in np.array_split(np.arange(3000), 9):
        chunked.add(torch.as_tensor(x[part], dtype=torch.float32),
                    torch.as_tensor(y[part], dtype=torch.float32))
    g1, c1, m1, _ = exact.centred()
    g2, c2, m2, _ = chunked.centred()
    np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(g2, g2.T)
    np.testing.assert_allclose(c2, c1, rtol=1e-4, atol=1e-2)
    assert chunked.n == 3000
    grid = chunked.solve_many([1e-4, 1e-2, 1.0])
    for alpha, (w, b) in grid.items():
        w1, b1 = exact.solve(alpha)
        np.testing.assert_allclose(w, w1, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(b, b1, rtol=1e-3, atol=1e-3)
    assert np.linalg.norm(grid[1.0][0]) < np.linalg.norm(grid[1e-4][0])
    with pytest.raises(ValueError, match="must be"):
        chunked.add(np.zeros((3, 41)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no data"):
        RidgeAccumulator(3, 1).solve(1.0)


@pytest.mark.parametrize("collinear", [False, True])
def test_ridge_solve_equals_float64_solve(collinear: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32-factor-plus-refinement solve gives the float64 answer, on well-conditioned data and on
    nearly collinear features where the float32 factor is too coarse for the small alphas (those take the
    float64 factorisation)."""
    import liquid_control.nets.reservoir as reservoir

    rng = np.random.default_rng(3)
    x = rng.random(size=(2000, 60)) ** 3
    if collinear:
        x[:, 30:] = x[:, :30] + 1e-6 * rng.normal(size=(2000, 30))
    y = x @ rng.normal(size=(60, 2)) + 0.05 * rng.normal(size=(2000, 2))
    acc = RidgeAccumulator(60, 2)
    acc.add(x, y)
    gram, cross, mx, my = acc.centred()
    calls = []
    refined = reservoir._refined_solve
    monkeypatch.setattr(reservoir, "_refined_solve", lambda *a, **k: calls.append(r := refined(*a, **k)) or r)
    alphas = [0.0, 1e-9, 1e-6, 1e-3, 1.0] if collinear else [1e-6, 1e-3, 1.0]
    for alpha, (w, b) in acc.solve_many(alphas).items():
        a = gram + alpha * acc.n * np.eye(60)
        want = np.linalg.solve(a, cross)
        tol = 1e-14 * np.linalg.cond(a) + 1e-12  # what any backward-stable float64 solve guarantees
        assert np.abs(w.T - want).max() <= tol * np.abs(want).max()
        assert np.abs(b - (my - mx @ want)).max() <= tol * np.abs(my - mx @ want).max() + 1e-9
    refined_ok = [c is not None for c in calls]
    assert refined_ok[-1]  # alpha = 1: the float32 factor serves
    assert all(refined_ok) != collinear  # collinear features: some alphas need the float64 factorisation


def test_rls_matches_textbook_recursion_with_forgetting_and_cap() -> None:
    rng = np.random.default_rng(5)
    d, lam = 4, 0.9
    rls = RLS(np.zeros((2, d)), np.zeros(2), forgetting=lam, delta=0.5)
    theta, p_mat, cap = np.zeros((d + 1, 2)), 0.5 * np.eye(d + 1), 0.5 * (d + 1)
    for t in range(600):  # the cap binds once the input stops exciting most directions
        x = rng.normal(size=d) if t < 100 else np.array([1.0, 0, 0, 0]) * rng.normal()
        y = rng.normal(size=2)
        rls.update(x, y)
        phi = np.append(x, 1.0)
        k = p_mat @ phi / (lam + phi @ p_mat @ phi)
        theta = theta + np.outer(k, y - phi @ theta)
        p_mat = (p_mat - np.outer(k, phi @ p_mat)) / lam
        if np.trace(p_mat) > cap:
            p_mat *= cap / np.trace(p_mat)
    np.testing.assert_allclose(rls.theta, theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(rls.P, p_mat, rtol=1e-6, atol=1e-9)


def test_compiled_lsm_trace_decays_to_zero_not_to_subnormals() -> None:
    """A trace left to decay ends at exactly 0: subnormal floats would slow every later operation ~100x."""
    core = make_core("lsm", 1, 1, units=1, bias=0.0, bias_spread=0.0, w_exc=0.0, w_inh=0.0, seed=0)
    x = torch.zeros(1, 400, 1)  # 4000 sub-steps: exp(-4000 ds / tau_trace) is far below float32's range
    x[0, 0, 0] = 5.0 * torch.sign(core.w_in[0, 0])  # one spike at the start, silence after
    with torch.no_grad():
        out, _ = core._reservoir(x, core.initial_state(1))
        ref, _ = core._reservoir_torch(x, core.initial_state(1))
    trace = out[0, :, 0]
    assert trace[0] > 0.5 and trace[-1] == 0.0
    nonzero = trace[trace != 0]
    assert nonzero.min() >= torch.finfo(torch.float32).tiny  # never a subnormal on the way down
    torch.testing.assert_close(out, ref)


def test_compiled_lsm_parallel_batch_kernel_equals_serial_and_reference() -> None:
    from liquid_control.nets import reservoir_numba
    from liquid_control.nets.ltc_numba import use_parallel

    core = make_core("lsm", 6, 2, units=120, substeps=3, seed=5)
    x = torch.randn(4, 80, 6)  # 320 (step, sample) pairs: the multi-threaded kernel's size
    with torch.no_grad():
        out, end = core._reservoir(x, core.initial_state(4))
        ref, ref_end = core._reservoir_torch(x, core.initial_state(4))
        serial = [core._reservoir(x[b:b + 1], core.initial_state(1))[0] for b in range(4)]  # batch 1: serial
    if use_parallel(80, 4):  # (not with NUMBA_NUM_THREADS=1)
        assert reservoir_numba._run_par.signatures  # the multi-threaded kernel really ran
    assert torch.equal(out, torch.cat(serial))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(end, ref_end)


def test_compiled_esn_equals_torch_reference_within_float32_rounding() -> None:
    """The ESN kernel (sequences without gradients) vs the torch loop: same function, float32 rounding
    apart (the kernel's tanh is correctly rounded, torch's within 1 ulp); single steps stay on torch."""
    from liquid_control.nets import reservoir_numba

    core = make_core("esn", 6, 2, units=150, leak_rate=0.4, seed=3)
    x, s0 = torch.randn(5, 60, 6), 0.5 * torch.randn(5, 150)  # 300 (step, sample) pairs: parallel kernel
    with torch.no_grad():
        out, end = core._reservoir(x, s0)
        ref, ref_end = core._reservoir_torch(x, s0)
        first, mid = core._reservoir(x[:1, :30], s0[:1])  # batch 1: serial kernel, state carried over
        second, _ = core._reservoir(x[:1, 30:], mid)
        phi, phi_end = core.readout_inputs(x, s0)  # states and input written by the kernel in one array
    assert reservoir_numba._esn_ser.signatures
    assert torch.equal(phi, torch.cat([out, x], dim=-1)) and torch.equal(phi_end, end)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(end, ref_end, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([first, second], 1), ref[:1], rtol=1e-5, atol=1e-6)
    step = torch.randn(3, 1, 6)  # a closed-loop step: the torch path, bit for bit
    with torch.no_grad():
        assert torch.equal(core._reservoir(step, s0[:3])[0], core._reservoir_torch(step, s0[:3])[0])
    xg = x.clone().requires_grad_(True)  # gradients: the differentiable torch path
    core._reservoir(xg, s0)[0].sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_compiled_esn_lane_kernel_gives_the_per_sample_bits() -> None:
    """16 samples side by side (a last, partial group included) compute exactly what one sample per
    thread does, states and appended input columns alike."""
    from liquid_control.nets import reservoir_numba as kernels

    core = make_core("esn", 6, 2, units=70, leak_rate=0.3, seed=5)
    x, h0 = torch.randn(21, 30, 6), 0.5 * torch.randn(21, 70)
    with torch.no_grad():
        drive = (x @ core.w_in.T + core.bias).numpy()
    args = (drive, h0.numpy(), core.fanin_lists(), core.leak_rate)
    lanes = kernels.run_esn(*args, extra=x.numpy(), lanes=True)
    one = kernels.run_esn(*args, extra=x.numpy(), lanes=False)
    assert lanes.shape == (21, 30, 76) and np.array_equal(lanes, one)
    assert np.array_equal(lanes[..., 70:], x.numpy()) and np.abs(lanes[..., :70]).max() > 0.1
    with pytest.raises(ValueError, match="fan-in"):
        kernels.run_esn(drive, h0.numpy(), tuple(a[:, :0] for a in core.fanin_lists()), core.leak_rate)
    with pytest.raises(ValueError, match="extra columns"):
        kernels.run_esn(*args, extra=x.numpy()[:, :3])


def test_kernel_tanh_is_correctly_rounded_float32() -> None:
    from liquid_control.nets import reservoir_numba

    z = np.concatenate([np.linspace(-30, 30, 20001), np.geomspace(1e-30, 1.0, 2000),
                        -np.geomspace(1e-30, 1.0, 2000), [0.0]]).astype(np.float32)
    exact = np.tanh(z.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(reservoir_numba.tanh32(z), exact)


@pytest.mark.parametrize("lanes", [False, True])
def test_compiled_lsm_lane_kernel_gives_the_event_driven_bits(lanes: bool) -> None:
    """Samples side by side (a last, partial group of lanes included) give the same traces and end state as
    one event-driven sample at a time and as the torch reference, and a sequence split in two continues
    exactly from the returned state."""
    from liquid_control.nets import reservoir_numba as kernels

    core = make_core("lsm", 6, 2, units=130, substeps=3, seed=7)
    x = torch.randn(21, 24, 6) * 2.0
    state = core.initial_state(21)
    n, ds = core.units, core.dt / core.substeps
    current = (core.bias + x @ core.w_in.T).detach().numpy()
    parts = tuple(state[:, k * n:(k + 1) * n].numpy() for k in range(4))
    csc = kernels.csc_of(core.rec_idx.numpy(), core.rec_val.detach().numpy(), n)
    args = (csc, core.fanin_lists())
    kw = dict(decay=math.exp(-ds / core.tau_m), trace_decay=math.exp(-ds / core.tau_trace), ds=ds,
              t_ref=core.t_ref, v_reset=core.v_reset, threshold=core.threshold, substeps=core.substeps)
    out, end = kernels.run_lsm(current, parts, *args, lanes=lanes, **kw)
    one_by_one = [kernels.run_lsm(current[b:b + 1], tuple(p[b:b + 1] for p in parts), *args, lanes=False,
                                  **kw)[0] for b in range(21)]
    first, mid = kernels.run_lsm(current[:, :10], parts, *args, lanes=lanes, **kw)
    rest, end2 = kernels.run_lsm(current[:, 10:], mid, *args, lanes=lanes, **kw)
    extra = x.numpy()
    joined, _ = kernels.run_lsm(current, parts, *args, lanes=lanes, extra=extra, **kw)  # [traces, x] in one
    with torch.no_grad():
        ref, ref_end = core._reservoir_torch(x, state)
        phi, _ = core.readout_inputs(x, state)
    assert np.array_equal(joined[..., :n], out) and np.array_equal(joined[..., n:], extra)
    assert torch.equal(phi, torch.cat([ref, x], dim=-1))
    assert 0.05 < (out > 0).mean() and np.array_equal(out, np.concatenate(one_by_one))
    assert np.array_equal(out, np.concatenate([first, rest], axis=1))
    assert all(np.array_equal(a, b) for a, b in zip(end, end2, strict=True))
    assert torch.equal(torch.from_numpy(out), ref)
    assert torch.equal(torch.from_numpy(np.concatenate(end, axis=1)), ref_end)
