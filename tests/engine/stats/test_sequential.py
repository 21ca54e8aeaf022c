"""Always-valid sequential test: formula, duality of p-value and CS, properties, validity by simulation."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stats import (
    DEFAULT_N_STAR,
    InvalidParameterError,
    Proportion,
    SampleMean,
    proportion_test,
    sequential_monitor,
    sequential_proportion_test_arrays,
    sequential_test,
)

C = Proportion(10_000, 1_000)
T = Proportion(10_000, 1_100)


def growthbook_halfwidth(variance: float, n_total: float, alpha: float, n_star: float) -> float:
    """GrowthBook gbstats SequentialTwoSidedTTest half-width (Waudby-Smith et al. 2023, eq. 9)."""
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)
    s2 = variance * n_total
    return math.sqrt(s2) * math.sqrt(
        2 * (n_total * rho**2 + 1) / (n_total**2 * rho**2) * math.log(math.sqrt(n_total * rho**2 + 1) / alpha)
    )


@pytest.mark.parametrize("n_star", [5_000.0, DEFAULT_N_STAR, 1e6])
def test_halfwidth_matches_growthbook_formula(n_star: float) -> None:
    r = sequential_test(C, T, n_star=n_star)
    expected = growthbook_halfwidth(r.std_error**2, 20_000, 0.05, n_star)
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(expected, rel=1e-9)


def test_msprt_pvalue_formula() -> None:
    r = sequential_test(C, T)
    v = r.std_error**2
    rho2 = (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / DEFAULT_N_STAR
    tau2 = v * 20_000 * rho2
    lam = math.sqrt(v / (v + tau2)) * math.exp(r.effect**2 * tau2 / (2 * v * (v + tau2)))
    assert r.p_value == pytest.approx(min(1.0, 1 / lam), rel=1e-9)


def test_wider_than_fixed_horizon() -> None:
    seq, fixed = sequential_test(C, T), proportion_test(C, T)
    assert seq.ci_low < fixed.ci_low
    assert seq.ci_high > fixed.ci_high
    assert seq.p_value > fixed.p_value


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 10**8), st.integers(2, 10**8), st.floats(0.01, 0.99), st.floats(0.01, 0.99), st.floats(1, 1e7))
def test_pvalue_and_ci_are_dual(nc: int, nt: int, pc: float, pt: float, n_star: float) -> None:
    c, t = Proportion(nc, max(1, int(pc * nc))), Proportion(nt, max(1, int(pt * nt)))
    for diff in ("absolute", "relative"):
        r = sequential_test(c, t, difference=diff, n_star=n_star)
        assert 0.0 <= r.p_value <= 1.0
        assert r.ci_low <= r.effect <= r.ci_high
        excludes_zero = r.ci_low > 0 or r.ci_high < 0
        margin = min(abs(r.ci_low), abs(r.ci_high)) / max(r.std_error, 1e-300)
        if margin > 1e-6:  # away from the boundary the two verdicts must agree exactly
            assert excludes_zero == r.significant
        assert all(math.isfinite(v) for v in dataclasses.astuple(r) if isinstance(v, float))
    swapped = sequential_test(t, c, n_star=n_star)
    base = sequential_test(c, t, n_star=n_star)
    assert swapped.effect == pytest.approx(-base.effect, abs=1e-15)
    assert swapped.p_value == pytest.approx(base.p_value, rel=1e-9, abs=1e-300)


def test_monitor_running_min_is_monotone() -> None:
    rng = np.random.default_rng(11)
    looks = []
    sc = st_ = 0
    for day in range(1, 11):
        sc += int(rng.binomial(2_000, 0.10))
        st_ += int(rng.binomial(2_000, 0.12))
        looks.append((Proportion(2_000 * day, sc), Proportion(2_000 * day, st_)))
    results = sequential_monitor(looks)
    ps = [r.p_value for r in results]
    assert all(b <= a for a, b in itertools.pairwise(ps))
    assert results[-1].significant


def test_works_for_means() -> None:
    r = sequential_test(SampleMean(1_000, 5_000.0, 30_000.0), SampleMean(1_000, 5_200.0, 32_000.0))
    assert 0 <= r.p_value <= 1


@pytest.mark.parametrize("n_star", [0, -1, float("nan")])
def test_bad_n_star(n_star: float) -> None:
    with pytest.raises(InvalidParameterError, match="n_star"):
        sequential_test(C, T, n_star=n_star)


def test_aa_type_one_error_with_daily_looks_is_controlled() -> None:
    """Small-scale version of bench/aa_calibration.py: 2,000 A/A runs, 10 looks, rate <= alpha."""
    rng = np.random.default_rng(20261127)
    sims, looks, per_look = 2_000, 10, 1_000
    inc_c = rng.binomial(per_look, 0.1, size=(sims, looks))
    inc_t = rng.binomial(per_look, 0.1, size=(sims, looks))
    sc, stt = inc_c.cumsum(axis=1), inc_t.cumsum(axis=1)
    n = np.broadcast_to(per_look * np.arange(1, looks + 1), (sims, looks))
    res = sequential_proportion_test_arrays(n.ravel(), sc.ravel(), n.ravel(), stt.ravel())
    any_reject = res.significant.reshape(sims, looks).any(axis=1).mean()
    assert any_reject <= 0.05


def test_huge_n_is_finite() -> None:
    n = 10**9
    for diff in ("absolute", "relative"):
        r = sequential_test(Proportion(n, n // 10), Proportion(n, n // 10 + 50_000), difference=diff)  # type: ignore[arg-type]
        assert all(math.isfinite(v) for v in (r.effect, r.ci_low, r.ci_high, r.p_value))
        assert 0.0 <= r.p_value <= 1.0
