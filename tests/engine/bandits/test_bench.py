"""Smoke test: the regret bench runs end to end on small settings and prints its tables.

Its numbers are the bench's to report; only the table shapes and the period rows are checked.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import REPO

BENCH = REPO / "bench" / "bandit_regret.py"


def test_bench_prints_the_effect_and_aa_tables(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bandit_regret", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--seeds", "3", "--aa-seeds", "2", "--periods", "3", "--users", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| better arm has the larger weight by the end |" in out
    for period in range(3):
        assert f"\n| {period} | " in out
    assert "\n| 3 | " not in out
    assert "| stationary 5.0% |" in out
    assert "| trend 7.0% -> 3.0% |" in out
