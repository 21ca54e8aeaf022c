"""bench/report.py reads the benchmarks' JSON back into the documentation's Benchmarks page."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import report
from bench.report import Spread, benchmarks_markdown, figure_rows, number, record_tables, scripts

SCRIPT = '''"""How fast the widget spins.

More words about the protocol.

    DATABASE_URL=postgres://localhost/x python bench/widget.py --turns 3 \\\\
        --fast
"""

if __name__ == "__main__":
    pass
'''


def _bench(tmp_path: Path) -> tuple[Path, Path]:
    bench, results = tmp_path / "bench", tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    (bench / "widget.py").write_text(SCRIPT)
    (bench / "gadget.py").write_text('"""Gadget throughput."""\n\nif __name__ == "__main__":\n    pass\n')
    (bench / "helpers.py").write_text('"""Shared helpers, not a benchmark."""\n')
    return bench, results


def _document(command: str, date: str, figures: dict[str, object]) -> dict[str, object]:
    machine = {"cpus": 2, "python": "3.11.7", "system": "Linux x86_64", "load_average_1m": 0.5}
    return {"benchmark": "widget", "command": command, "date": date, "machine": machine, "figures": figures}


def test_scripts_are_the_bench_files_with_a_main_block_with_their_summary_and_command(tmp_path: Path) -> None:
    bench, _ = _bench(tmp_path)
    found = {script.name: script for script in scripts(bench)}
    assert sorted(found) == ["gadget.py", "widget.py"]
    assert found["widget.py"].summary == "How fast the widget spins."
    assert found["widget.py"].command == "python bench/widget.py --turns 3 --fast"
    assert found["gadget.py"].command == "python bench/gadget.py"


def test_numbers_read_like_the_tables_elsewhere() -> None:
    assert [number(v) for v in (1_000_000, 1890.0, 0.0050510, 3.344984, 27_512.4, True, None)] == [
        "1,000,000", "1,890", "0.005051", "3.345", "27,512", "yes", "–",
    ]  # fmt: skip


def test_figures_flatten_to_rows_with_spreads_and_nested_keys() -> None:
    figures = {
        "events": 1_000_000,
        "recompute": {"median": 3.5, "low": 3.25, "high": 4.0, "runs": 3},
        "once": {"median": 0.25, "low": 0.25, "high": 0.25, "runs": 1},
        "fpr": {"rate": 0.03, "wilson_95": [0.0138, 0.0639]},
        "by_day": [{"day": 0, "rate": 0.5}, {"day": 1, "rate": 0.25}],
    }
    assert figure_rows(figures) == [
        ("events", "1,000,000"),
        ("recompute", "3.5 (3.25–4, 3 runs)"),
        ("once", "0.25 (1 run)"),
        ("fpr · rate", "0.03"),
        ("fpr · wilson_95", "0.0138, 0.0639"),
    ]
    assert record_tables(figures) == [("by_day", ["day", "rate"], [["0", "0.5"], ["1", "0.25"]])]


def test_each_benchmark_shows_its_latest_run_or_says_it_has_none(tmp_path: Path) -> None:
    bench, results = _bench(tmp_path)
    old = _document("python bench/widget.py", "2026-12-01T10:00:00Z", {"turns": 1})
    new = _document("python bench/widget.py --turns 3", "2026-12-07T19:57:43Z",
                    {"turns": 3, "spin": {"median": 0.125, "low": 0.1, "high": 0.2, "runs": 5}})  # fmt: skip
    (results / "widget_old.json").write_text(json.dumps(old))
    (results / "widget.json").write_text(json.dumps(new))
    page = benchmarks_markdown(bench, results)
    gadget, widget = page.split("### `bench/widget.py`")
    assert "No recorded run yet." in gadget
    assert "Run: `python bench/widget.py --turns 3 --fast`" in widget
    assert (
        "Latest recorded run: **2026-12-07 19:57:43 UTC** on 2 CPUs, Linux x86_64, Python 3.11.7, load average 0.5 "
        "at the end, with `python bench/widget.py --turns 3`."
    ) in widget
    assert "| turns | 3 |" in widget
    assert "| spin | 0.125 (0.1–0.2, 5 runs) |" in widget
    assert "| turns | 1 |" not in widget


def test_a_result_whose_script_is_not_in_bench_is_still_shown(tmp_path: Path) -> None:
    bench, results = _bench(tmp_path)
    (results / "elsewhere.json").write_text(json.dumps(_document("python other.py", "2026-12-07T00:00:00Z", {"x": 2})))
    page = benchmarks_markdown(bench, results)
    assert "### widget\n" in page
    assert "| x | 2 |" in page


def test_the_json_the_benches_write_renders(tmp_path: Path) -> None:
    bench, results = _bench(tmp_path)
    spread = Spread.of([0.2, 0.1, 0.3])
    document = _document("python bench/gadget.py", "2026-12-07T00:00:00Z", {"spin": asdict(spread)})
    (results / "gadget.json").write_text(json.dumps(document))
    assert "| spin | 0.2 (0.1–0.3, 3 runs) |" in benchmarks_markdown(bench, results)


def test_spreads_nested_in_the_figures_are_written_as_numbers(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    spread = Spread.of([2.0, 1.0, 3.0])
    path = report.write("nested", {"load": {"rate": 400}, "400/s": {"SIGKILL": {"lost": spread}}, "runs": [spread]})
    figures = json.loads(path.read_text())["figures"]
    assert figures["400/s"]["SIGKILL"]["lost"] == asdict(spread) == figures["runs"][0]
    assert ("400/s · SIGKILL · lost", "2 (1–3, 3 runs)") in figure_rows(figures)


def test_the_repositorys_own_scripts_and_results_render() -> None:
    page = benchmarks_markdown()
    for script in scripts():
        assert f"### `bench/{script.name}`" in page
    assert "Latest recorded run:" in page  # bench/results/ holds at least results_latency.json
