"""Beta-Binomial: exact chance to win against Evan Miller's closed form, losses, lift interval."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from experiments.stats import InvalidParameterError, Proportion, bayesian_proportion_test, beta_prob_greater


def evan_miller(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """P(T > C) = sum_{i<a_t} B(a_c+i, b_c+b_t) / ((b_t+i) B(1+i, b_t) B(a_c, b_c)) in log space."""
    i = np.arange(a_t)
    terms = special.betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - special.betaln(1 + i, b_t) - special.betaln(a_c, b_c)
    return float(np.exp(terms).sum())


def test_reference_chance_to_win() -> None:
    r = bayesian_proportion_test(Proportion(10_000, 1_000), Proportion(10_000, 1_100), prior=(1, 1))
    assert round(r.chance_to_win, 4) == 0.9895
    assert r.chance_to_win == pytest.approx(evan_miller(1101, 8901, 1001, 9001), rel=1e-9)


@pytest.mark.parametrize(("a_t", "b_t", "a_c", "b_c"), [(3, 5, 2, 7), (1, 1, 1, 1), (50, 2, 40, 3), (2, 1, 1, 2)])
def test_prob_greater_matches_closed_form(a_t: int, b_t: int, a_c: int, b_c: int) -> None:
    assert beta_prob_greater(a_t, b_t, a_c, b_c) == pytest.approx(evan_miller(a_t, b_t, a_c, b_c), rel=1e-9, abs=1e-12)


def test_losses_satisfy_identity_and_match_monte_carlo() -> None:
    r = bayesian_proportion_test(Proportion(2_000, 210), Proportion(2_000, 230))
    # E[(T-C)+] - E[(C-T)+] = E[T - C] exactly.
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(r.effect, abs=1e-10)
    rng = np.random.default_rng(7)
    c = rng.beta(r.alpha_control, r.beta_control, 1_000_000)
    t = rng.beta(r.alpha_treatment, r.beta_treatment, 1_000_000)
    assert r.expected_loss_control == pytest.approx(np.maximum(t - c, 0).mean(), rel=0.02)
    assert r.expected_loss_treatment == pytest.approx(np.maximum(c - t, 0).mean(), rel=0.02)
    assert r.chance_to_win == pytest.approx((t > c).mean(), abs=0.003)
    lo, med, hi = np.quantile(t / c - 1, [0.025, 0.5, 0.975])
    assert r.lift_ci_low == pytest.approx(lo, abs=0.01)
    assert r.lift_median == pytest.approx(med, abs=0.005)
    assert r.lift_ci_high == pytest.approx(hi, abs=0.01)


def test_lift_quantiles_hit_their_levels() -> None:
    # The ratio CDF at the reported bounds must be the requested tail probabilities.
    from experiments.stats.bayesian import _ratio_cdf

    r = bayesian_proportion_test(Proportion(500, 40), Proportion(450, 52), credible_level=0.9)
    args = (r.alpha_treatment, r.beta_treatment, r.alpha_control, r.beta_control)
    assert _ratio_cdf(1 + r.lift_ci_low, *args) == pytest.approx(0.05, abs=1e-8)
    assert _ratio_cdf(1 + r.lift_ci_high, *args) == pytest.approx(0.95, abs=1e-8)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 10**6), st.integers(1, 10**6), st.floats(0, 1), st.floats(0, 1))
def test_properties(nc: int, nt: int, fc: float, ft: float) -> None:
    c, t = Proportion(nc, int(fc * nc)), Proportion(nt, int(ft * nt))
    r = bayesian_proportion_test(c, t)
    values = dataclasses.asdict(r)
    assert all(math.isfinite(v) for v in values.values())
    assert 0.0 <= r.chance_to_win <= 1.0
    assert r.expected_loss_control >= 0.0
    assert r.expected_loss_treatment >= 0.0
    assert r.lift_ci_low <= r.lift_median <= r.lift_ci_high
    assert r.lift_ci_low >= -1.0
    swapped = bayesian_proportion_test(t, c)
    assert swapped.chance_to_win == pytest.approx(1.0 - r.chance_to_win, abs=1e-9)
    assert swapped.expected_loss_control == pytest.approx(r.expected_loss_treatment, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(
    ("c", "t"),
    [((10**9, 10**8), (10**9, 10**8 + 30_000)), ((100, 0), (10**9, 10**8)), ((1, 0), (1, 1)), ((50, 50), (50, 0))],
)
def test_extremes_are_finite(c: tuple[int, int], t: tuple[int, int]) -> None:
    r = bayesian_proportion_test(Proportion(*c), Proportion(*t))
    assert all(math.isfinite(v) for v in dataclasses.asdict(r).values())
    assert json.loads(json.dumps(dataclasses.asdict(r)))["chance_to_win"] == r.chance_to_win


def test_huge_n_chance_to_win_matches_normal_limit() -> None:
    n = 10**9
    r = bayesian_proportion_test(Proportion(n, n // 10), Proportion(n, n // 10 + 30_000))
    sd = math.hypot(
        math.sqrt(r.alpha_control * r.beta_control) / (r.alpha_control + r.beta_control) ** 1.5,
        math.sqrt(r.alpha_treatment * r.beta_treatment) / (r.alpha_treatment + r.beta_treatment) ** 1.5,
    )
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(r.effect / sd), abs=1e-4)


@pytest.mark.parametrize("prior", [(0, 1), (1, -1), (1,), (float("inf"), 1)])
def test_bad_prior(prior) -> None:
    with pytest.raises(InvalidParameterError):
        bayesian_proportion_test(Proportion(10, 1), Proportion(10, 2), prior=prior)
