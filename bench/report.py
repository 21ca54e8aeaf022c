"""Writing a benchmark's figures: medians with min-max, and one JSON file per benchmark in bench/results/.

No Django: every bench script can use it. The JSON carries the command, the machine and the date,
so the documentation's tables can say where each figure comes from; ``benchmarks_markdown`` reads
them back for the documentation's Benchmarks page (docs/hooks.py renders it when the site is built).
"""

from __future__ import annotations

import ast
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
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
        "figures": _plain(figures),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def _plain(value: Any) -> Any:
    """`value` with every Spread, at any depth of mappings and lists, as its dict."""
    if isinstance(value, Spread):
        return asdict(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# Reading the results back: the documentation's Benchmarks page (docs/hooks.py renders it at build time).

SPREAD_KEYS = frozenset({"median", "low", "high", "runs"})
FOLDED_ROWS = 20  # longer tables of records are shown folded


@dataclass(frozen=True)
class Script:
    """A benchmark script of bench/: its file name, what it measures (its docstring's first paragraph)
    and the command that runs it (the docstring's first `python bench/...` line, without environment
    variables in front)."""

    name: str
    summary: str
    command: str


def scripts(folder: Path | None = None) -> list[Script]:
    """Every runnable benchmark in `folder` (default bench/): the .py files with a `__main__` block."""
    folder = folder or RESULTS.parent
    found = []
    for path in sorted(folder.glob("*.py")):
        module = ast.parse(path.read_text())
        if not any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in module.body):
            continue
        docstring = ast.get_docstring(module) or ""
        summary = " ".join(docstring.split("\n\n")[0].split())
        # A usage line may go on over the next lines with a trailing backslash.
        usage = re.search(rf"python bench/{re.escape(path.name)}(?:[^\n]*\\\n)*[^\n]*", docstring)
        command = " ".join(usage.group(0).replace("\\\n", " ").split()) if usage else f"python bench/{path.name}"
        found.append(Script(path.name, summary, command))
    return found


def documents(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every result document in `folder` (default bench/results/), by file name."""
    folder = folder or RESULTS
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def script_of(document: Mapping[str, Any]) -> str | None:
    """The bench script a result document was written by, from its recorded command."""
    found = re.search(r"bench/(\w+\.py)", str(document.get("command", "")))
    return found.group(1) if found else None


def number(value: Any) -> str:
    """A figure as the tables show it: whole numbers with thousands separators, four significant digits
    for the others."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)


def _is_spread(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == SPREAD_KEYS


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _spread_text(value: Mapping[str, Any]) -> str:
    runs = int(value["runs"])
    spread = "" if runs == 1 else f"{number(value['low'])}–{number(value['high'])}, "
    return f"{number(value['median'])} ({spread}{runs} run{'' if runs == 1 else 's'})"


def _value_text(value: Any) -> str:
    if _is_spread(value):
        return _spread_text(value)
    if isinstance(value, list):
        return ", ".join(_value_text(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {_value_text(item)}" for key, item in value.items())
    return number(value)


def figure_rows(figures: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(figure, value) rows of a result document's figures: a Spread as "median (low–high, n runs)",
    nested mappings with their keys joined by " · ", lists of plain values on one line. Lists of
    records (e.g. one per day) are left out: ``record_tables`` shows them."""
    rows: list[tuple[str, str]] = []
    for key, value in figures.items():
        name = f"{prefix} · {key}" if prefix else str(key)
        if isinstance(value, Mapping) and not _is_spread(value):
            rows.extend(figure_rows(value, name))
        elif not _is_records(value):
            rows.append((name, _value_text(value)))
    return rows


def record_tables(figures: Mapping[str, Any], prefix: str = "") -> list[tuple[str, list[str], list[list[str]]]]:
    """(name, columns, rows) of every list of records in the figures, one row per record."""
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    for key, value in figures.items():
        name = f"{prefix} · {key}" if prefix else str(key)
        if isinstance(value, Mapping) and not _is_spread(value):
            tables.extend(record_tables(value, name))
        elif _is_records(value):
            flat = [dict(figure_rows(record)) for record in value]
            columns = list(dict.fromkeys(column for record in flat for column in record))
            tables.append((name, columns, [[record.get(column, "–") for column in columns] for record in flat]))
    return tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(_cell(column) for column in columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows),
    ]


def run_markdown(document: Mapping[str, Any]) -> str:
    """One recorded run as Markdown: when, the command, the machine, then its figures as a table."""
    machine = document.get("machine") or {}
    where = ", ".join(
        part
        for part in (
            f"{machine['cpus']} CPUs" if machine.get("cpus") else "",
            str(machine.get("system") or ""),
            f"Python {machine['python']}" if machine.get("python") else "",
            f"load average {number(machine['load_average_1m'])} at the end" if "load_average_1m" in machine else "",
        )
        if part
    )
    date = str(document.get("date", "")).replace("T", " ").replace("Z", " UTC")
    figures = document.get("figures") or {}
    lines = [
        f"Latest recorded run: **{date}** on {where or 'an unrecorded machine'}, with `{document.get('command', '')}`.",
        "",
        *_table(["figure", "value"], figure_rows(figures)),
    ]
    for name, columns, rows in record_tables(figures):
        if len(rows) <= FOLDED_ROWS:
            lines += ["", f"{name}:", "", *_table(columns, rows)]
        else:  # a long list (one row per seed, say) starts folded: Material's collapsible block
            folded = ["    " + line for line in _table(columns, rows)]
            lines += ["", f'??? note "{name}: {len(rows):,} rows"', "", *folded]
    return "\n".join(lines)


def benchmarks_markdown(bench: Path | None = None, results: Path | None = None) -> str:
    """The Benchmarks page's generated part: one section per benchmark script, with its latest recorded
    run from bench/results/ or "No recorded run yet", then any result whose script is not in bench/."""
    runs = documents(results)
    by_script: dict[str, dict[str, Any]] = {}
    for document in runs:
        name = script_of(document)
        if name and str(document.get("date", "")) >= str(by_script.get(name, {}).get("date", "")):
            by_script[name] = document
    sections = []
    known = set()
    for script in scripts(bench):
        known.add(script.name)
        recorded = by_script.get(script.name)
        body = run_markdown(recorded) if recorded else "No recorded run yet."
        sections.append(f"### `bench/{script.name}`\n\n{script.summary}\n\nRun: `{script.command}`\n\n{body}\n")
    for document in runs:
        if script_of(document) not in known:
            sections.append(f"### {document.get('benchmark', 'unnamed')}\n\n{run_markdown(document)}\n")
    return "\n".join(sections)
