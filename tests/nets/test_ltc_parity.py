"""LTC parity with ncps 1.0.1 (float64): outputs and gradients of every parameter within 1e-6.

ncps's batched per-sample time spans are broken (ncps issues #81-83), so irregular time spans are
compared against ncps run one sample at a time. Every case runs against both our implementations.
"""

import pytest
import torch
from ncps import torch as ncps_torch
from ncps import wirings as ncps_wirings

from liquid_control.nets import LTC, from_ncps

IN, B, T = 5, 3, 4
IMPLEMENTATIONS = ["reference", "fused", "numba"]
TOL = 1e-6

WIRINGS = {
    "fc": lambda: 9,
    "autoncp": lambda: ncps_wirings.AutoNCP(12, 3, seed=7),
    "ncp": lambda: ncps_wirings.NCP(5, 4, 2, 3, 2, 3, 2, seed=3),
}


def _pair(wiring: str, unfolds: int, implicit: bool, implementation: str):
    torch.manual_seed(0)
    theirs = ncps_torch.LTC(
        IN, WIRINGS[wiring](), ode_unfolds=unfolds, implicit_param_constraints=implicit
    ).double()
    with torch.no_grad():  # move the weights off their init so every term matters
        for name, p in theirs.named_parameters():
            if p.requires_grad and name.split(".")[-1] in ("input_w", "input_b", "output_w", "output_b"):
                p.add_(0.3 * torch.randn_like(p))
    ours = from_ncps(theirs, implementation=implementation)
    assert isinstance(ours, LTC) and ours.rnn_cell.implementation == implementation
    return theirs, ours


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_close(a, b):
    assert a.shape == b.shape
    err = float((a.detach() - b.detach()).abs().max())
    assert err < TOL, err


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("implicit", [True, False], ids=["softplus", "clip"])
@pytest.mark.parametrize("unfolds", [1, 3, 6])
@pytest.mark.parametrize("wiring", sorted(WIRINGS))
def test_regular_timespans_match_ncps(wiring, unfolds, implicit, implementation):
    theirs, ours = _pair(wiring, unfolds, implicit, implementation)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, IN, dtype=torch.float64, generator=g)
    h0 = torch.randn(B, ours.state_size, dtype=torch.float64, generator=g) * 0.3
    wy = torch.randn(B, T, ours.output_size, dtype=torch.float64, generator=g)
    wh = torch.randn(B, ours.state_size, dtype=torch.float64, generator=g)
    xt, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    yt, ht = theirs(xt, h0)
    yo, ho = ours(xo, h0)
    _assert_close(yo, yt)
    _assert_close(ho, ht)
    gt = _grads(theirs, (yt * wy).sum() + (ht * wh).sum())
    go = _grads(ours, (yo * wy).sum() + (ho * wh).sum())
    assert set(gt) == set(go)  # every trainable ncps parameter exists here and gets a gradient
    for name in gt:
        _assert_close(go[name], gt[name])
    _assert_close(xo.grad, xt.grad)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("implicit", [True, False], ids=["softplus", "clip"])
@pytest.mark.parametrize("wiring", sorted(WIRINGS))
def test_irregular_timespans_match_ncps_per_sample(wiring, implicit, implementation):
    theirs, ours = _pair(wiring, 6, implicit, implementation)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(B, T, IN, dtype=torch.float64, generator=g)
    ts = 0.1 + 2.0 * torch.rand(B, T, dtype=torch.float64, generator=g)
    wy = torch.randn(B, T, ours.output_size, dtype=torch.float64, generator=g)
    yo, ho = ours(x, timespans=ts)  # batched, per-sample times
    go = _grads(ours, (yo * wy).sum() + ho.sum())
    gt_sum = None
    for b in range(B):  # ncps: one sample at a time
        h0 = torch.zeros(1, ours.state_size, dtype=torch.float64)
        yt, ht = theirs(x[b : b + 1], h0, timespans=ts[b : b + 1])
        _assert_close(yo[b : b + 1], yt)
        _assert_close(ho[b : b + 1], ht)
        gt = _grads(theirs, (yt * wy[b : b + 1]).sum() + ht.sum())
        gt_sum = gt if gt_sum is None else {k: gt_sum[k] + gt[k] for k in gt}
    for name in gt_sum:
        _assert_close(go[name], gt_sum[name])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", ["scalar", "B", "B1"])
def test_cell_elapsed_time_shapes(shape, implementation):
    """A float, a (B,) and a (B,1) elapsed time all work (ncps issues #81-83)."""
    theirs, ours = _pair("autoncp", 6, True, implementation)
    cell, their_cell = ours.rnn_cell, theirs.rnn_cell
    x = torch.randn(B, IN, dtype=torch.float64)
    h = torch.zeros(B, cell.state_size, dtype=torch.float64)
    ts = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    arg = {"scalar": 0.7, "B": ts, "B1": ts[:, None]}[shape]
    y, h1 = cell(x, h, arg)
    for b in range(B):
        t_b = 0.7 if shape == "scalar" else ts[b]
        yt, ht = their_cell(x[b : b + 1], h[b : b + 1], t_b)
        _assert_close(y[b : b + 1], yt)
        _assert_close(h1[b : b + 1], ht)


def test_clip_constraints_like_ncps():
    theirs, ours = _pair("fc", 6, False, "fused")
    with torch.no_grad():
        for model in (theirs, ours):
            cell = model.rnn_cell
            for name in ("w", "sensory_w", "cm", "gleak", "mu"):
                getattr(cell, name).copy_(
                    torch.linspace(-1, 1, getattr(cell, name).numel()).reshape_as(getattr(cell, name))
                )
    theirs.rnn_cell.apply_weight_constraints()
    ours.apply_constraints()
    for name, p in theirs.rnn_cell.named_parameters():
        _assert_close(getattr(ours.rnn_cell, name), p)
    assert float(ours.rnn_cell.w.min()) == 0.0 and float(ours.rnn_cell.mu.min()) < 0.0  # mu is not clipped


def test_from_ncps_cell_matches():
    wiring = ncps_wirings.AutoNCP(10, 2)
    theirs = ncps_torch.LTCCell(wiring, in_features=4).double()
    ours = from_ncps(theirs)
    x = torch.randn(2, 4, dtype=torch.float64)
    h = torch.randn(2, 10, dtype=torch.float64)
    for a, b in zip(ours(x, h), theirs(x, h), strict=True):
        _assert_close(a, b)
    assert ours.wiring.neuron_groups()["motor"] == [0, 1]
