"""liquid-control: liquid time-constant policies for drones and rovers in PyBullet."""

__version__ = "0.1.0"

from liquid_control.sim import registration as _registration  # noqa: E402,F401  (registers env ids)
