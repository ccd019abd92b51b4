"""PolicyNet: budgets match across cores, normalisation, resets, config round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liquid_control.nets.policy import HEADS, LOG_RAYS_EPS, PolicyConfig, PolicyNet, bin_targets, param_counts

CORES = ["ltc", "cfc", "lstm", "gru", "mlp", "euler"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("obs_dim,act_dim", [(40, 2), (60, 4)])
def test_every_core_matches_the_ltc_budget_within_10_percent(obs_dim, act_dim):
    ltc = param_counts(PolicyNet(PolicyConfig(obs_dim=obs_dim, act_dim=act_dim)))
    assert 18000 <= ltc["trainable"] <= 22000  # the default LTC policy is ~20k parameters
    assert ltc["effective"] < ltc["trainable"]  # sparse NCP wiring: masked synapses do not count
    for kind in CORES[1:]:
        n = param_counts(PolicyNet(PolicyConfig(obs_dim=obs_dim, act_dim=act_dim, core=kind)))["trainable"]
        assert abs(n - ltc["trainable"]) <= 0.1 * ltc["trainable"], (kind, n, ltc)


def test_default_ltc_has_motor_neurons_equal_to_action_dims():
    p = PolicyNet(PolicyConfig(obs_dim=10, act_dim=3))
    assert p.core.output_size == 3
    assert p.core.config()["wiring"] == "autoncp"


def test_actions_are_denormalised_into_the_action_range():
    p = PolicyNet(PolicyConfig(obs_dim=5, act_dim=2, core="gru", budget=None))
    p.set_normalization(np.zeros(5), np.ones(5), np.array([0.0, -4.0]), np.array([2.0, 4.0]))
    a, _ = p(torch.randn(3, 7, 5) * 100)
    assert a.shape == (3, 7, 2)
    assert (a[..., 0] >= 0).all() and (a[..., 0] <= 2).all() and (a[..., 1].abs() <= 4).all()
    raw, _ = p(torch.randn(3, 7, 5), normalized=True)
    assert raw.abs().max() <= 1.0
    assert torch.allclose(p.normalize_actions(torch.tensor([[2.0, -4.0]])), torch.tensor([[1.0, -1.0]]))


def test_observation_normalisation_is_applied():
    p = PolicyNet(PolicyConfig(obs_dim=4, act_dim=1, core="gru", budget=None))
    x = torch.randn(2, 5, 4)
    a0, _ = p(x)
    p.set_normalization(np.full(4, 3.0), np.full(4, 2.0), -np.ones(1), np.ones(1))
    a1, _ = p(x * 2.0 + 3.0)
    assert torch.allclose(a0, a1, atol=1e-5)


@pytest.mark.parametrize("kind", ["ltc", "lstm"])
def test_resets_restart_the_state(kind):
    torch.manual_seed(0)
    p = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core=kind, budget=None))
    x = torch.randn(1, 10, 6)
    resets = torch.zeros(1, 10)
    resets[0, 4] = 1
    a, _ = p(x, resets=resets)
    fresh, _ = p(x[:, 4:])
    assert torch.allclose(a[:, 4:], fresh, atol=1e-5)
    carried, _ = p(x)
    assert not torch.allclose(carried[:, 4:], fresh, atol=1e-4)  # without the reset, memory matters


def test_stepwise_equals_sequence():
    p = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core="ltc", budget=None))
    x = torch.randn(2, 8, 6)
    full, _ = p(x)
    state, steps = None, []
    for t in range(8):
        a, state = p(x[:, t:t + 1], state)
        steps.append(a)
    assert torch.allclose(full, torch.cat(steps, 1), atol=1e-5)


def test_config_json_round_trip_rebuilds_the_same_architecture():
    cfg = PolicyConfig(obs_dim=40, act_dim=2, core="cfc", encoder="conv", ray_slice=[0, 32])
    again = PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    a, b = PolicyNet(cfg), PolicyNet(again)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 40)
    assert torch.allclose(a(x)[0], b(x)[0])
    n = param_counts(a)["trainable"]
    assert abs(n - 20000) <= 2000


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="budget"):
        PolicyNet(PolicyConfig(obs_dim=500, act_dim=2, budget=2000))
    with pytest.raises(ValueError, match="ray_slice"):
        PolicyConfig(obs_dim=10, act_dim=2, encoder="conv")
    with pytest.raises(ValueError, match="unknown core"):
        PolicyNet(PolicyConfig(obs_dim=10, act_dim=2, core="transformer"))
    with pytest.raises(ValueError, match="unknown PolicyConfig"):
        PolicyConfig.from_dict({"obs_dim": 3, "act_dim": 1, "colour": "red"})
    with pytest.raises(ValueError, match=r"\(B, T, 10\)"):
        PolicyNet(PolicyConfig(obs_dim=10, act_dim=2, core="gru", budget=None))(torch.zeros(2, 10))


def test_timespan_is_fed_to_the_core_and_changes_its_memory():
    torch.manual_seed(0)
    fast = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core="ltc", budget=None))
    slow = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core="ltc", budget=None, timespan=0.05))
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(1, 40, 6)

    def memory(p):  # how much the first 20 steps still change the output 20 steps later
        a, _ = p(x)
        b, _ = p(torch.cat([torch.zeros(1, 20, 6), x[:, 20:]], 1))
        return (a[:, -1] - b[:, -1]).abs().max().item()

    assert memory(slow) > 10 * memory(fast)
    with pytest.raises(ValueError, match="timespan"):
        PolicyConfig(obs_dim=6, act_dim=2, timespan=0.0)


def test_dropped_observation_features_do_not_reach_the_policy():
    torch.manual_seed(0)
    cfg = PolicyConfig(obs_dim=6, act_dim=2, core="gru", budget=None, drop_obs=[4, 5])
    p = PolicyNet(cfg)
    x = torch.randn(2, 9, 6)
    y = x.clone()
    y[..., 4:] = 100 * torch.randn(2, 9, 2)  # only the dropped features differ
    assert torch.equal(p(x)[0], p(y)[0])
    y[..., 0] += 1.0
    assert not torch.allclose(p(x)[0], p(y)[0])
    # the mask comes from the config: state dicts (and checkpoints) keep their keys
    plain = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core="gru", budget=None))
    assert set(p.state_dict()) == set(plain.state_dict())
    assert param_counts(p) == param_counts(plain)
    again = PolicyNet(PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))))
    again.load_state_dict(p.state_dict())
    assert torch.equal(again(x)[0], p(x)[0])
    for bad in ([6], [-1], [0, 1, 2, 3, 4, 5]):
        with pytest.raises(ValueError, match="drop_obs"):
            PolicyConfig(obs_dim=6, act_dim=2, drop_obs=bad)


def test_log_rays_feature_is_steep_near_obstacles_and_part_of_the_checkpoint():
    torch.manual_seed(0)
    cfg = PolicyConfig(obs_dim=6, act_dim=2, core="gru", budget=None, log_rays=[0, 4])
    p = PolicyNet(cfg)
    x = torch.rand(2, 3, 6)
    z = p.transform_obs(x)
    assert torch.allclose(z[..., :4], torch.log(x[..., :4] + LOG_RAYS_EPS))
    assert torch.equal(z[..., 4:], x[..., 4:])
    f = p.transform_obs(torch.tensor([[0.02, 0.04, 0.5, 0.52, 0.0, 0.0]]))[0]
    assert abs(f[1] - f[0]) > 10 * abs(f[3] - f[2])  # the same 0.02 step: far steeper near an obstacle
    plain = PolicyNet(PolicyConfig(obs_dim=6, act_dim=2, core="gru", budget=None))
    plain.load_state_dict(p.state_dict())  # same parameters and buffers: only the input differs
    assert not torch.allclose(p(x)[0], plain(x)[0])
    again = PolicyNet(PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))))
    again.load_state_dict(p.state_dict())
    assert torch.equal(again(x)[0], p(x)[0])
    for bad in ([0], [3, 3], [0, 7]):
        with pytest.raises(ValueError, match="log_rays"):
            PolicyConfig(obs_dim=6, act_dim=2, log_rays=bad)


def test_bin_targets_are_distributions_centred_on_the_value():
    centers = torch.linspace(-1.0, 1.0, 21)
    values = torch.tensor([-1.0, -0.33, 0.0, 0.52, 1.0])
    t = bin_targets(values, centers)
    assert t.shape == (5, 21) and torch.allclose(t.sum(-1), torch.ones(5))
    assert (t >= 0).all()
    # the most credited bin is the one nearest the value; interior values keep their mean
    assert torch.equal(t.argmax(-1), (values - centers[:, None]).abs().argmin(0))
    assert torch.allclose((t * centers).sum(-1)[1:4], values[1:4], atol=1e-3)
    assert (t * centers).sum(-1)[-1] > 0.95  # the top bin sits at +1 itself


def test_bins_head_decodes_the_heaviest_window_not_the_average():
    p = PolicyNet(PolicyConfig(obs_dim=4, act_dim=1, core="gru", budget=None, head="bins", bins=11))
    probs = torch.zeros(11)
    probs[10], probs[0:5] = 0.4, 0.12  # a spike at +1 and more mass spread over [-1, -0.2]
    assert p.decode(probs.log()[None]).item() == pytest.approx(-0.6, abs=1e-5)
    probs = torch.zeros(11)
    probs[10], probs[0:5] = 0.7, 0.06
    assert p.decode(probs.log()[None]).item() == pytest.approx(1.0, abs=1e-5)
    a, _ = p(torch.randn(2, 3, 4))
    assert a.shape == (2, 3, 1) and a.abs().max() <= 1.0


@pytest.mark.parametrize("head", HEADS)
def test_heads_fit_split_labels_by_averaging_or_by_committing(head):
    """The same observation labelled -1 or +1 half the time each (avoid an obstacle left or right):
    the tanh head learns the average, 0 (straight on); the bins head one of the two."""
    torch.manual_seed(0)
    p = PolicyNet(PolicyConfig(obs_dim=3, act_dim=1, core="mlp", budget=None, head=head,
                               core_kwargs={"units": 16, "frames": 1}))
    obs = torch.ones(64, 1, 3)
    target = torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0).reshape(64, 1, 1)
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    for _ in range(300):
        raw, _ = p.head_outputs(obs)
        loss = p.action_loss(raw, target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    a = p(obs[:1], normalized=True)[0].item()
    assert abs(a) < 0.1 if head == "tanh" else abs(a) > 0.85


def test_bins_head_config_and_budget():
    cfg = PolicyConfig(obs_dim=69, act_dim=2, head="bins", motors=8)
    assert PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    p = PolicyNet(cfg)
    assert p.core.output_size == 8 and p.head.out_features == 2 * 21
    assert abs(param_counts(p)["trainable"] - 20000) <= 2000
    assert "bin_centers" not in p.state_dict()  # derived from the config, not stored
    with pytest.raises(ValueError, match="head"):
        PolicyConfig(obs_dim=3, act_dim=1, head="softmax")
    with pytest.raises(ValueError, match="bins"):
        PolicyConfig(obs_dim=3, act_dim=1, head="bins", bins=2)
    with pytest.raises(ValueError, match="motors"):
        PolicyConfig(obs_dim=3, act_dim=1, motors=0)
