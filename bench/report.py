"""Writing a benchmark's figures: medians with min-max, and one JSON file per benchmark in bench/results/.

No Django: every bench script can use it. The JSON carries the command, the machine and the date,
so the documentation's tables can say where each figure comes from.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Spread:
    """Median with min and max of repeated measurements (seconds, or any unit the caller names)."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, digits: int = 3) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f}, {self.runs} runs)"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def write(name: str, figures: dict[str, Any]) -> Path:
    """Store `figures` as bench/results/<name>.json with the command line, machine and UTC date."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "benchmark": name,
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "figures": {k: asdict(v) if isinstance(v, Spread) else v for k, v in figures.items()},
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
