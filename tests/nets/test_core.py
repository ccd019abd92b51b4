"""The recurrent-core interface (docs/internals.md) for every kind, resets, budgets, errors."""

import pytest
import torch

from liquid_control.nets import KINDS, count_params, make_core, size_for_budget

IN, OUT = 10, 4


@pytest.mark.parametrize("kind", KINDS)
def test_core_contract(kind):
    torch.manual_seed(0)
    core = make_core(kind, IN, OUT, units=16)
    assert core.input_size == IN
    if kind in ("ltc",):
        assert core.output_size == OUT  # motor neurons
    s0 = core.initial_state(3)
    assert s0.shape == (3, core.state_size) and not s0.any()
    x = torch.randn(3, 5, IN)
    y, s = core(x)
    assert y.shape == (3, 5, core.output_size) and s.shape == (3, core.state_size)
    # chunking: two calls carrying the state == one call
    y1, s1 = core(x[:, :2])
    y2, s2 = core(x[:, 2:], s1)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-6) and torch.allclose(s2, s, atol=1e-6)
    y.sum().backward()
    assert all(p.grad is not None for p in core.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", KINDS)
def test_resets_equal_fresh_start(kind):
    torch.manual_seed(0)
    core = make_core(kind, IN, OUT, units=12)
    x = torch.randn(2, 6, IN)
    state = torch.randn(2, core.state_size)
    resets = torch.zeros(2, 6)
    resets[1, 2] = 1.0
    resets[0, 4] = 1.0
    y, s = core(x, state, resets=resets)
    y_fresh, s_fresh = core(x[1:, 2:])  # from a zero state
    assert torch.allclose(y[1, 2:], y_fresh[0], atol=1e-6)
    assert torch.allclose(s[1], s_fresh[0], atol=1e-6)
    y0, _ = core(x[:1, :4], state[:1])
    assert torch.allclose(y[0, :4], y0[0], atol=1e-6)  # before its reset, sample 0 runs on as usual


def test_mlp_stacks_frames():
    core = make_core("mlp", 2, 1, units=8, frames=3)
    x = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)
    _, s = core(x)
    assert torch.equal(s, x[0, -3:].reshape(1, 6))  # the last 3 inputs, oldest first
    _, s_short = core(x[:, :1])
    assert torch.equal(s_short, torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]))


def test_timespans_reach_liquid_cores():
    torch.manual_seed(0)
    for kind in ("ltc", "cfc", "euler"):
        core = make_core(kind, IN, OUT, units=12)
        x = torch.randn(2, 3, IN)
        y1, _ = core(x)
        y2, _ = core(x, timespans=torch.full((2, 3), 0.3))
        assert not torch.allclose(y1, y2), kind


@pytest.mark.parametrize("kind", KINDS)
def test_budget_within_ten_percent(kind):
    budget = 20_000
    n = size_for_budget(kind, budget, 40, OUT)
    core = make_core(kind, 40, OUT, budget=budget)
    counts = count_params(core)
    assert abs(counts["trainable"] - budget) <= 0.1 * budget, counts
    assert core.state_size >= n
    assert counts["effective"] <= counts["trainable"]


def test_ltc_autoncp_budget_config():
    core = make_core("ltc", 40, OUT, budget=20_000, wiring="autoncp")
    counts = count_params(core)
    assert counts["effective"] < counts["trainable"]  # the wiring masks synapses out
    assert core.wiring.neuron_groups()["motor"] == list(range(OUT))
    fc = make_core("ltc", 40, OUT, budget=20_000, wiring="fc")
    assert abs(count_params(fc)["trainable"] - 20_000) <= 2_000


@pytest.mark.parametrize(
    "call",
    [
        lambda: make_core("transformer", IN, OUT),
        lambda: make_core("ltc", IN, OUT, units=-3),
        lambda: make_core("ltc", IN, OUT, units=5),  # AutoNCP needs output_size < units - 2
        lambda: make_core("ltc", IN, OUT, wiring="star"),
        lambda: make_core("lstm", IN, OUT, colour="red"),
        lambda: make_core("gru", 0, OUT),
        lambda: size_for_budget("lstm", 10, IN, OUT),
        lambda: make_core("gru", IN, OUT, units=4)(torch.randn(2, 3, IN + 1)),
        lambda: make_core("gru", IN, OUT, units=4)(torch.randn(2, IN)),
        lambda: make_core("gru", IN, OUT, units=4)(torch.randn(2, 3, IN), torch.zeros(2, 5)),
        lambda: make_core("mlp", IN, OUT, units=4)(torch.full((2, 3, IN), float("nan"))),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(ValueError):
        call()
