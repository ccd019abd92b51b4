"""`liquid-control bench cells`: LTC/CfC speed, ours vs ncps vs torch.nn.LSTM, measured in one run.

For each configuration (32 inputs; 64 units fully connected, AutoNCP(64, 4), and the ~20k-parameter
policy LTC core) it measures, for our fused and reference LTC, the ncps LTC with identical weights and a
``torch.nn.LSTM`` with (about) the same trainable parameters:

* training throughput: forward + backward over a (B=64, T=64) batch, in steps/s (B*T per second),
  best of three interleaved rounds;
* batch-1 latency of one control step without gradients (median, microseconds): ``cell(x, h)`` for each
  model, our compiled step (``compile_step()``, numba), our sequence model on a (1, 1, F) input (the call
  a closed-loop controller makes, ``ours_closed_loop``), the exported ONNX step under onnxruntime and the
  TorchScript step;
* memory autograd keeps for the backward pass at B=2, T=256 (saved tensors, MB).

It prints a table and writes JSON with the figures, the ratios to ncps and to the LSTM (measured in the
same run, so a busy machine slows both sides) and the load average before and after each configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from liquid_control.provenance import platform_info

INPUTS = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("bench_cells.json"), help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="minimum timing per measurement (default 1.0, quick 0.05)",
    )


def _timed(fn: Callable[[], Any], min_seconds: float, min_reps: int) -> float:
    """Seconds per call: one warm-up call, then repeat until both limits are reached.

    A warm-up call that alone takes over 3x ``min_seconds`` is the measurement (slow references)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 3 * min_seconds:
        return first
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= min_reps and elapsed >= min_seconds:
            return elapsed / reps


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _train_rate(model: nn.Module, x: Tensor, min_seconds: float, min_reps: int) -> float:
    """Steps per second of forward + backward (B*T steps per call)."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        y, h = model(x)
        loss = y.square().mean() + h.square().mean() if not isinstance(h, tuple) else y.square().mean()
        grads = torch.autograd.grad(loss, params)
        del grads

    return x.shape[0] * x.shape[1] / _timed(step, min_seconds, min_reps)


def _latency_us(step: Callable[[], Any], calls: int) -> float:
    """Median microseconds of one batch-1 step (no gradients)."""
    with torch.no_grad():
        for _ in range(10):
            step()
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            step()
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def _saved_mb(model: nn.Module, x: Tensor) -> float:
    """MB of distinct tensors autograd saves for backward during one forward pass."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            seen[key] = key[1]
        except (RuntimeError, NotImplementedError):  # storage-less tensors
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, _ = model(x)
    del y
    return sum(seen.values()) / 2**20


class _LSTMSeq(nn.Module):
    """torch.nn.LSTM returning (y, h) like the liquid sequence models."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, (h, _) = self.lstm(x)
        return y, h[0]


def _configs(quick: bool) -> dict[str, Callable[[], Any]]:
    from ncps import wirings as ncps_wirings

    from liquid_control.nets.core import size_for_budget

    units = 16 if quick else 64
    budget = 2_000 if quick else 20_000
    policy_units = size_for_budget("ltc", budget, INPUTS, 4)
    return {
        f"fc{units}": lambda: units,
        f"autoncp{units}": lambda: ncps_wirings.AutoNCP(units, 4),
        f"policy{budget // 1000}k_autoncp{policy_units}": lambda: ncps_wirings.AutoNCP(policy_units, 4),
    }


def _bench_config(name: str, make_wiring: Callable[[], Any], args: argparse.Namespace) -> dict[str, Any]:
    from ncps import torch as ncps_torch

    from liquid_control.nets import count_params, from_ncps, size_for_budget
    from liquid_control.nets.export import export_onnx, export_torchscript, onnx_session

    batch, steps, t_mem = (8, 8, 16) if args.quick else (64, 64, 256)
    min_s = args.min_seconds if args.min_seconds is not None else (0.05 if args.quick else 1.0)
    min_reps, calls = (1, 20) if args.quick else (1, 300)
    load_before = _load_average()
    torch.manual_seed(0)
    theirs = ncps_torch.LTC(INPUTS, make_wiring())
    models = {"ours_auto": from_ncps(theirs, implementation="auto")}
    auto_impl = models["ours_auto"].rnn_cell.resolved_implementation()
    models["ours_torch_fused"] = from_ncps(theirs, implementation="fused")
    models["ours_reference"] = from_ncps(theirs, implementation="reference")
    models["ncps"] = theirs
    counts = count_params(models["ours_auto"])
    hidden = size_for_budget("lstm", counts["trainable"], INPUTS, 4)
    models["lstm"] = _LSTMSeq(INPUTS, hidden)
    x = torch.randn(batch, steps, INPUTS)
    result: dict[str, Any] = {
        "units": models["ours_auto"].state_size,
        "auto_implementation": auto_impl,
        "params": {
            "ltc_trainable": counts["trainable"],
            "ltc_effective": counts["effective"],
            "ncps_registered": sum(p.numel() for p in theirs.parameters()),
            "lstm_hidden": hidden,
            "lstm_trainable": count_params(models["lstm"])["trainable"],
        },
        "train_steps_per_s": {},
        "latency_us": {},
        f"saved_mb_T{t_mem}": {},
    }
    _train_rate(models["ours_auto"], x[:2, :2], 0.0, 1)  # compile (or load) the kernels outside the timing
    rounds = 1 if args.quick else 3
    for _ in range(rounds):  # interleaved rounds, best of each: robust to a busy shared machine
        for key, model in models.items():
            rate = _train_rate(model, x, min_s / rounds, min_reps)
            result["train_steps_per_s"][key] = max(rate, result["train_steps_per_s"].get(key, 0.0))
    # batch-1 control step
    x1 = torch.randn(1, INPUTS)
    n = result["units"]
    h1 = torch.zeros(1, n)
    cells = {k: models[k].rnn_cell for k in ("ours_auto", "ours_torch_fused", "ours_reference", "ncps")}
    lstm_cell = nn.LSTMCell(INPUTS, hidden)
    hc = (torch.zeros(1, hidden), torch.zeros(1, hidden))
    result["latency_us"] = {k: _latency_us(lambda c=c: c(x1, h1), calls) for k, c in cells.items()}
    result["latency_us"]["lstm"] = _latency_us(lambda: lstm_cell(x1, hc), calls)
    if auto_impl == "numba":  # the compiled step on numpy arrays (closed-loop controllers)
        step = cells["ours_auto"].compile_step()
        xn, hn = x1[0].numpy(), h1[0].numpy()
        result["latency_us"]["ours_compiled_step"] = _latency_us(lambda: step(xn, hn), calls)
    x11 = x1.unsqueeze(1)
    result["latency_us"]["ours_closed_loop"] = _latency_us(lambda: models["ours_auto"](x11, h1), calls)
    with tempfile.TemporaryDirectory() as tmp:  # exported single step (reference graph, unfolds unrolled)
        onnx_path = export_onnx(models["ours_auto"], Path(tmp) / "ltc.onnx", INPUTS, n)
        import onnx

        result["onnx_nodes"] = len(onnx.load(str(onnx_path)).graph.node)
        session = onnx_session(onnx_path, threads=1)
        feeds = {"x": x1.numpy(), "state": h1.numpy()}
        result["latency_us"]["ours_onnxruntime"] = _latency_us(lambda: session.run(None, feeds), calls)
        scripted = export_torchscript(models["ours_auto"], Path(tmp) / "ltc.pt", INPUTS, n)
        result["latency_us"]["ours_torchscript"] = _latency_us(lambda: scripted(x1, h1), calls)
    xm = torch.randn(2, t_mem, INPUTS)  # batch 2: ncps keeps ~N*N floats per op, unfold and step
    for key, model in models.items():
        result[f"saved_mb_T{t_mem}"][key] = _saved_mb(model, xm)
    result["load_average_1min"] = {"before": load_before, "after": _load_average()}
    tr, lat, mem = result["train_steps_per_s"], result["latency_us"], result[f"saved_mb_T{t_mem}"]
    result["ratios"] = {
        "train_auto_over_ncps": tr["ours_auto"] / tr["ncps"],
        "train_torch_fused_over_ncps": tr["ours_torch_fused"] / tr["ncps"],
        "train_reference_over_ncps": tr["ours_reference"] / tr["ncps"],
        "train_lstm_over_auto": tr["lstm"] / tr["ours_auto"],
        "latency_ncps_over_auto": lat["ncps"] / lat["ours_auto"],
        "memory_auto_over_ncps": mem["ours_auto"] / mem["ncps"],
        "memory_torch_fused_over_ncps": mem["ours_torch_fused"] / mem["ncps"],
    }
    result["ratios"]["latency_ncps_over_onnxruntime"] = lat["ncps"] / lat["ours_onnxruntime"]
    if "ours_compiled_step" in lat:
        result["ratios"]["latency_ncps_over_compiled_step"] = lat["ncps"] / lat["ours_compiled_step"]
    return result


def _onnxruntime_floor(calls: int) -> dict[str, float]:
    """Median batch-1 latency (us) of onnxruntime sessions whose graphs are chains of 1 and 121 cheap
    elementwise nodes on a (1, 64) tensor: the fixed cost of a run and the cost per node, below which no
    exported graph of that many nodes can go (the same session options as the exported step)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def chain_session(nodes: int):
        ops = [helper.make_node("Sigmoid" if i % 2 else "Neg", [f"t{i - 1}" if i else "x"], [f"t{i}"])
               for i in range(nodes)]  # fmt: skip
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 64]) for n in ("x", f"t{nodes - 1}")]
        graph = helper.make_graph(ops, "chain", io[:1], io[1:])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    feeds = {"x": np.zeros((1, 64), np.float32)}
    one, many = chain_session(1), chain_session(121)
    t_one = _latency_us(lambda: one.run(None, feeds), calls)
    t_many = _latency_us(lambda: many.run(None, feeds), calls)
    return {"run_1_node": t_one, "run_121_nodes": t_many, "per_node": (t_many - t_one) / 120}


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    configs = _configs(args.quick)
    report: dict[str, Any] = {
        "benchmark": "cells",
        "quick": bool(args.quick),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "platform": platform_info(),  # python, CPU model, library versions
        "inputs": INPUTS,
        "batch": 8 if args.quick else 64,
        "steps": 8 if args.quick else 64,
        "configs": {},
    }
    for name, make_wiring in tqdm(configs.items(), desc="bench cells", unit="config"):
        report["configs"][name] = _bench_config(name, make_wiring, args)
    report["onnxruntime_floor_us"] = _onnxruntime_floor(20 if args.quick else 300)
    _print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


def _print_table(report: dict[str, Any]) -> None:
    head = f"{'config':<24}{'model':<20}{'train steps/s':>15}{'batch-1 µs':>12}{'saved MB':>10}"
    print(head)
    print("-" * len(head))
    for name, r in report["configs"].items():
        mem_key = next(k for k in r if k.startswith("saved_mb"))
        extra = ("ours_compiled_step", "ours_closed_loop", "ours_onnxruntime", "ours_torchscript")
        for model in (*r["train_steps_per_s"], *extra):
            tr, lat, mem = (
                r["train_steps_per_s"].get(model),
                r["latency_us"].get(model),
                r[mem_key].get(model),
            )
            if lat is None:
                continue
            cols = [
                f"{tr:>15,.0f}" if tr is not None else f"{'-':>15}",
                f"{lat:>12,.1f}",
                f"{mem:>10,.1f}" if mem is not None else f"{'-':>10}",
            ]
            print(f"{name:<24}{model:<20}" + "".join(cols))
        ratios = ", ".join(f"{k}={v:.2f}" for k, v in r["ratios"].items())
        print(f"{'':<24}ratios: {ratios}")
    floor = report.get("onnxruntime_floor_us")
    if floor:
        one, per_node = floor["run_1_node"], floor["per_node"]
        print(f"onnxruntime floor: {one:.1f} us per run + {per_node:.2f} us per node (chains of cheap nodes)")
