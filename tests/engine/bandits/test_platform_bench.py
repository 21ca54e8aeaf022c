"""The platform bandit bench's arithmetic (``bench/bandit_platform.py``) on hand-made runs, no database:
the paired regret estimate and the per-seed checks it prints."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from types import ModuleType

import numpy as np
import pytest

from tests.support import REPO


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bandit_platform", REPO / "bench" / "bandit_platform.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _run(bench: ModuleType, seed: int, new_last_day: list[int], final: list[float]) -> object:
    return bench.SeedRun(
        seed=seed,
        sessions=np.array([[50, 50], [30, 70]]),
        new_shoppers=np.array([[40, 40], new_last_day]),
        clicks=np.array([[10, 22], [4, 11]]),
        weights=np.array([[0.5, 0.5], [0.3, 0.7], final]),
        final_probability_best=final[1],
    )


def test_regret_is_lift_times_the_worse_arms_clicks_against_half_of_all_clicks_at_the_worse_rate() -> None:
    bench = _bench()
    bandit, fixed = _run(bench, 0, [5, 15], [0.2, 0.8]).regret(0.1)  # type: ignore[attr-defined]

    # Day 0: bandit 0.1 x 10 = 1.0; 50/50 0.05 x (10 + 22 / 1.1) = 1.5. Day 1: 0.4 and 0.05 x (4 + 10) = 0.7.
    assert bandit == pytest.approx([1.0, 1.4])
    assert fixed == pytest.approx([1.5, 2.2])


def test_the_checks_count_the_seeds_where_the_better_arm_leads(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    runs = [_run(bench, 0, [5, 15], [0.2, 0.8]), _run(bench, 1, [12, 8], [0.6, 0.4])]
    args = argparse.Namespace(platform_days=2, lift=0.1, platform_users=100.0, platform_holdout=0.2, platform_scale=3,
                              min_share=0.05, burn_in_users=1000, burn_in_periods=1)  # fmt: skip

    series = bench.print_mode(args, "uniform", runs)

    out = capsys.readouterr().out
    assert "+10% on arm 1; 20% hold-out, population x 3, floor 0.05, burn-in 1,000 impressions per arm" in out
    assert "| larger final weight | 1/2 (50%) |" in out
    assert "| larger weight on the last day (the share of that day's new shoppers it gets) | 2/2 (100%) |" in out
    assert "| most new shoppers on the last day | 1/2 (50%) |" in out
    assert "| most sessions on the last day | 2/2 (100%) |" in out
    # 200 sessions; final weight and P(best) 0.8; 0.7 on the last day; 15 of 20 new shoppers, 55 of 100 over both days
    assert "| 0 | 200 | 0.800 | 0.800 | 0.700 | 15/20 | 55/100 | 0.700 | 0.600 | 1.4 / 2.2 |" in out
    assert series["new_share"] == pytest.approx([0.5, 23 / 40])
