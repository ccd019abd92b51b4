#!/usr/bin/env python
"""Render one episode to MP4/GIF (pipeline wrapper of `liquid-control render`, same arguments).

    python scripts/render.py --policy expert --env LiquidControl/RoverNav-v0 --seed 3 --out rover.mp4
"""

from __future__ import annotations

import sys

from liquid_control.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["render", *sys.argv[1:]]))
