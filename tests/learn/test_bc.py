"""Sequence BC: chunking and masking, burn-in, memory, resume after interruption, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from liquid_control import cli
from liquid_control.learn.bc import BCConfig, chunk_loss, make_chunks, resolve_drop_obs, train_bc
from liquid_control.learn.demos import DatasetWriter
from liquid_control.nets.policy import PolicyConfig, PolicyNet


def _write_dataset(out, episodes, env_id="Synthetic-v0"):
    """A dataset of given (observations, actions) episodes, through the real writer."""
    w = DatasetWriter(out, env_id, {"split": "train"}, "expert")
    for seed, (obs, act) in enumerate(episodes):
        steps = len(obs)
        w.add({"seed": seed, "observations": obs.astype(np.float32), "actions": act.astype(np.float32),
               "executed": act.astype(np.float32), "rewards": np.zeros(steps, np.float32),
               "terminations": np.r_[np.zeros(steps - 1, bool), True], "truncations": np.zeros(steps, bool),
               "layout_id": f"toy:{seed}", "success": True, "info": {}, "obs_dim": obs.shape[1],
               "act_dim": act.shape[1], "action_low": [-1.0] * act.shape[1],
               "action_high": [1.0] * act.shape[1], "resolved_options": {"split": "train"}})
    w.close()
    return out


def _memory_episodes(n, steps=24, seed=0):
    """A cue (±1) visible only at the first step; the target action is 0.8·cue at every step."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        cue = rng.choice([-1.0, 1.0])
        obs = np.zeros((steps, 2))
        obs[0, 0] = cue
        obs[:, 1] = rng.normal(size=steps) * 0.1
        eps.append((obs, np.full((steps, 1), 0.8 * cue)))
    return eps


def _episodes(lengths, f=3, a=2, seed=0):
    rng = np.random.default_rng(seed)
    return [(np.c_[rng.normal(size=(n, f - 1)), np.ones(n)].astype(np.float32),
             np.tanh(rng.normal(size=(n, a))).astype(np.float32)) for n in lengths]


def test_chunks_train_every_real_step_exactly_once():
    eps = _episodes([5, 13, 8])
    ch = make_chunks(eps, chunk_len=4, burn_in=3)
    assert ch.obs.shape == (2 + 4 + 2, 7, 3)
    assert ch.mask.sum().item() == 26 and ch.mask[:, :3].sum() == 0  # burn-in never trained
    trained = ch.act[ch.mask.bool()].numpy()
    np.testing.assert_array_equal(trained, np.concatenate([a for _, a in eps]))
    # burn-in (3) < chunk (4): only each episode's first chunk sees its start, right after the burn-in
    assert ch.resets.sum().item() == 3 and (ch.resets[[0, 2, 6], 3] == 1).all()
    ch = make_chunks(eps, chunk_len=4, burn_in=6)  # longer burn-in: second chunks see the start too
    assert ch.resets.sum().item() == 3 + 3 and (ch.resets[[1, 3, 7], 2] == 1).all()
    assert (ch.obs[..., 2][ch.mask.bool()] == 1).all()  # the marker feature: real steps only


@pytest.mark.parametrize("core", ["gru", "ltc"])
def test_padding_never_contributes_to_loss_or_gradient(core):
    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig(obs_dim=3, act_dim=2, core=core, budget=None))
    ch = make_chunks(_episodes([5, 13, 8]), chunk_len=4, burn_in=3)
    pad = ch.obs[..., 2] == 0  # marker is 1 on every real step
    assert pad.any()

    def loss_and_grads(obs, act):
        policy.zero_grad()
        loss = chunk_loss(policy, obs, act, ch.mask, ch.resets, burn_in=3)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in policy.parameters() if p.grad is not None]

    ref_loss, ref_grads = loss_and_grads(ch.obs, ch.act)
    obs, act = ch.obs.clone(), ch.act.clone()
    obs[pad] = 50.0 * torch.randn_like(obs[pad])
    act[pad] = torch.randn_like(act[pad])
    loss, grads = loss_and_grads(obs, act)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_burn_in_covering_the_history_equals_the_full_episode_loss():
    torch.manual_seed(0)
    policy = PolicyNet(PolicyConfig(obs_dim=3, act_dim=2, core="ltc", budget=None))
    eps = _episodes([5, 13, 8])
    ch = make_chunks(eps, chunk_len=4, burn_in=13)
    with torch.no_grad():
        chunked = chunk_loss(policy, ch.obs, ch.act, ch.mask, ch.resets, burn_in=13).item()
        errs = []
        for o, a in eps:
            pred, _ = policy(torch.from_numpy(o)[None], normalized=True)
            errs.append(((pred[0] - torch.from_numpy(a)) ** 2).mean(-1))
    assert chunked == pytest.approx(torch.cat(errs).mean().item(), rel=1e-4)


def _cfg(tmp_path, demos, **kw):
    base = dict(env_id="Synthetic-v0", demos=[str(demos)], out=str(tmp_path / "run"), policy="gru",
                budget=None, epochs=4, chunk_len=12, burn_in=12, batch_size=16, lr=1e-2, patience=100,
                progress=False)
    base.update(kw)
    return BCConfig(**base)


def test_recurrent_policy_remembers_a_cue_a_frame_stacked_mlp_cannot(tmp_path):
    torch.manual_seed(0)
    demos = _write_dataset(tmp_path / "mem", _memory_episodes(60))
    losses = {}
    for core in ("gru", "mlp"):  # the mlp core sees a stack of its last 4 inputs
        run = train_bc(_cfg(tmp_path, demos, policy=core, out=str(tmp_path / core), epochs=25))
        losses[core] = json.loads((run / "card.json").read_text())["metrics"]["best_val_loss"]
    # the cue is gone from the mlp's window after 4 steps: it can only guess (MSE ≈ 0.64 · 20/24)
    assert losses["mlp"] > 0.3
    assert losses["gru"] < 0.3 * losses["mlp"], losses


def test_resume_after_interruption_loses_no_finished_epoch(tmp_path):
    demos = _write_dataset(tmp_path / "mem", _memory_episodes(30))
    full = train_bc(_cfg(tmp_path, demos, out=str(tmp_path / "full")))
    seen = []

    def interrupt(epoch, record):
        seen.append(epoch)
        if epoch == 2:
            raise KeyboardInterrupt

    cfg = _cfg(tmp_path, demos, out=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        train_bc(cfg, on_epoch_end=interrupt)
    state = torch.load(tmp_path / "cut" / "train_state.pt", weights_only=False)
    assert [r["epoch"] for r in state["progress"]["history"]] == [1, 2]  # both finished epochs kept
    train_bc(dataclasses.replace(cfg, resume=True), on_epoch_end=interrupt)
    assert seen == [1, 2, 3, 4]  # continued at epoch 3, nothing redone
    a = torch.load(tmp_path / "full" / "train_state.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "train_state.pt", weights_only=False)
    val_losses = [[r["val_loss"] for r in s["progress"]["history"]] for s in (a, b)]
    assert val_losses[0] == val_losses[1]
    for k in a["model"]:  # the interrupted-and-resumed run is the uninterrupted run
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert full == tmp_path / "full"


def test_minutes_cap_and_early_stopping_end_training(tmp_path):
    demos = _write_dataset(tmp_path / "mem", _memory_episodes(20))
    run = train_bc(_cfg(tmp_path, demos, epochs=50, minutes=1e-6))
    assert json.loads((run / "card.json").read_text())["metrics"]["epochs"] == 1
    run = train_bc(_cfg(tmp_path, demos, out=str(tmp_path / "es"), epochs=200, lr=1e-9, patience=2))
    assert json.loads((run / "card.json").read_text())["metrics"]["epochs"] < 200


def test_train_bc_command_and_checkpoint(tmp_path, capsys):
    demos = _write_dataset(tmp_path / "mem", _memory_episodes(12))
    code = cli.main(["train", "bc", "--env", "Synthetic-v0", "--policy", "ltc", "--budget", "20000",
                     "--demos", str(demos), "--epochs", "1", "--chunk-len", "12", "--burn-in", "4",
                     "--out", str(tmp_path / "run")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["params"]["trainable"] - 20000) <= 2000
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["env_id"] == "Synthetic-v0" and cfg["policy"]["core"] == "ltc"
    assert len(cfg["normalization"]["obs_mean"]) == 2
    assert list((tmp_path / "run" / "tb").iterdir())  # TensorBoard scalars were written
    bad = ["train", "bc", "--env", "Other-v0", "--demos", str(demos), "--out", str(tmp_path / "x")]
    assert cli.main(bad) == 2
    assert "collected on" in capsys.readouterr().err


def test_conv_encoder_over_the_ray_block(tmp_path, capsys):
    rng = np.random.default_rng(0)
    eps = [(rng.uniform(size=(20, 12)), rng.uniform(-1, 1, size=(20, 2))) for _ in range(6)]
    demos = _write_dataset(tmp_path / "rays", eps)
    base = ["train", "bc", "--env", "Synthetic-v0", "--policy", "gru", "--encoder", "conv",
            "--demos", str(demos), "--epochs", "1", "--out", str(tmp_path / "run")]
    assert cli.main(base) == 2  # no rays.count in the dataset's options and no --ray-slice
    assert "ray-slice" in capsys.readouterr().err
    assert cli.main(base + ["--ray-slice", "0:10"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["policy"]["encoder"] == "conv" and cfg["policy"]["ray_slice"] == [0, 10]


def test_drop_obs_by_index_or_observation_part(tmp_path, capsys):
    """``--drop-obs`` takes indices or names of the env's observation parts (``obs_slices``)."""
    opts = {"split": "train", "layout": {"family": "forest"}}
    assert resolve_drop_obs("LiquidControl/RoverNav-v0", opts, ["wheels", 3, "3"]) == [3, 67, 68]
    with pytest.raises(ValueError, match="goal_bearing"):  # the error lists the parts there are
        resolve_drop_obs("LiquidControl/RoverNav-v0", opts, ["velocity"])
    demos = _write_dataset(tmp_path / "toy", _episodes([20] * 4))
    base = ["train", "bc", "--env", "Synthetic-v0", "--policy", "gru", "--demos", str(demos),
            "--epochs", "1", "--out", str(tmp_path / "run")]
    assert cli.main(base + ["--drop-obs", "1"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["policy"]["drop_obs"] == [1]
    assert cfg["policy"]["log_rays"] is None


def test_log_rays_takes_the_env_ray_part():
    from liquid_control.learn.bc import ray_part

    opts = {"split": "train", "layout": {"family": "forest"}}
    assert ray_part("LiquidControl/RoverNav-v0", opts) == [0, 64]
    with pytest.raises(ValueError, match="rays"):
        ray_part("LiquidControl/DroneHover-v0", {"split": "train"})


def test_normalization_is_fitted_on_the_log_ray_features():
    from liquid_control.learn.bc import fit_normalization
    from liquid_control.nets.policy import LOG_RAYS_EPS, PolicyConfig, PolicyNet

    rng = np.random.default_rng(0)
    eps = [{"observations": rng.uniform(0, 1, (30, 5)).astype(np.float32)} for _ in range(3)]
    policy = PolicyNet(PolicyConfig(obs_dim=5, act_dim=2, core="gru", budget=None, log_rays=[0, 3]))
    fit_normalization(policy, eps, {"action_low": [-1, -1], "action_high": [1, 1]})
    obs = np.concatenate([e["observations"] for e in eps]).astype(np.float64)
    want = np.concatenate([np.log(obs[:, :3] + LOG_RAYS_EPS), obs[:, 3:]], 1)
    np.testing.assert_allclose(policy.obs_mean.numpy(), want.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy.obs_std.numpy(), want.std(0), rtol=1e-4)


def test_near_obstacle_weights_mark_steps_with_a_close_ray():
    from liquid_control.learn.bc import near_obstacle_weights

    obs = torch.tensor([[[0.9, 0.5, 0.1], [0.3, 0.2, 0.1], [0.9, 0.9, 0.1]]])  # rays = features 0, 1
    w = near_obstacle_weights(obs, [0, 2], near_range=0.25, near_weight=3.0)
    assert w.tolist() == [[1.0, 4.0, 1.0]]  # feature 2 (not a ray) never counts


def test_weights_folded_into_the_mask_give_the_weighted_mean_loss():
    eps = _episodes([6, 6])
    ch = make_chunks(eps, chunk_len=6, burn_in=0)
    policy = PolicyNet(PolicyConfig(obs_dim=3, act_dim=2, core="gru", budget=None))
    weights = torch.tensor([[1.0, 2.0, 1.0, 5.0, 1.0, 1.0], [3.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    got = chunk_loss(policy, ch.obs, ch.act, ch.mask * weights, ch.resets, 0)
    with torch.no_grad():
        pred, _ = policy(ch.obs, None, ch.resets, normalized=True)
        err = ((pred - policy.normalize_actions(ch.act)) ** 2).mean(-1)
    assert got.item() == pytest.approx(((err * weights).sum() / weights.sum()).item(), rel=1e-5)


def test_obs_noise_regularises_reproducibly(tmp_path):
    from liquid_control.learn.bc import feature_std

    ch = make_chunks(_episodes([5, 9]), chunk_len=4, burn_in=2)
    sel = ch.obs[ch.mask > 0].numpy()
    np.testing.assert_allclose(feature_std(ch).numpy(), sel.std(0, ddof=1), rtol=1e-5)
    demos = _write_dataset(tmp_path / "mem", _memory_episodes(16))
    models = {}
    for name, noise in (("clean", 0.0), ("noisy", 0.5), ("noisy_again", 0.5)):
        run = train_bc(_cfg(tmp_path, demos, out=str(tmp_path / name), epochs=2, obs_noise=noise))
        models[name] = torch.load(run / "train_state.pt", weights_only=False)["model"]
    for k in models["clean"]:
        torch.testing.assert_close(models["noisy"][k], models["noisy_again"][k], rtol=0, atol=0)
    assert any(not torch.equal(models["clean"][k], models["noisy"][k]) for k in models["clean"])
    for bad in ({"obs_noise": -0.1}, {"near_weight": -1.0}, {"near_range": 0.0}):
        with pytest.raises(ValueError):
            _cfg(tmp_path, demos, **bad)


def test_episode_chunk_weights_follow_make_chunks_order():
    from liquid_control.learn.bc import episode_chunk_weights

    eps = _episodes([5, 13, 8])
    ch = make_chunks(eps, chunk_len=4, burn_in=3)
    w = episode_chunk_weights([{"observations": o} for o, _ in eps], 4, [1.0, 3.0, 0.5])
    assert w.shape == (len(ch), 1)
    assert w[:, 0].tolist() == [1.0] * 2 + [3.0] * 4 + [0.5] * 2  # chunks per episode: 2, 4, 2
    with pytest.raises(ValueError, match="dagger_weight"):
        BCConfig(env_id="Synthetic-v0", demos=["x"], out="y", dagger_weight=0.0)
