"""The shipped results were evaluated with the package versions that `make` installs."""

import json
import re
from pathlib import Path

from liquid_control.provenance import PACKAGES, platform_info

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    torch_pin = re.search(r"^TORCH_PIN \?= torch==(\S+)", (ROOT / "Makefile").read_text(), re.M)
    pins["torch"] = torch_pin.group(1)
    return pins


def test_results_record_the_pinned_versions():
    """Every results file that records its platform names the versions of constraints.txt (torch: the
    Makefile pin): re-evaluating with other versions means updating the pins with the results."""
    pins = _pins()
    checked = 0
    for path in sorted((ROOT / "results").rglob("*.json")):
        platform = json.loads(path.read_text()).get("platform")
        if not platform:
            continue  # evaluated before results carried their platform
        checked += 1
        for name, version in platform["packages"].items():
            key = name.lower().replace("_", "-")
            if version is None or key not in pins:
                continue
            where = path.relative_to(ROOT)
            assert version.split("+")[0] == pins[key], f"{where}: {name} {version}, pinned {pins[key]}"
    assert checked > 0


def test_platform_info_lists_every_package():
    info = platform_info()
    assert set(info["packages"]) == set(PACKAGES) and info["python"] and info["cpu"]
