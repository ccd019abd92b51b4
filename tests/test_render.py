"""Episode rendering: the MP4 is readable by ffmpeg with the expected frame count and size; panels."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liquid_control.cli import main
from liquid_control.render import NeuronPanel, render_episode

FAKE_DIR = str(Path(__file__).resolve().parent / "evaluate")
FAKE_ENV = "fake_nav:FakeNav-v0"


@pytest.fixture
def fake_env(monkeypatch) -> str:
    monkeypatch.syspath_prepend(FAKE_DIR)
    return FAKE_ENV


def make_checkpoint(path: Path) -> Path:
    """A tiny untrained LTC checkpoint for the fake env (see tests/evaluate/fake_nav.py)."""
    if FAKE_DIR not in sys.path:
        sys.path.insert(0, FAKE_DIR)
    import fake_nav

    return fake_nav.make_checkpoint(path)


def probe(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) of a video as ffmpeg (bundled with imageio-ffmpeg) reads it."""
    import imageio_ffmpeg

    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path), "-map", "0:v:0", "-c", "copy",
                        "-f", "null", "-"], capture_output=True, text=True, check=True)
    size = re.search(r"Video: .*?(\d{2,5})x(\d{2,5})", r.stderr)
    frames = re.findall(r"frame=\s*(\d+)", r.stderr)
    assert size and frames, r.stderr
    return int(frames[-1]), int(size.group(1)), int(size.group(2))


def test_render_mp4_frame_count_and_size(fake_env, tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "ep.mp4"
    summary = render_episode(str(ckpt), fake_env, {"split": "test"}, seed=3, out=out, progress=False)
    frames, w, h = probe(out)
    assert frames == summary["frames"] == summary["steps"] > 0
    assert (w, h) == (summary["width"], summary["height"]) and w % 16 == 0 and h % 16 == 0
    assert summary["neurons"] == 12 and summary["fps"] == pytest.approx(10.0) and summary["replay_matches"]


def test_render_cli_gif_and_errors(fake_env, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ep.gif"
    assert main(["render", "--policy", "random", "--env", fake_env, "--seed", "1", "--out", str(out)]) == 0
    import imageio.v3 as iio

    frames = iio.imread(out, index=None)
    assert frames.ndim == 4 and frames.shape[0] >= 1
    capsys.readouterr()
    assert main(["render", "--policy", "random", "--env", fake_env, "--out", str(tmp_path / "x.avi")]) == 2
    assert main(["render", "--policy", str(tmp_path / "nope"), "--env", fake_env,
                 "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(["render", "--policy", "random", "--env", "NoSuchEnv-v0",
                 "--out", str(tmp_path / "x.mp4")]) == 2
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["render", "--policy", "random", "--env", fake_env, "--gui",
                 "--out", str(tmp_path / "g.mp4")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and ".mp4 or .gif" in errors[0] and "not found" in errors[1]
    assert "needs a display" in errors[3]


def test_neuron_panel_fills_in_and_highlights_motor_neurons():
    groups = {"motor": [0, 1], "command": [2, 3, 4], "inter": [5, 6, 7, 8, 9]}
    steps = 40
    states = np.sin(np.linspace(0, 6, steps)[:, None] + np.arange(10)[None, :])
    panel = NeuronPanel(640, 208, groups, states.min(0), states.max(0), steps)
    blank = panel.image()
    for t in range(steps // 2):
        panel.update(t, states[t])
    half = panel.image()
    for t in range(steps // 2, steps):
        panel.update(t, states[t])
    full = panel.image()
    region = (slice(panel.y0, panel.y0 + panel.rh), slice(panel.x0, panel.x0 + panel.rw))
    changed = lambda a, b: np.any(a[region] != b[region], axis=(0, 2))  # noqa: E731 - columns that differ
    assert changed(blank, half)[: panel.rw // 2 - 4].all()
    assert not changed(blank, half)[panel.rw // 2 + 4:].any()
    assert changed(half, full)[panel.rw // 2 + 4:].all()
    ya, yb = panel.motor
    assert panel.y0 <= ya < yb < panel.y0 + panel.rh * 3 // 10  # motor rows on top (2 of 10 neurons)
    assert tuple(full[ya - 1, panel.x0 + 5]) == (255, 127, 14)
    off = NeuronPanel(640, 208, None, None, None, steps, title="no neuron state")
    off.update(0, None)
    assert off.image().shape == (208, 640, 3)
