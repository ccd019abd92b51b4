"""Pictures of a liquid policy: its wiring and its neurons' activity over an episode.

``liquid-control plot wiring CKPT --out wiring.png`` draws the wiring as a layered graph
(sensory → inter → command → motor; excitatory synapses green, inhibitory red) next to its connectivity
matrix. ``liquid-control plot activity CKPT [--env ID] [--seed S] --out activity.png`` runs one
closed-loop episode and draws every neuron's state over time as a heat map (motor neurons on top,
highlighted) with the motor neurons' traces below. Matplotlib with the Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

GROUP_ORDER = ("sensory", "inter", "command", "motor")
GROUP_COLORS = {"sensory": "#7f7f7f", "inter": "#1f77b4", "command": "#9467bd", "motor": "#ff7f0e",
                "state": "#1f77b4"}
EXCITATORY, INHIBITORY = "#2ca02c", "#d62728"


# ---- finding the wiring and the neuron groups of a policy ------------------------------------------

def find_wiring(module: Any) -> Any | None:
    """The first wiring (``nets.wiring.Wiring``) found on ``module`` or its sub-modules, else None."""
    from liquid_control.nets.wiring import Wiring

    candidates = [module]
    if hasattr(module, "modules"):
        candidates += list(module.modules())
    for m in candidates:
        w = getattr(m, "wiring", None)
        if isinstance(w, Wiring):
            return w
    return None


def state_groups(wiring: Any | None, width: int) -> dict[str, list[int]]:
    """Indices of a controller state vector by group (motor, command, inter), or one 'state' group.

    The wiring's groups apply when the state holds exactly one value per neuron (LTC: v); any other
    state (LSTM's packed h and c, an MLP's frame stack) is one group.
    """
    if wiring is not None and wiring.units == width:
        groups = wiring.neuron_groups()
        out = {g: list(groups.get(g, [])) for g in ("motor", "command", "inter") if groups.get(g)}
        covered = sorted(i for ids in out.values() for i in ids)
        if covered == list(range(width)):
            return out
    return {"state": list(range(width))}


def controller_groups(controller: Any, width: int) -> dict[str, list[int]]:
    """Neuron groups of a controller's state (a learned policy's wiring when it has one)."""
    policy = getattr(controller, "policy", None)
    named = getattr(getattr(policy, "core", None), "state_groups", None)  # reservoirs name their state
    if named is not None:
        return named()
    return state_groups(find_wiring(policy) if policy is not None else None, width)


def row_order(groups: dict[str, list[int]]) -> tuple[list[int], list[tuple[str, int, int]]]:
    """Indices ordered motor, command, inter, then other groups (top to bottom) + (group, start, end)."""
    order, spans = [], []
    names = ["motor", "command", "inter"] + [g for g in groups if g not in ("motor", "command", "inter")]
    for g in names:
        ids = groups.get(g, [])
        if ids:
            spans.append((g, len(order), len(order) + len(ids)))
            order += ids
    return order, spans


# ---- wiring ------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bezier(p: np.ndarray, q: np.ndarray, bulge: float, n: int = 16) -> np.ndarray:
    """A quadratic curve from p to q bowing sideways by ``bulge`` (for synapses inside one layer)."""
    mid = (p + q) / 2 + np.array([bulge, 0.0])
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p + 2 * (1 - t) * t * mid + t**2 * q


def plot_wiring(wiring: Any, out: str | Path, title: str = "") -> Path:
    """Draw ``wiring`` as a layered graph plus its (sensory + recurrent) connectivity matrix; write a PNG."""
    if not wiring.is_built():
        raise ValueError("the wiring is not built (unknown input width): nothing to draw for the inputs")
    plt = _plt()
    from matplotlib.collections import LineCollection

    groups = wiring.neuron_groups()
    n_in = int(wiring.input_dim)
    columns = [(g, list(range(n_in)) if g == "sensory" else list(groups.get(g, []))) for g in GROUP_ORDER]
    columns = [(g, ids) for g, ids in columns if ids]
    pos: dict[tuple[str, int], np.ndarray] = {}
    for x, (g, ids) in enumerate(columns):
        ys = np.linspace(1, 0, len(ids)) if len(ids) > 1 else np.array([0.5])
        for i, y in zip(ids, ys, strict=True):
            pos[("s" if g == "sensory" else "n", i)] = np.array([float(x), float(y)])
    col_of = {i: x for x, (g, ids) in enumerate(columns) if g != "sensory" for i in ids}

    segs, colors = [], []
    sens = np.asarray(wiring.sensory_adjacency_matrix)
    adj = np.asarray(wiring.adjacency_matrix)
    for (src, dst), pol in np.ndenumerate(sens):
        if pol:
            segs.append(np.stack([pos[("s", src)], pos[("n", dst)]]))
            colors.append(EXCITATORY if pol > 0 else INHIBITORY)
    for (src, dst), pol in np.ndenumerate(adj):
        if not pol:
            continue
        p, q = pos[("n", src)], pos[("n", dst)]
        if col_of[src] == col_of[dst]:  # recurrent synapse inside a layer: a curve to the side
            segs.append(_bezier(p, q, 0.25 + 0.1 * abs(p[1] - q[1])))
        else:
            segs.append(np.stack([p, q]))
        colors.append(EXCITATORY if pol > 0 else INHIBITORY)
    n_syn = len(segs)
    alpha = float(np.clip(30.0 / max(n_syn, 1) ** 0.5, 0.08, 0.8))

    fig, (ax_g, ax_m) = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [1.25, 1]})
    ax_g.add_collection(LineCollection(segs, colors=colors, linewidths=0.8, alpha=alpha, zorder=1))
    for x, (g, ids) in enumerate(columns):
        xy = np.array([pos[("s" if g == "sensory" else "n", i)] for i in ids])
        size = float(np.clip(2000.0 / len(ids), 8, 120))
        ax_g.scatter(xy[:, 0], xy[:, 1], s=size, c=GROUP_COLORS[g], edgecolors="black", linewidths=0.4,
                     zorder=2)
        ax_g.text(x, 1.06, f"{g}\n({len(ids)})", ha="center", va="bottom", fontsize=10, color=GROUP_COLORS[g],
                  fontweight="bold")
    ax_g.set_xlim(-0.4, len(columns) - 0.4)
    ax_g.set_ylim(-0.06, 1.18)
    ax_g.axis("off")
    ax_g.plot([], [], color=EXCITATORY, label="excitatory (+1)")
    ax_g.plot([], [], color=INHIBITORY, label="inhibitory (−1)")
    ax_g.legend(loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.07))
    counts = f"{wiring.synapse_count} synapses + {wiring.sensory_synapse_count} sensory"
    ax_g.set_title(f"{title}  {counts}".strip())

    # connectivity matrix: rows = sources (inputs, then neurons by group), columns = target neurons
    neuron_order = [i for g, ids in columns if g != "sensory" for i in ids]
    mat = np.concatenate([sens[:, neuron_order], adj[np.ix_(neuron_order, neuron_order)]], axis=0)
    from matplotlib.colors import ListedColormap

    ax_m.imshow(mat, cmap=ListedColormap([INHIBITORY, "#f4f4f4", EXCITATORY]), vmin=-1.5, vmax=1.5,
                interpolation="nearest", aspect="auto")
    ax_m.axhline(n_in - 0.5, color="black", linewidth=1.2)
    start = 0
    for g, ids in columns:
        if g == "sensory":
            continue
        end = start + len(ids)
        for line in (ax_m.axvline, ):
            line(end - 0.5, color="black", linewidth=0.5)
        ax_m.axhline(n_in + end - 0.5, color="black", linewidth=0.5)
        ax_m.text((start + end - 1) / 2, -1.0, g, ha="center", va="bottom", fontsize=8, color=GROUP_COLORS[g])
        start = end
    ax_m.set_xlabel("target neuron (grouped inter | command | motor)")
    ax_m.set_ylabel(f"source: {n_in} inputs (top), then neurons")
    ax_m.set_title("connectivity (green +1, red −1)", pad=16)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---- activity ----------------------------------------------------------------------------------------

def plot_activity(states: np.ndarray, groups: dict[str, list[int]], out: str | Path, dt: float = 1.0,
                  title: str = "", actions: np.ndarray | None = None) -> Path:
    """Heat map of neuron states ``(T, N)`` over time (motor on top, highlighted) + motor traces; PNG."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or states.shape[0] < 1 or states.shape[1] < 1:
        raise ValueError(f"states must be (T, N) with T, N >= 1, got shape {states.shape}")
    plt = _plt()
    order, spans = row_order(groups)
    data = states[:, order].T
    lim = float(np.percentile(np.abs(data), 99)) or 1.0
    t_end = states.shape[0] * dt
    motor = groups.get("motor", [])
    n_rows = 3 if actions is not None else 2
    ratios = [3, 1, 1][:n_rows]
    fig, axes = plt.subplots(n_rows, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": ratios})
    ax = axes[0]
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=(0, t_end, len(order) - 0.5, -0.5))
    for g, a, b in spans:
        ax.axhline(b - 0.5, color="black", linewidth=0.6)
        ax.text(-0.01, (a + b - 1) / 2, g, transform=ax.get_yaxis_transform(), ha="right", va="center",
                color=GROUP_COLORS.get(g, "black"), fontweight="bold")
        if g == "motor":
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle((0, a - 0.5), t_end, b - a, fill=False, edgecolor=GROUP_COLORS["motor"],
                                   linewidth=2.0))
    ax.set_yticks([])
    ax.set_title(title or "neuron activity")
    fig.colorbar(im, ax=axes.tolist(), fraction=0.025, pad=0.01, label="state")
    t = (np.arange(states.shape[0]) + 1) * dt
    ax2 = axes[1]
    for i in motor or order[: min(4, len(order))]:
        ax2.plot(t, states[:, i], linewidth=1.0, label=f"neuron {i}")
    ax2.set_ylabel("motor" if motor else "state")
    ax2.legend(loc="upper right", fontsize=7, ncol=max(1, len(motor)))
    if actions is not None:
        actions = np.asarray(actions)
        for j in range(actions.shape[1]):
            axes[2].plot(t, actions[:, j], linewidth=1.0, label=f"a[{j}]")
        axes[2].set_ylabel("action")
        axes[2].legend(loc="upper right", fontsize=7, ncol=actions.shape[1])
    axes[-1].set_xlabel("time (s)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_connectivity(matrix: np.ndarray, out: str | Path, title: str = "") -> Path:
    """A reservoir's recurrent weight matrix (post × pre, sign-coloured) and its eigenvalues; PNG."""
    w = np.asarray(matrix, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
        raise ValueError(f"connectivity must be a square matrix, got shape {w.shape}")
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1.2, 1]})
    lim = float(np.abs(w).max()) or 1.0
    im = ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xlabel("presynaptic neuron")
    ax.set_ylabel("postsynaptic neuron")
    ax.set_title(f"recurrent weights ({int((w != 0).sum())} synapses, {w.shape[0]} neurons)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="weight")
    eig = np.linalg.eigvals(w) if w.shape[0] <= 2000 else None
    if eig is not None:
        rho = float(np.abs(eig).max())
        ax2.scatter(eig.real, eig.imag, s=4, alpha=0.6)
        circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200)) * rho
        ax2.plot(circle.real, circle.imag, color="black", linewidth=0.8)
        ax2.set_aspect("equal")
        ax2.set_title(f"eigenvalues (spectral radius {rho:.3f})")
        ax2.set_xlabel("Re")
        ax2.set_ylabel("Im")
    else:
        ax2.axis("off")
        ax2.text(0.5, 0.5, "spectrum not drawn (> 2000 neurons)", ha="center", va="center")
    fig.suptitle(title)
    fig.subplots_adjust(wspace=0.4)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def episode_activity(ckpt: str | Path, env_id: str | None, options: dict[str, Any], seed: int,
                     out: str | Path) -> dict[str, Any]:
    """Run one episode of a checkpoint with neuron recording and plot its activity; returns a summary."""
    import gymnasium as gym

    import liquid_control  # noqa: F401  (registers env ids)
    from liquid_control.learn.checkpoint import load_config, load_controller
    from liquid_control.learn.rollout import run_episode

    cfg = load_config(ckpt)
    controller = load_controller(ckpt)
    env_id = env_id or cfg["env_id"]
    env = gym.make(env_id, **options)
    try:
        ep = run_episode(env, controller, seed, record_neurons=True)
    finally:
        env.close()
    states = ep.neuron_states
    if states is None or states.shape[1] == 0:
        raise ValueError(f"checkpoint {ckpt} has no recurrent state to plot")
    steps = len(ep.actions)
    dt = float(ep.info.get("t", steps)) / steps
    groups = controller_groups(controller, states.shape[1])
    status = ("success" if ep.info.get("is_success")
              else "collision" if ep.info.get("collision") else "timeout")
    title = f"{Path(ckpt).name} on {ep.info.get('layout_id', env_id)} (seed {seed}): {status}"
    plot_activity(states, groups, out, dt=dt, title=title, actions=ep.actions)
    return {"out": str(out), "steps": steps, "neurons": int(states.shape[1]), "status": status,
            "groups": {g: len(v) for g, v in groups.items()}}


# ---- command line ------------------------------------------------------------------------------------

def add_arguments_wiring(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control plot wiring``."""
    parser.add_argument("checkpoint", help="checkpoint directory of a wired (LTC/CfC) policy")
    parser.add_argument("--out", required=True, help="PNG file to write")


def run_wiring(args: argparse.Namespace) -> int:
    """``liquid-control plot wiring CKPT --out PNG``."""
    from liquid_control.learn.checkpoint import load_policy

    policy, cfg = load_policy(args.checkpoint)
    wiring = find_wiring(policy)
    if wiring is None and hasattr(policy.core, "connectivity"):  # reservoir: its weight matrix
        w = policy.core.connectivity()
        plot_connectivity(w, args.out, title=Path(args.checkpoint).name)
        print(json.dumps({"out": str(args.out), "units": int(w.shape[0]), "synapses": int((w != 0).sum()),
                          "core": cfg["policy"].get("core")}))
        return 0
    if wiring is None:
        core = cfg["policy"].get("core")
        raise ValueError(f"checkpoint {args.checkpoint} (core {core!r}) has no wiring to draw")
    plot_wiring(wiring, args.out, title=Path(args.checkpoint).name)
    print(json.dumps({"out": str(args.out), "units": wiring.units, "inputs": wiring.input_dim,
                      "synapses": wiring.synapse_count, "sensory_synapses": wiring.sensory_synapse_count,
                      "groups": {g: len(v) for g, v in wiring.neuron_groups().items()}}))
    return 0


def add_arguments_activity(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control plot activity``."""
    parser.add_argument("checkpoint", help="checkpoint directory")
    parser.add_argument("--env", help="env id (default: the checkpoint's)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="layout split")
    parser.add_argument("--seed", type=int, default=0, help="episode reset seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an env option (repeatable)")
    parser.add_argument("--out", required=True, help="PNG file to write")


def run_activity(args: argparse.Namespace) -> int:
    """``liquid-control plot activity CKPT --out PNG``."""
    from liquid_control.evaluate.runner import interface_options
    from liquid_control.sim.options import merge, parse_overrides

    options = merge(interface_options(args.checkpoint), {"split": args.split})
    options = merge(options, parse_overrides(args.overrides))
    print(json.dumps(episode_activity(args.checkpoint, args.env, options, args.seed, args.out)))
    return 0
