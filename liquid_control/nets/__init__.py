"""Networks: liquid cells (LTC, CfC), wirings, baselines and policy networks (pure torch)."""

from liquid_control.nets.cfc import CfC, CfCCell, WiredCfCCell
from liquid_control.nets.convert import from_ncps
from liquid_control.nets.core import KINDS, RecurrentCore, make_core, size_for_budget
from liquid_control.nets.ltc import LTC, LTCCell
from liquid_control.nets.params import count_params
from liquid_control.nets.wiring import NCP, AutoNCP, FullyConnected, RandomSparse, Wiring, wiring_from_config

__all__ = [
    "KINDS",
    "LTC",
    "NCP",
    "AutoNCP",
    "CfC",
    "CfCCell",
    "FullyConnected",
    "LTCCell",
    "RandomSparse",
    "RecurrentCore",
    "WiredCfCCell",
    "Wiring",
    "count_params",
    "from_ncps",
    "make_core",
    "size_for_budget",
    "wiring_from_config",
]
