"""`liquid-control bench readout`: time of the closed-form reservoir readout fit over 100k demo steps.

For each reservoir core (esn, lsm) at the policy budget (default 20k trainable parameters: encoder +
readout, the shapes of DroneNav or RoverNav), it times the two phases of ``learn.readout.fit_readout``:

* ``states``: run the frozen reservoir over the episodes and fold its states into the ridge statistics
  (the float32 upper-triangle Gram matrix, summed in float64);
* ``solve``: centre, then per ridge alpha one float32 Cholesky factor refined to float64 accuracy (one
  alpha, and the full validation grid; a symmetric eigendecomposition shared by all alphas was ~40x
  slower than one Cholesky at d = 6716).

Figures are wall-clock and process CPU seconds (the machine may be shared: CPU seconds are the steadier
figure) plus the floating-point work of the Gram matrix (``steps * d^2``, the unavoidable part). A
reference measured in the same run on ``--ref-steps`` steps — the straightforward implementation: the
torch ESN / LIF loops with a fan-in gather for the recurrence, a full ``XᵀX`` per batch — gives the
speed-up ratios.
Observations are the given demonstrations (cycled to ``--steps``) or, without ``--demos``, a smooth
random walk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liquid_control.provenance import platform_info

SHAPES = {"drone": (49, 4), "rover": (69, 2)}  # (obs_dim, act_dim) of DroneNav / RoverNav


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("bench_readout.json"), help="JSON file to write")
    parser.add_argument("--env", choices=sorted(SHAPES), nargs="+", default=["drone", "rover"],
                        help="policy shapes to measure (observation / action sizes of the env)")
    parser.add_argument("--cores", default="esn,lsm", help="comma-separated reservoir cores")
    parser.add_argument("--budget", type=int, default=20000, help="trainable parameters of the policy")
    parser.add_argument("--steps", type=int, default=100_000, help="demonstration steps to fit on")
    parser.add_argument("--ref-steps", type=int, default=4000, help="steps for the same-run reference")
    parser.add_argument("--demos", type=Path, default=None,
                        help="demonstration dataset to take observations from (its env's shape)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch and numba threads (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _episodes(obs_dim: int, act_dim: int, steps: int, demos: Path | None, length: int = 500) -> list[dict]:
    """``steps`` steps of episodes: the demonstrations cycled, or smooth random walks."""
    if demos is not None:
        from liquid_control.learn.demos import load_dataset

        source = load_dataset(demos).episodes
    else:
        rng = np.random.default_rng(0)
        source = []
        for _ in range(max(1, -(-steps // length))):
            x = np.cumsum(rng.normal(scale=0.1, size=(length, obs_dim)), axis=0)
            source.append({"observations": x.astype(np.float32),
                           "actions": np.tanh(rng.normal(size=(length, act_dim))).astype(np.float32)})
    out, total, i = [], 0, 0
    while total < steps:
        e = source[i % len(source)]
        n = min(len(e["observations"]), steps - total)
        out.append({"observations": e["observations"][:n], "actions": e["actions"][:n]})
        total, i = total + n, i + 1
    return out


def _policy(core: str, obs_dim: int, act_dim: int, budget: int, episodes: list[dict]):
    from liquid_control.nets.policy import PolicyConfig, PolicyNet

    policy = PolicyNet(PolicyConfig(obs_dim=obs_dim, act_dim=act_dim, core=core, budget=budget)).eval()
    obs = np.concatenate([e["observations"] for e in episodes])
    policy.set_normalization(obs.mean(0), obs.std(0), -np.ones(act_dim), np.ones(act_dim))
    return policy


def _accumulate(policy, episodes: list[dict], reference: bool = False):
    """Ridge statistics over the episodes (``reference``: gather recurrence / torch LIF, full XᵀX)."""
    from liquid_control.learn.readout import episode_features, readout_targets
    from liquid_control.nets.reservoir import RidgeAccumulator

    core = policy.core
    acc = RidgeAccumulator(core.readout_features, policy.config.act_dim)
    if reference:  # the torch paths with a gather for the recurrence
        core.__dict__.update({"_recurrent": lambda s: (s[:, core.rec_idx] * core.rec_val).sum(-1),
                              "_kernel_serves": lambda x, s: False})
    try:
        for phi, act in episode_features(policy, episodes):
            y = readout_targets(policy, act)
            if reference:  # the straightforward statistics: a full XᵀX per batch, float64 sums
                acc.xx += (phi.T @ phi).double().numpy()
                acc.xy += (phi.T @ y).double().numpy()
                acc.sx += phi.double().sum(0).numpy()
                acc.sy += y.double().sum(0).numpy()
                acc.n += len(phi)
            else:
                acc.add(phi, y)
        acc.centred()
    finally:
        for k in ("_recurrent", "_kernel_serves"):
            core.__dict__.pop(k, None)
    return acc


def measure(core: str, shape: str, args: argparse.Namespace) -> dict[str, Any]:
    """Timings of one core at one policy shape."""
    from liquid_control.learn.readout import ALPHAS

    obs_dim, act_dim = SHAPES[shape]
    episodes = _episodes(obs_dim, act_dim, args.steps, args.demos)
    policy = _policy(core, obs_dim, act_dim, args.budget, episodes)
    d = policy.core.readout_features
    acc, w_states, c_states = _timed(lambda: _accumulate(policy, episodes))
    _, w_one, c_one = _timed(lambda: acc.solve_many([1e-3]))
    _, w_grid, c_grid = _timed(lambda: acc.solve_many(ALPHAS))
    ref_eps = _episodes(obs_dim, act_dim, args.ref_steps, args.demos)
    _, w_new, c_new = _timed(lambda: _accumulate(policy, ref_eps))
    _, w_ref, c_ref = _timed(lambda: _accumulate(policy, ref_eps, reference=True))
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    row = {
        "core": core, "shape": shape, "obs_dim": obs_dim, "act_dim": act_dim, "units": policy.core.units,
        "readout_features": d, "trainable_params": trainable,
        "readout_params": sum(p.numel() for p in policy.core.readout.parameters()),
        "steps": acc.n, "gram_gflop": 2 * acc.n * d * d / 2 / 1e9,  # upper triangle: n d² multiply-adds
        "states_and_gram": {"wall_s": w_states, "cpu_s": c_states},
        "solve_one_alpha": {"wall_s": w_one, "cpu_s": c_one},
        "solve_alpha_grid": {"wall_s": w_grid, "cpu_s": c_grid, "alphas": len(ALPHAS)},
        "fit_one_alpha": {"wall_s": w_states + w_one, "cpu_s": c_states + c_one},
        "fit_alpha_grid": {"wall_s": w_states + w_grid, "cpu_s": c_states + c_grid},
        "reference": {"steps": args.ref_steps, "cpu_s": c_ref, "wall_s": w_ref,
                      "ours_cpu_s_same_steps": c_new, "ours_wall_s_same_steps": w_new,
                      "speedup_cpu": c_ref / max(c_new, 1e-9),
                      "reference_cpu_s_per_100k_steps": c_ref / args.ref_steps * 1e5},
    }
    row["fit_alpha_grid"]["under_1_min_wall"] = row["fit_alpha_grid"]["wall_s"] < 60.0  # the target
    row["fit_alpha_grid"]["under_1_min_cpu"] = row["fit_alpha_grid"]["cpu_s"] < 60.0  # all threads' time
    return row


def run(args: argparse.Namespace) -> int:
    from liquid_control.learn.readout import ALPHAS

    if args.quick:
        args.steps, args.ref_steps, args.budget = min(args.steps, 3000), min(args.ref_steps, 500), 8000
    if args.steps < 1 or args.ref_steps < 1 or args.threads < 1:
        raise ValueError("--steps, --ref-steps and --threads must be positive")
    if args.demos is not None:
        manifest = json.loads((args.demos / "manifest.json").read_text())
        args.env = [next(k for k, v in SHAPES.items() if v == (manifest["obs_dim"], manifest["act_dim"]))]
    torch.set_num_threads(args.threads)
    rows = []
    for shape in args.env:
        for core in args.cores.split(","):
            row = measure(core.strip(), shape, args)
            rows.append(row)
            print(f"{shape:5s} {row['core']}: {row['units']} units, d={row['readout_features']}, "
                  f"{row['steps']} steps: states+gram {row['states_and_gram']['cpu_s']:.1f} s CPU "
                  f"({row['states_and_gram']['wall_s']:.1f} wall), solve {len(ALPHAS)} alphas "
                  f"{row['solve_alpha_grid']['cpu_s']:.1f} s CPU; total {row['fit_alpha_grid']['cpu_s']:.1f} "
                  f"s CPU; vs reference x{row['reference']['speedup_cpu']:.1f}", flush=True)
    result = {"benchmark": "readout", "threads": args.threads, "cpu_count": os.cpu_count(),
              "load_avg": os.getloadavg(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "budget": args.budget,
              "demos": str(args.demos) if args.demos else None, "platform": platform_info(), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0
