"""Episode videos: top-down map, chase camera and a live panel of the liquid neurons' activity.

``liquid-control render --policy CKPT|expert|random --env ID [--split test] [--seed S] [--set k=v]...
--out FILE.mp4|.gif [--gui]``

Each frame stacks a header line (policy, layout, time, outcome), the env's top-down view
(``env.render()`` with ``render_mode="rgb_array"``) beside its chase camera (``env.unwrapped.render_chase()``
when the env has one) and, below, the controller's state over time as a heat map that fills in as the
episode runs (one row per neuron, per-neuron colour scale, motor neurons on top and highlighted; groups
from the policy's wiring). The episode is run closed loop once without drawing (its length, actions and
each neuron's range), then replayed from the same seed with the recorded actions while drawing (episodes
are deterministic given the seed; ``replay_matches`` in the summary confirms it). Frames are composed
with numpy/PIL and streamed to imageio (imageio-ffmpeg for MP4): fast, and memory stays bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from liquid_control.learn.rollout import ControllerSpec, make_controller, run_episode

VIEW_H = 384  # height of the camera views
PANEL_H = 208  # height of the neuron panel
HEADER_H = 28
CHASE_SIZE = (192, 144)  # chase-camera render size (TinyRenderer costs ~1 ms per 1,000 pixels)
CHASE_HZ = 15.0  # the chase view is refreshed at most this often (reused in between)
LABEL_W = 108  # label column of the neuron panel
BG = (24, 24, 28)
FG = (235, 235, 235)
MOTOR_RGB = (255, 127, 14)
GROUP_RGB = {"motor": MOTOR_RGB, "command": (180, 140, 220), "inter": (100, 170, 230),
             "state": (100, 170, 230), "action": (100, 170, 230)}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _colormap_lut(name: str = "RdBu_r") -> np.ndarray:
    """A (256, 3) uint8 lookup table of a matplotlib colormap (no figure involved)."""
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def _pad16(n: int) -> int:
    return (n + 15) // 16 * 16


def _resize_h(img: np.ndarray, height: int) -> np.ndarray:
    """Resize an RGB image to ``height`` keeping its aspect ratio."""
    img = np.asarray(img)[..., :3]
    if img.shape[0] == height:
        return img
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return np.asarray(Image.fromarray(img.astype(np.uint8)).resize((width, height), Image.BILINEAR))


class NeuronPanel:
    """The live neuron-activity panel: a heat map (neurons × time) that fills in step by step.

    ``groups`` maps group names to state indices (see ``plots.state_groups``); ``lo``/``hi`` give each
    neuron's colour range; ``steps`` is the episode length the time axis spans.
    """

    def __init__(self, width: int, height: int, groups: dict[str, list[int]] | None, lo: np.ndarray | None,
                 hi: np.ndarray | None, steps: int,
                 title: str = "neuron activity (per-neuron scale, blue low / red high)") -> None:
        from liquid_control.plots import row_order

        self.width, self.height = width, height
        self.x0, self.y0 = LABEL_W, 20
        self.rw, self.rh = width - LABEL_W - 10, height - 20 - 8
        self.enabled = groups is not None and lo is not None and hi is not None
        self.motor: tuple[int, int] | None = None  # pixel rows (first, last) of the motor neurons
        base = Image.new("RGB", (width, height), BG)
        draw = ImageDraw.Draw(base)
        draw.text((8, 3), title, fill=FG, font=_font(13))
        self.steps = max(1, int(steps))
        if self.enabled:
            order, spans = row_order(groups)  # type: ignore[arg-type]
            self.order = np.asarray(order)
            n = len(order)
            # row heights: motor neurons get a larger share so they stay visible among many neurons
            motor_n = next((b - a for g, a, b in spans if g == "motor"), 0)
            weights = np.ones(n)
            weights[:motor_n] = max(1.0, 0.25 * n / motor_n) if motor_n and motor_n < 0.25 * n else 1.0
            edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum() * self.rh])
            row = np.searchsorted(edges, np.arange(self.rh) + 0.5, side="right") - 1
            self.row_of_y = np.minimum(row, n - 1)
            self.step_of_x = np.minimum(np.arange(self.rw) * self.steps // self.rw, self.steps - 1)
            self.lo = np.asarray(lo, dtype=np.float64)[self.order]
            span = np.asarray(hi, dtype=np.float64)[self.order] - self.lo
            self.span = np.where(span > 1e-9, span, 1.0)
            self.canvas = np.empty((self.rh, self.rw, 3), np.uint8)
            self.canvas[:] = (48, 48, 54)  # not yet played
            self.lut = _colormap_lut()
            font = _font(12)
            for g, a, b in spans:
                ya = self.y0 + int(np.ceil(edges[a] - 0.5))
                yb = self.y0 + int(np.ceil(edges[b] - 0.5)) - 1
                color = GROUP_RGB.get(g, FG)
                draw.rectangle([LABEL_W - 8, ya, LABEL_W - 3, yb], fill=color)
                label = f"{g} ({b - a})"
                draw.text((6, (ya + yb) // 2 - 7), label, fill=color, font=font)
                if g == "motor":
                    self.motor = (ya, yb)
                    draw.rectangle([self.x0 - 1, ya - 1, self.x0 + self.rw, yb + 1], outline=MOTOR_RGB,
                                   width=2)
            self._rows = [int(np.ceil(edges[b] - 0.5)) - 1 for _, _, b in spans[:-1]]
            self.canvas[self._rows] = (10, 10, 10)
        self.base = np.asarray(base)
        self.filled, self.cursor = -1, 0

    def update(self, step: int, state: np.ndarray | None) -> None:
        """Record the state after ``step`` (0-based): paints that step's pixel columns of the heat map."""
        if not self.enabled or state is None or step >= self.steps:
            return
        v = np.asarray(state, dtype=np.float64).ravel()[self.order]
        u = np.clip((v - self.lo) / self.span, 0.0, 1.0)
        column = self.lut[(u * 255).astype(np.int64)][self.row_of_y]  # (rh, 3)
        a, b = np.searchsorted(self.step_of_x, [step, step + 1])
        self.canvas[:, a:b] = column[:, None]
        self.canvas[self._rows, a:b] = (10, 10, 10)  # group separators
        self.filled = step
        self.cursor = max(int(b) - 1, 0)

    def image(self) -> np.ndarray:
        """The panel as an (H, W, 3) uint8 image up to the last recorded step."""
        img = self.base.copy()
        if not self.enabled:
            return img
        region = img[self.y0:self.y0 + self.rh, self.x0:self.x0 + self.rw]
        region[:] = self.canvas
        if self.filled >= 0:
            region[:, self.cursor] = (255, 255, 255)
        if self.motor is not None:  # keep the motor highlight visible over the heat map
            ya, yb = self.motor
            img[ya - 1, self.x0 - 1:self.x0 + self.rw + 1] = MOTOR_RGB
            img[yb + 1, self.x0 - 1:self.x0 + self.rw + 1] = MOTOR_RGB
        return img


def _sized(fn: Any, **size: int) -> np.ndarray:
    """``fn(**size)`` when the env's render function takes a size, else ``fn()``."""
    try:
        return fn(**size)
    except TypeError:
        return fn()


class _Replay:
    """Replays a recorded episode's actions (and neuron states) as a Controller."""

    def __init__(self, actions: np.ndarray, states: np.ndarray | None) -> None:
        self.actions, self.states, self.k = actions, states, 0

    def reset(self, env: gym.Env, obs: np.ndarray) -> None:
        self.k = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.k += 1
        return self.actions[min(self.k - 1, len(self.actions) - 1)]

    def neuron_state(self) -> np.ndarray | None:
        return None if self.states is None else self.states[min(self.k, len(self.states)) - 1]


def _header(width: int, text: str) -> np.ndarray:
    img = Image.new("RGB", (width, HEADER_H), BG)
    ImageDraw.Draw(img).text((8, 6), text, fill=FG, font=_font(14))
    return np.asarray(img)


def _outcome(info: dict[str, Any]) -> str:
    if info.get("is_success"):
        return "goal reached"
    if info.get("collision"):
        return "collision"
    if info.get("timeout"):
        return "timeout"
    return "running"


def render_episode(
    policy: ControllerSpec,
    env_id: str,
    options: dict[str, Any],
    seed: int,
    out: str | Path,
    gui: bool = False,
    fps: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Render one closed-loop episode of ``policy`` to ``out`` (.mp4 or .gif); returns a JSON summary."""
    import imageio.v2 as imageio
    from tqdm.auto import tqdm

    import liquid_control  # noqa: F401  (registers env ids)
    from liquid_control.plots import controller_groups

    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"--out must end in .mp4 or .gif, got {str(out)!r}")
    if gui:
        from liquid_control.sim.world import has_display

        if not has_display():
            raise ValueError("--gui needs a display (DISPLAY/WAYLAND_DISPLAY is not set)")
    started = time.perf_counter()
    controller = make_controller(policy)
    try:
        env = gym.make(env_id, render_mode="human" if gui else "rgb_array", **options)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make env {env_id!r}: {exc}") from None
    try:
        # pass 1: the episode's length and each neuron's range (no drawing)
        first = run_episode(env, controller, seed, record_neurons=True)
        steps = len(first.actions)
        states = first.neuron_states
        has_states = states is not None and states.ndim == 2 and states.shape[1] > 0
        dt = float(first.info.get("t", 0.0)) / steps if first.info.get("t") else 0.0
        fps = round(float(fps or (1.0 / dt if dt > 0 else env.metadata.get("render_fps", 20))), 3)
        if has_states:  # the neurons' activity; without a recurrent state, the actions instead
            trace = states
            groups = controller_groups(controller, states.shape[1])
            title = "neuron activity (per-neuron scale, blue low / red high)"
        else:
            trace = first.actions
            groups = {"action": list(range(trace.shape[1]))}
            title = f"actions (policy '{policy}' has no neurons; blue low / red high)"
        lo, hi = np.percentile(trace, 1, axis=0), np.percentile(trace, 99, axis=0)
        unwrapped = env.unwrapped
        topdown_fn = getattr(unwrapped, "render_topdown", None)
        chase_fn = getattr(unwrapped, "render_chase", None)
        topdown_fn = topdown_fn if callable(topdown_fn) else None
        chase_fn = chase_fn if callable(chase_fn) else None
        name = (json.dumps(policy) if isinstance(policy, dict)
                else policy if policy in ("expert", "random") else Path(policy).name)

        chase_every = max(1, round(fps / CHASE_HZ))
        writer = None
        gif_frames: list[np.ndarray] = []
        layout: dict[str, Any] = {}
        panel: NeuronPanel | None = None
        bar = tqdm(total=steps, desc="render", disable=not progress, leave=False)
        k = {"step": 0}

        def on_step(env_: gym.Env, obs: np.ndarray, action: np.ndarray, info: dict) -> None:
            nonlocal writer, panel
            views = []
            # the map: the env's top-down view (also in GUI mode); its plain render() when it has
            # neither a map nor a chase camera (render() of a map-less env may itself be the chase view)
            top = (_sized(topdown_fn, px=VIEW_H) if topdown_fn is not None
                   else env_.render() if chase_fn is None else None)
            if isinstance(top, np.ndarray) and top.ndim == 3:
                views.append(_resize_h(top, VIEW_H))
            if chase_fn is not None:
                if k["step"] % chase_every == 0 or "chase" not in layout:
                    layout["chase"] = _resize_h(_sized(chase_fn, width=CHASE_SIZE[0], height=CHASE_SIZE[1]),
                                                VIEW_H)
                views.append(layout["chase"])
            if "width" not in layout:  # fix the frame geometry on the first frame
                layout["views_w"] = sum(v.shape[1] for v in views)
                layout["width"] = _pad16(max(layout["views_w"], 640))
                layout["height"] = _pad16(HEADER_H + (VIEW_H if views else 0) + PANEL_H)
                panel = NeuronPanel(layout["width"], PANEL_H, groups, lo, hi, steps, title)
            assert panel is not None
            panel.update(k["step"], replay.neuron_state() if has_states else action)
            frame = np.zeros((layout["height"], layout["width"], 3), np.uint8)
            frame[:] = BG
            text = (f"{name} | {info.get('layout_id', env_id)} | t = {float(info.get('t', 0.0)):5.1f} s | "
                    f"{_outcome(info)}")
            frame[:HEADER_H] = _header(layout["width"], text)
            x = (layout["width"] - layout["views_w"]) // 2
            for v in views:
                w = min(v.shape[1], layout["width"] - x)
                frame[HEADER_H:HEADER_H + VIEW_H, x:x + w] = v[:, :w]
                x += w
            y = HEADER_H + (VIEW_H if views else 0)
            frame[y:y + PANEL_H] = panel.image()
            if out.suffix.lower() == ".mp4":
                if writer is None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    writer = imageio.get_writer(out, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                                quality=7, pixelformat="yuv420p", macro_block_size=16)
                writer.append_data(frame)
            else:
                gif_frames.append(np.asarray(Image.fromarray(frame).reduce(2)))
            k["step"] += 1
            bar.update()
            if gui:
                time.sleep(max(0.0, 1.0 / fps - 0.002))

        try:
            replay = _Replay(first.actions, states if has_states else None)
            second = run_episode(env, replay, seed, on_step=on_step, max_steps=steps)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if out.suffix.lower() == ".gif":
            import imageio.v3 as iio

            out.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(out, np.stack(gif_frames), duration=1000.0 / fps, loop=0)
    finally:
        env.close()
    same = _outcome(second.info) == _outcome(first.info) and len(second.actions) == steps
    if same and first.positions is not None and second.positions is not None:
        same = bool(np.allclose(first.positions, second.positions, atol=1e-6))
    if not same:
        print("render: warning: the replayed episode differs from the closed-loop one (env not deterministic "
              "given the seed?); the video shows the replay", file=sys.stderr)
    return {
        "out": str(out), "frames": k["step"], "width": layout.get("width"), "height": layout.get("height"),
        "fps": fps, "steps": steps, "outcome": _outcome(first.info), "layout_id": first.info.get("layout_id"),
        "replay_matches": same, "neurons": int(states.shape[1]) if has_states else 0,
        "chase_camera": chase_fn is not None, "seconds": round(time.perf_counter() - started, 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``liquid-control render``."""
    parser.add_argument("--policy", required=True, help="checkpoint directory, 'expert' or 'random'")
    parser.add_argument("--env", required=True, help="env id, e.g. LiquidControl/RoverNav-v0")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="layout split")
    parser.add_argument("--seed", type=int, default=0, help="episode reset seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an env option (repeatable)")
    parser.add_argument("--fps", type=float, default=None, help="video frame rate (default: real time)")
    parser.add_argument("--gui", action="store_true", help="open the live PyBullet window (needs a display)")
    parser.add_argument("--out", required=True, help="video file: .mp4 or .gif")


def run(args: argparse.Namespace) -> int:
    """``liquid-control render``: write the video, print a JSON summary."""
    from liquid_control.evaluate.runner import check_policy, interface_options
    from liquid_control.sim.options import merge, parse_overrides

    check_policy(args.policy)
    options = merge(interface_options(args.policy), {"split": args.split})
    options = merge(options, parse_overrides(args.overrides))
    print(json.dumps(render_episode(args.policy, args.env, options, args.seed, args.out, gui=args.gui,
                                    fps=args.fps)))
    return 0
