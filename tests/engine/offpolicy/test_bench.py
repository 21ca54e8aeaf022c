"""Smoke test: the validity bench runs end to end on the Open Bandit logs and a few synthetic seeds.

Its numbers are not checked here (they are the bench's to report), only that both tables come out
with one row per campaign and estimator.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import REPO, SHARED_DATA, shared_dataset

BENCH = REPO / "bench" / "offpolicy_validity.py"


def test_bench_prints_both_tables_on_small_settings(capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_dataset(SHARED_DATA / "open-bandit-dataset")
    spec = importlib.util.spec_from_file_location("offpolicy_validity", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    small = ["--bootstrap", "100", "--joint", "10", "--seeds", "3", "--synthetic-n", "2000", "--ranking-seeds", "3"]
    assert module.main(["--data", str(data), *small, "--synthetic-bootstrap", "100", "--ranking-n", "200"]) == 0
    out = capsys.readouterr().out
    for campaign in ("men", "women"):
        assert f"| {campaign} | bts actual (own logs) |" in out
        for estimator in ("IPS", "SNIPS", "DR"):
            assert f"| {campaign} | {estimator} from random logs |" in out
    for campaign in ("men", "women"):
        assert f"| {campaign} | random actual (own logs) |" in out
        assert f"| {campaign} | DR from bts logs, w clipped at 10 |" in out
    assert "| 90 % on 5 best |" in out
    assert "Ranking the 4 targets" in out
    assert "| cascade | 27.221 % |" in out  # the ranking table's exact true CTR under cascade clicks
