"""`liquid-control bench ppo`: PPO env-steps/s with the LTC policy vs sb3-contrib's LSTM policy, one run.

Both agents are ``RecurrentPPO`` on the same vectorised env (same env id and options, ``n_envs``,
``n_steps``, ``batch_size``, ``n_epochs``, seed, VecNormalize): the LTC one with
:class:`~liquid_control.learn.ppo.LiquidPolicy`, the reference with sb3-contrib's ``MlpLstmPolicy`` whose
``lstm_hidden_size`` is chosen so that its trainable-parameter count is the closest to the LTC policy's
(actor + critic + log std). Each agent first learns one warm-up iteration (not timed), then ``--steps``
env steps are timed (rollouts + updates), the two agents taking turns one PPO iteration at a time so
that load from other processes hits both alike. The JSON has both throughputs (per wall-clock second
and per process-CPU second), the parameter counts, the settings and ``ratio_ltc_over_lstm`` (CPU basis;
the issue-7 target is >= 0.5).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from liquid_control.learn.checkpoint import atomic_write_json
from liquid_control.provenance import platform_info

DEFAULT_ENV = "LiquidControl/DroneHover-v0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control bench ppo``."""
    parser.add_argument("--out", type=Path, default=Path("bench_ppo.json"), help="JSON file to write")
    parser.add_argument("--env", default=DEFAULT_ENV)
    parser.add_argument("--set", action="append", default=["action_type=ctbr"], metavar="KEY=VALUE",
                        help="env option override (default: action_type=ctbr)")
    parser.add_argument("--steps", type=int, default=4096, help="timed env steps per agent")
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--n-steps", type=int, default=256, help="rollout steps per env per update")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--critic", default="separate", choices=["separate", "shared"],
                        help="LTC critic; the LSTM reference uses the matching sb3-contrib option")
    parser.add_argument("--budget", type=int, default=20000, help="trainable parameters of the LTC actor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vec-env", default="dummy", choices=["auto", "subproc", "batched", "dummy"],
                        help="dummy (default): envs in-process, so process CPU time covers them")


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def lstm_size_for(n_params: int, obs_space: Any, act_space: Any, shared: bool) -> int:
    """The MlpLstmPolicy ``lstm_hidden_size`` whose trainable count is closest to ``n_params``."""
    from sb3_contrib.ppo_recurrent.policies import MlpLstmPolicy

    @functools.cache
    def count(h: int) -> int:
        kw = {"shared_lstm": True, "enable_critic_lstm": False} if shared else {}
        return _trainable(MlpLstmPolicy(obs_space, act_space, lambda _: 3e-4, lstm_hidden_size=h, **kw))

    lo, hi = 1, 8
    while count(hi) < n_params:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < n_params else (lo, mid)
    return min((lo, hi), key=lambda h: abs(count(h) - n_params))


def _learn_timed(model: Any, steps: int) -> tuple[float, float, int]:
    """Learn ``steps`` more env steps; (wall s, process CPU s, steps done)."""
    torch.set_num_threads(1)
    n0, w0, c0 = model.num_timesteps, time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    return time.perf_counter() - w0, time.process_time() - c0, model.num_timesteps - n0


def bench_ppo(env_id: str, options: dict[str, Any], steps: int, n_envs: int, n_steps: int, batch_size: int,
              n_epochs: int, critic: str, budget: int | None, seed: int, vec_env: str) -> dict[str, Any]:
    """Measure both agents in this process on their own envs with the same settings, interleaved.

    The agents take turns one PPO iteration (rollout + update) at a time, so load from other processes
    on a shared machine hits both alike; process CPU time is reported beside wall time (with the default
    ``dummy`` vec env it covers the env steps too).
    """
    from sb3_contrib import RecurrentPPO

    from liquid_control.learn.ppo import LiquidPolicy, _vecnormalize, build_vec_env

    torch.set_num_threads(1)
    common = {"n_steps": n_steps, "batch_size": batch_size, "n_epochs": n_epochs, "seed": seed,
              "device": "cpu"}
    envs = [_vecnormalize(build_vec_env(env_id, options, n_envs, seed, vec_env), True, True, 0.99)
            for _ in range(2)]
    ltc_kwargs = {"policy_config": {"core": "ltc", "budget": budget}, "critic": critic}
    ltc = RecurrentPPO(LiquidPolicy, envs[0], policy_kwargs=ltc_kwargs, **common)
    n_ltc = _trainable(ltc.policy)
    hidden = lstm_size_for(n_ltc, envs[0].observation_space, envs[0].action_space, critic == "shared")
    kw = {"shared_lstm": True, "enable_critic_lstm": False} if critic == "shared" else {}
    lstm = RecurrentPPO("MlpLstmPolicy", envs[1], policy_kwargs={"lstm_hidden_size": hidden, **kw}, **common)
    agents = {"ltc": ltc, "lstm": lstm}
    per_iter = n_steps * n_envs
    for model in agents.values():  # warm-up iteration, not timed
        model.learn(total_timesteps=per_iter)
    totals = {name: [0.0, 0.0, 0] for name in agents}
    iters = max(1, -(-steps // per_iter))
    for i in range(iters):
        order = list(agents) if i % 2 == 0 else list(agents)[::-1]
        for name in order:
            wall, cpu, done = _learn_timed(agents[name], per_iter)
            t = totals[name]
            t[0], t[1], t[2] = t[0] + wall, t[1] + cpu, t[2] + done
    for env in envs:
        env.close()
    results: dict[str, Any] = {
        "ltc": {"policy": "LiquidPolicy(ltc)", "critic": critic, "trainable_params": n_ltc},
        "lstm": {"policy": f"sb3-contrib MlpLstmPolicy(lstm_hidden_size={hidden})",
                 "critic": "shared_lstm" if critic == "shared" else "separate lstm",
                 "trainable_params": _trainable(lstm.policy)},
    }
    for name, (wall, cpu, done) in totals.items():
        results[name].update(env_steps=int(done), wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                             steps_per_s_wall=round(done / wall, 1), steps_per_s_cpu=round(done / cpu, 1))
    ratio_cpu = results["ltc"]["steps_per_s_cpu"] / results["lstm"]["steps_per_s_cpu"]
    ratio_wall = results["ltc"]["steps_per_s_wall"] / results["lstm"]["steps_per_s_wall"]
    return {
        "benchmark": "ppo", "env": env_id, "env_options": options,
        "settings": {"timed_steps_per_agent": iters * per_iter, "n_envs": n_envs, "vec_env": vec_env,
                     **{k: v for k, v in common.items() if k != "device"}, "torch_threads": 1},
        "agents": results, "ratio_ltc_over_lstm": round(ratio_cpu, 3), "ratio_basis": "process CPU time",
        "ratio_ltc_over_lstm_wall": round(ratio_wall, 3), "target_ratio": 0.5,
        "meets_target": ratio_cpu >= 0.5,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "platform": platform_info(),
    }


def run(args: argparse.Namespace) -> int:
    """``liquid-control bench ppo``: print and write the JSON report."""
    from liquid_control.sim.options import parse_overrides

    for name in ("steps", "n_envs", "n_steps", "batch_size", "epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    report = bench_ppo(args.env, parse_overrides(args.set), args.steps, args.n_envs, args.n_steps,
                       args.batch_size, args.epochs, args.critic, args.budget, args.seed, args.vec_env)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0
