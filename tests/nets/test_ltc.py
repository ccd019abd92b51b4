"""LTC cell and sequence model: gradcheck, fused == reference, resets, save/load, argument errors."""

import io

import pytest
import torch

from liquid_control.nets import LTC, AutoNCP, FullyConnected, LTCCell, RandomSparse, count_params
from liquid_control.nets.ltc import ltc_numba

IMPLEMENTATIONS = ["reference", "fused", "numba"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("wiring", ["fc", "autoncp"])
@pytest.mark.parametrize("implicit", [True, False])
def test_gradcheck_cell(wiring, implementation, implicit):
    torch.manual_seed(0)
    w = FullyConnected(4, 2) if wiring == "fc" else AutoNCP(6, 2)
    cell = LTCCell(
        w, 3, ode_unfolds=3, implicit_param_constraints=implicit, implementation=implementation
    ).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, cell.state_size, dtype=torch.float64, requires_grad=True)
    ts = (0.5 + torch.rand(2, dtype=torch.float64)).requires_grad_()
    params = [p for p in cell.parameters() if p.requires_grad]
    names = [n for n, p in cell.named_parameters() if p.requires_grad]

    def fn(x, h, ts, *ps):
        return torch.func.functional_call(cell, dict(zip(names, ps, strict=True)), (x, h, ts))

    assert torch.autograd.gradcheck(fn, (x, h, ts, *[p.detach().clone().requires_grad_() for p in params]))


@pytest.mark.parametrize("wiring", ["fc", "autoncp", "random"])
def test_fused_equals_reference_float32(wiring):
    torch.manual_seed(1)
    w = {"fc": lambda: 16, "autoncp": lambda: AutoNCP(16, 3), "random": lambda: RandomSparse(16, 3, 0.6)}[
        wiring
    ]()
    model = LTC(8, w, implementation="reference")
    x = torch.randn(5, 7, 8)
    ts = 0.2 + torch.rand(5, 7)
    outs = []
    for impl in IMPLEMENTATIONS:
        model.rnn_cell.implementation = impl
        model.zero_grad()
        y, h = model(x, timespans=ts)
        (y.sin().sum() + h.square().sum()).backward()
        outs.append([y, h] + [p.grad.clone() for p in model.parameters()])
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())


def test_auto_implementation_choice():
    assert LTCCell(4, 3).resolved_implementation() == ("numba" if ltc_numba is not None else "fused")
    assert LTCCell(4, 3, implementation="reference").resolved_implementation() == "reference"
    assert LTCCell(4, 3, implementation="fused").resolved_implementation() == "fused"


@pytest.mark.parametrize("wiring", ["fc", "autoncp"])
def test_batch1_inference_paths_match_reference(wiring):
    """The no-grad batch-1 step (compiled) and compile_step() give the reference outputs."""
    torch.manual_seed(0)
    w = FullyConnected(7, 2) if wiring == "fc" else AutoNCP(10, 2)
    cell = LTCCell(w, 4, implicit_param_constraints=True, input_mapping="affine", implementation="reference")
    with torch.no_grad():
        cell.input_b.add_(0.2)
        cell.output_b.sub_(0.1)
    x, h = torch.randn(1, 4), torch.randn(1, cell.state_size)
    with torch.no_grad():
        y_ref, v_ref = cell(x, h, 0.7)
        cell.implementation = "auto"
        y, v = cell(x, h, 0.7)
        assert torch.allclose(y, y_ref, atol=1e-5) and torch.allclose(v, v_ref, atol=1e-5)
        if ltc_numba is not None:
            step = cell.compile_step()
            y2, v2 = step(x[0].numpy(), h[0].numpy(), 0.7)
            assert torch.allclose(torch.from_numpy(y2), y_ref[0], atol=1e-5)
            assert torch.allclose(torch.from_numpy(v2), v_ref[0], atol=1e-5)
            with pytest.raises(ValueError, match="NaN"):
                cell(torch.full((1, 4), float("nan")), h)
        # the frozen weights follow parameter updates
        cell.gleak.add_(0.5)
        cell.implementation = "reference"
        y_ref2, _ = cell(x, h, 0.7)
        cell.implementation = "auto"
        y3, _ = cell(x, h, 0.7)
        assert torch.allclose(y3, y_ref2, atol=1e-5) and not torch.allclose(y_ref2, y_ref)


@pytest.mark.parametrize("implementation", ["fused", "numba"])
def test_backward_memory_does_not_grow_with_unfolds(implementation):
    """Tensors autograd keeps for backward: the same for 1 and 6 unfolds on the fast paths."""
    saved = {}
    for unfolds in (1, 6):
        torch.manual_seed(0)
        model = LTC(4, AutoNCP(12, 2), ode_unfolds=unfolds, implementation=implementation)
        seen = {}

        def pack(t, seen=seen):
            seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = (
                t.untyped_storage().nbytes()
            )
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randn(8, 10, 4))
        saved[unfolds] = sum(seen.values())
    assert saved[6] == saved[1]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_reset_mask_zeroes_state(implementation):
    torch.manual_seed(0)
    model = LTC(3, AutoNCP(8, 2), implementation=implementation)
    x = torch.randn(2, 6, 3)
    h0 = torch.randn(2, 8)
    resets = torch.zeros(2, 6, dtype=torch.bool)
    resets[0, 3] = True
    y, h = model(x, h0, resets=resets)
    # sample 0 after the reset == a fresh run from zeros on the rest of its sequence
    y_fresh, h_fresh = model(x[:1, 3:], torch.zeros(1, 8))
    assert torch.allclose(y[0, 3:], y_fresh[0], atol=1e-6) and torch.allclose(h[0], h_fresh[0], atol=1e-6)
    # sample 1 (no reset) is untouched by sample 0's reset
    y_plain, _ = model(x, h0)
    assert torch.equal(y[1], y_plain[1])
    assert not torch.allclose(y[0, 3:], y_plain[0, 3:])


def test_layouts_and_return_modes():
    torch.manual_seed(0)
    model = LTC(3, 6)
    x = torch.randn(4, 5, 3)
    y, h = model(x)
    assert y.shape == (4, 5, 6) and h.shape == (4, 6)
    tm = LTC(3, 6, batch_first=False, return_sequences=False)
    tm.load_state_dict(model.state_dict())
    y_last, h2 = tm(x.transpose(0, 1))
    assert torch.allclose(y_last, y[:, -1]) and torch.allclose(h2, h)
    y_single, h_single = model(x[0])  # unbatched (T, F)
    assert torch.allclose(y_single, y[0]) and torch.allclose(h_single, h[0])


def test_save_load_round_trip():
    torch.manual_seed(0)
    model = LTC(4, AutoNCP(10, 2))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert "rnn_cell.sparsity_mask" in state  # masks travel with the weights
    other = LTC(4, AutoNCP(10, 2, seed=999))  # a different wiring is overwritten by the loaded masks
    other.load_state_dict(state)
    x = torch.randn(3, 5, 4)
    for a, b in zip(model(x), other(x), strict=True):
        assert torch.equal(a, b)


def test_masks_are_buffers_and_counts():
    cell = LTCCell(AutoNCP(12, 3), 5)
    names = {n for n, _ in cell.named_parameters()}
    assert "sparsity_mask" not in names and "sensory_sparsity_mask" not in names
    n, s, m = 12, 5, 3
    c = count_params(cell)
    assert c["trainable"] == 4 * n * n + 4 * s * n + 3 * n + 2 * s + 2 * m
    syn, ssyn = cell.wiring.synapse_count, cell.wiring.sensory_synapse_count
    assert c["effective"] == 3 * n + 4 * syn + 4 * ssyn + 2 * s + 2 * m
    assert c["buffers"] == n * n + s * n


@pytest.mark.parametrize(
    "call",
    [
        lambda: LTC(3, -4),
        lambda: LTC(3, AutoNCP(10, 8)),
        lambda: LTC(0, 4),
        lambda: LTCCell(4, 3, ode_unfolds=0),
        lambda: LTCCell(4, 3, input_mapping="cubic"),
        lambda: LTCCell(4, 3, implementation="gpu"),
        lambda: LTC(3, 4)(torch.randn(2, 5, 4)),  # wrong input width
        lambda: LTC(3, 4)(torch.full((2, 5, 3), float("nan"))),
        lambda: LTCCell(4, 3)(torch.randn(2, 3), torch.zeros(2, 5)),  # wrong state width
        lambda: LTCCell(4, 3)(torch.randn(2, 3), torch.zeros(2, 4), torch.ones(3)),  # wrong time shape
        lambda: LTC(3, 4)(torch.randn(2, 5, 3), timespans=torch.ones(5, 2)),
        lambda: LTC(3, 4)(torch.randn(2, 5, 3), resets=torch.ones(2, 4)),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "x_shape, h_shape, match",
    [
        ((1, 5), (1, 4), "features, expected"),  # wrong input width
        ((1, 3), (1, 5), "state must be"),  # wrong state width
        ((1, 3), (2, 4), "state must be"),  # state batch differs
        ((1, 3), (4,), "expects \\(B,S\\)"),  # 1-D state
        ((1, 3, 1), (1, 4), "expects \\(B,S\\)"),  # 3-D input
    ],
)
def test_batch1_inference_checks_shapes(x_shape, h_shape, match):
    """The compiled batch-1 path (no grad) runs before the cell's own checks and must raise their errors."""
    cell = LTCCell(4, 3)
    with torch.no_grad(), pytest.raises(ValueError, match=match):
        cell(torch.randn(*x_shape), torch.zeros(*h_shape))


def test_falls_back_to_torch_without_numba(monkeypatch):
    import liquid_control.nets.ltc as ltc_module

    monkeypatch.setattr(ltc_module, "ltc_numba", None)
    assert LTCCell(4, 3).resolved_implementation() == "fused"
    cell = LTCCell(4, 3, implementation="numba")
    with pytest.warns(UserWarning, match="numba"):
        assert cell.resolved_implementation() == "fused"
    y, h = LTC(3, 4)(torch.randn(2, 5, 3))
    assert y.shape == (2, 5, 4)
    with pytest.raises(ValueError, match="numba"):
        LTCCell(4, 3).compile_step()


@pytest.mark.skipif(ltc_numba is None, reason="numba not installed")
def test_numba_serial_and_parallel_kernels_agree(monkeypatch):
    """Small calls run the serial kernels (thread-pool wake-up costs more than the work); both agree."""
    assert not ltc_numba.use_parallel(1, 16) and not ltc_numba.use_parallel(512, 1)
    results = []
    for threshold in (0, 10**9):  # always parallel, never parallel
        monkeypatch.setattr(ltc_numba, "PARALLEL_MIN_WORK", threshold)
        torch.manual_seed(3)
        model = LTC(5, AutoNCP(12, 3), implementation="numba")
        x = torch.randn(6, 9, 5)
        y, h = model(x)
        (y.square().sum() + h.sum()).backward()
        results.append([y, h] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
