"""Exported single steps (TorchScript, ONNX via onnxruntime) match torch over a 100-step rollout."""

import numpy as np
import pytest
import torch

from liquid_control.nets import make_core
from liquid_control.nets.export import SingleStep, export_onnx, export_torchscript, onnx_session
from liquid_control.nets.ltc import LTCCell
from liquid_control.nets.wiring import AutoNCP


def _core(kind: str):
    torch.manual_seed(0)
    kw = {"units": 12} if kind != "ltc" else {"units": 12, "wiring": "autoncp", "ode_unfolds": 6}
    return make_core(kind, 6, 3, **kw).eval()


def _rollout_torch(core, xs):
    h = core.initial_state(1)
    ys = []
    with torch.no_grad():
        for x in xs:
            y, h = core(x.view(1, 1, -1), h)
            ys.append(y[0, 0])
    return torch.stack(ys)


@pytest.mark.parametrize("kind", ["ltc", "cfc", "lstm"])
def test_torchscript_rollout_matches(kind, tmp_path):
    core = _core(kind)
    xs = torch.randn(100, 6)
    expected = _rollout_torch(core, xs)
    export_torchscript(core, tmp_path / "step.pt")
    step = torch.jit.load(str(tmp_path / "step.pt"))
    h = torch.zeros(1, core.state_size)
    got = []
    for x in xs:
        y, h = step(x.view(1, -1), h)
        got.append(y[0])
    assert torch.allclose(torch.stack(got), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["ltc", "cfc", "lstm"])
def test_onnx_rollout_matches(kind, tmp_path):
    core = _core(kind)
    xs = torch.randn(100, 6)
    expected = _rollout_torch(core, xs).numpy()
    sess = onnx_session(export_onnx(core, tmp_path / "step.onnx"))
    h = np.zeros((1, core.state_size), dtype=np.float32)
    got = []
    for x in xs.numpy():
        y, h = sess.run(None, {"x": x.reshape(1, -1), "state": h})
        got.append(y[0])
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)


def test_export_keeps_the_implementation(tmp_path):
    core = _core("ltc")
    impl = core.ltc.rnn_cell.implementation
    export_torchscript(core, tmp_path / "s.pt")
    assert core.ltc.rnn_cell.implementation == impl


def test_single_step_wrapper_shapes():
    core = _core("gru")
    y, h = SingleStep(core)(torch.randn(2, 6), core.initial_state(2))
    assert y.shape == (2, core.output_size) and h.shape == (2, core.state_size)


@pytest.mark.parametrize("drop_obs, log_rays", [([], None), ([3, 19], None), ([], [0, 12])])
def test_policy_export_rollout_matches(tmp_path, drop_obs, log_rays):
    """Encoder + LTC + head (the policy network, also one that ignores some observation features)
    exported to ONNX follows torch for 100 steps."""
    policy_mod = pytest.importorskip("liquid_control.nets.policy")
    torch.manual_seed(0)
    cfg = policy_mod.PolicyConfig(obs_dim=20, act_dim=4, budget=8000, drop_obs=drop_obs, log_rays=log_rays)
    policy = policy_mod.PolicyNet(cfg).eval()
    xs = torch.rand(100, 20) if log_rays else torch.randn(100, 20)
    sess = onnx_session(export_onnx(policy, tmp_path / "policy.onnx", 20, policy.state_size))
    h_t, h_o = policy.initial_state(1), np.zeros((1, policy.state_size), dtype=np.float32)
    for x in xs:
        with torch.no_grad():
            a_t, h_t = policy(x.view(1, 1, -1), h_t)
        a_o, h_o = sess.run(None, {"x": x.numpy().reshape(1, -1), "state": h_o})
        np.testing.assert_allclose(a_o[0], a_t[0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("wiring", ["fc", "autoncp"])
def test_export_form_is_the_reference_solver(wiring):
    """The regrouped solver traced into exported graphs computes the reference solver's function."""
    torch.manual_seed(4)
    cell = LTCCell(12 if wiring == "fc" else AutoNCP(12, 3), 5).double()
    u, v = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 12, dtype=torch.float64)
    cm_t = cell._cm_t(0.7, 3)
    with torch.no_grad():
        np.testing.assert_allclose(cell._ode_export(u, v, cm_t), cell._ode_reference(u, v, cm_t), rtol=1e-12,
                                   atol=1e-12)  # fmt: skip
