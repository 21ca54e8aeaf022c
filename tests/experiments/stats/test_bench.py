"""Smoke test: the calibration bench runs end to end on a tiny simulation (its numbers are not checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "aa_calibration.py"


def test_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("aa_calibration", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sims", "100", "--throughput-n", "2000"]) == 0
    out = capsys.readouterr().out
    assert "A/A false-positive rate" in out
    assert "Throughput" in out
