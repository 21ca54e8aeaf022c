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


def test_bayesian_speed_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    """The Bayesian speed bench times both engines on both input sets (its figures are not checked)."""
    module = importlib.import_module("bench.bayesian_speed")
    assert module.main(["--pairs", "20", "--runs", "1", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "conversion: ours Beta-Binomial (exact)" in out
    assert "ctr: ours normal, relative lift" in out
    assert out.count("tests/s") == 4
