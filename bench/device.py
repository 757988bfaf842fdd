"""What every bench/results/*.json shares: the device name it records, and how it is written."""

import json
import platform
from pathlib import Path


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_result(result: dict, out, show=None):
    """Write bench/results/NAME.json whole or not at all (a temporary file renamed into place), and print
    it (only the keys in `show`, if given)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(result if show is None else {k: result[k] for k in show}, indent=2))
