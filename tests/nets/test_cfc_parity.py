"""CfC parity with ncps 1.0.1 (float64): all modes, plain and wired, outputs and gradients."""

import pytest
import torch
from ncps import torch as ncps_torch
from ncps import wirings as ncps_wirings

from liquid_control.nets import CfC, count_params, from_ncps

IN, B, T = 5, 3, 4


def _close(a, b, tol=1e-6):
    assert a.shape == b.shape
    assert float((a.detach() - b.detach()).abs().max()) < tol


def _check(theirs, ours, timespans):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, IN, dtype=torch.float64, generator=g)
    h0 = torch.randn(B, theirs.state_size, dtype=torch.float64, generator=g)
    if timespans:
        ts = 0.1 + torch.rand(B, T, dtype=torch.float64, generator=g)
        yo, ho = ours(x, h0, ts)
        lo = yo.square().sum() + ho.sum()
        ours.zero_grad()
        lo.backward()
        theirs.zero_grad()
        for b in range(B):  # ncps's batched time spans are broken: one sample at a time
            yt, ht = theirs(x[b : b + 1], h0[b : b + 1], ts[b : b + 1])
            _close(yo[b : b + 1], yt)
            _close(ho[b : b + 1], ht)
            (yt.square().sum() + ht.sum()).backward()
    else:
        yo, ho = ours(x, h0)
        yt, ht = theirs(x, h0)
        _close(yo, yt)
        _close(ho, ht)
        for m, y, h in ((ours, yo, ho), (theirs, yt, ht)):
            m.zero_grad()
            (y.square().sum() + h.sum()).backward()
    their_grads = {n: p.grad for n, p in theirs.named_parameters() if p.requires_grad}
    our_grads = {n: p.grad for n, p in ours.named_parameters() if p.requires_grad}
    assert set(their_grads) == set(our_grads)
    for name, grad in their_grads.items():
        _close(our_grads[name], grad)


@pytest.mark.parametrize("timespans", [False, True], ids=["regular", "irregular"])
@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_cfc_matches_ncps(mode, timespans):
    torch.manual_seed(0)
    theirs = ncps_torch.CfC(IN, 6, mode=mode, backbone_units=8, backbone_layers=2, proj_size=3).double()
    ours = from_ncps(theirs)
    assert isinstance(ours, CfC)
    _check(theirs, ours, timespans)


@pytest.mark.parametrize("timespans", [False, True], ids=["regular", "irregular"])
@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_wired_cfc_matches_ncps(mode, timespans):
    torch.manual_seed(0)
    theirs = ncps_torch.CfC(IN, ncps_wirings.AutoNCP(12, 3, seed=4), mode=mode).double()
    ours = from_ncps(theirs)
    assert ours.wired and ours.output_size == 3
    _check(theirs, ours, timespans)


def test_wired_cfc_counts_masked_weights_out():
    from liquid_control.nets import AutoNCP

    ours = CfC(IN, AutoNCP(12, 3), mode="default")
    counts = count_params(ours)
    assert counts["effective"] < counts["trainable"]
    masks = [m.sparsity_mask for m in ours.rnn_cell.layers]
    assert counts["trainable"] - counts["effective"] == sum(2 * int((m == 0).sum()) for m in masks)
    assert counts["buffers"] == sum(m.numel() for m in masks)


def test_bad_cfc_arguments():
    with pytest.raises(ValueError):
        CfC(IN, 6, mode="fast")
    with pytest.raises(ValueError):
        CfC(IN, -2)
    from liquid_control.nets import AutoNCP

    with pytest.raises(ValueError):
        CfC(IN, AutoNCP(12, 3), backbone_units=4)
    with pytest.raises(ValueError, match="features"):
        CfC(IN, 6)(torch.randn(2, 3, IN + 1))
