"""Exact Beta-Binomial test: against 30-digit values, Evan Miller's sum, the slow adaptive-quadrature
implementation it replaced, Monte Carlo, and properties (complements, symmetry, monotonicity)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from engine.stats import (
    BayesianConfig,
    DegenerateDataError,
    InvalidParameterError,
    Proportion,
    bayesian_proportion_test,
    bayesian_test,
    beta_prob_greater,
)

# --- References -------------------------------------------------------------------------------


def evan_miller(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """P(T > C) = sum_{i<a_t} B(a_c+i, b_c+b_t) / ((b_t+i) B(1+i, b_t) B(a_c, b_c)) in log space.

    In double precision the log-Beta terms lose ~1e-16 of their size (~1e3 at b ~ 1e4), so this is
    a ~1e-11 reference only for parameters up to ~1000 (2e-12 off at (31, 970, 21, 980)); larger
    cases are in GOLD below.
    """
    i = np.arange(a_t)
    terms = special.betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - special.betaln(1 + i, b_t) - special.betaln(a_c, b_c)
    return float(np.exp(terms).sum())


# The adaptive-quadrature implementation this engine replaced (QUADPACK on each integral, Brent on
# the ratio CDF): slow (~12 tests per second) but independent of the fixed grids.
_SPREAD = 40.0


def _sd(a: float, b: float) -> float:
    s = a + b
    return math.sqrt(a * b / (s * s * (s + 1.0)))


def _reference_integral(a: float, b: float, g: Callable[[float], float], points: list[float], epsrel: float) -> float:
    mean, sd = a / (a + b), _sd(a, b)
    lo, hi = max(0.0, mean - _SPREAD * sd), min(1.0, mean + _SPREAD * sd)

    def integrand(x: float) -> float:
        if x <= 0.0 or x >= 1.0:
            return 0.0
        d = x - mean
        return math.exp((a - 1.0) * math.log1p(d / mean) + (b - 1.0) * math.log1p(-d / (1.0 - mean))) * g(x)

    inside = sorted({p for p in points if lo < p < hi})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, lo, hi, points=inside or None, epsabs=0.0, epsrel=epsrel, limit=400)
    return float(value)


@functools.lru_cache(maxsize=256)
def _reference_normaliser(a: float, b: float) -> float:
    return _reference_integral(a, b, lambda _x: 1.0, [], 1e-13)


def _expect(a: float, b: float, g: Callable[[float], float], hint: float, epsrel: float = 1e-12) -> float:
    return _reference_integral(a, b, g, [hint], epsrel) / _reference_normaliser(a, b)


def reference_prob_greater(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    if _sd(a_c, b_c) <= _sd(a_t, b_t):
        return _expect(a_c, b_c, lambda x: float(special.betaincc(a_t, b_t, x)), a_t / (a_t + b_t))
    return _expect(a_t, b_t, lambda x: float(special.betainc(a_c, b_c, x)), a_c / (a_c + b_c))


def reference_ratio_cdf(r: float, a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    """P(T / C <= r)."""
    if _sd(a_c, b_c) * r <= _sd(a_t, b_t):
        return _expect(
            a_c, b_c, lambda c: float(special.betainc(a_t, b_t, min(r * c, 1.0))), a_t / (a_t + b_t) / r, 1e-10
        )
    return _expect(a_t, b_t, lambda t: float(special.betaincc(a_c, b_c, min(t / r, 1.0))), r * a_c / (a_c + b_c), 1e-10)


def reference_test(a_t: float, b_t: float, a_c: float, b_c: float, level: float = 0.95) -> dict[str, float]:
    mu_t, mu_c = a_t / (a_t + b_t), a_c / (a_c + b_c)
    loss_c = mu_t * reference_prob_greater(a_t + 1, b_t, a_c, b_c) - mu_c * reference_prob_greater(
        a_t, b_t, a_c + 1, b_c
    )
    loss_t = mu_c * reference_prob_greater(a_c + 1, b_c, a_t, b_t) - mu_t * reference_prob_greater(
        a_c, b_c, a_t + 1, b_t
    )
    sd_log = math.hypot(_sd(a_t, b_t) / mu_t, _sd(a_c, b_c) / mu_c)

    def quantile(q: float) -> float:
        guess = math.log(mu_t / mu_c) + float(special.ndtri(q)) * sd_log
        step = 0.1 * sd_log + 1e-12

        def f(log_r: float) -> float:
            return reference_ratio_cdf(math.exp(log_r), a_t, b_t, a_c, b_c) - q

        lo, hi = guess - step, guess + step
        while f(lo) >= 0.0:
            lo -= 2.0 * (hi - lo)
        while f(hi) <= 0.0:
            hi += 2.0 * (hi - lo)
        return math.expm1(float(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-12)))

    tail = (1.0 - level) / 2.0
    return {
        "chance_to_win": reference_prob_greater(a_t, b_t, a_c, b_c),
        "expected_loss_control": loss_c,
        "expected_loss_treatment": loss_t,
        "lift_ci_low": quantile(tail),
        "lift_median": quantile(0.5),
        "lift_ci_high": quantile(1.0 - tail),
    }


def posterior(n: int, successes: int, prior: tuple[float, float]) -> tuple[float, float]:
    return prior[0] + successes, prior[1] + n - successes


# --- Exact values -------------------------------------------------------------------------------

# (a_t, b_t, a_c, b_c): P(T > C) and E[max(T - C, 0)], Evan Miller's sum in 30-digit arithmetic
# (mpmath; the loss through mu_T P(T+ > C) - mu_C P(T > C+)); n up to 2e8, rates from 1e-4 to 0.1.
GOLD = [
    ((3, 5, 2, 7), 10 / 13, 0.1810897435897435897435897),
    ((201, 9801, 181, 9821), 0.8495594813689278063168694, 0.002150506726880809286140761),
    ((1101, 8901, 1001, 9001), 0.9894573544317140146443717, 0.01001358284375221735295893),
    ((100500, 899500, 100000, 900000), 0.8804436038613946246422821, 0.0005249642701097576376876649),
    ((362, 2812790, 508, 4123040), 0.7352215121667850825931676, 0.00000687188865171918181147288),
    ((13071, 117292263, 9971, 90099506), 0.6999192617116813812101789, 0.000001054244112646966361683617),
]


@pytest.mark.parametrize(("params", "win", "loss"), GOLD)
def test_chance_to_win_and_loss_match_30_digit_values(
    params: tuple[int, int, int, int], win: float, loss: float
) -> None:
    a_t, b_t, a_c, b_c = params
    r = bayesian_proportion_test(Proportion(a_c + b_c - 2, a_c - 1), Proportion(a_t + b_t - 2, a_t - 1))
    assert r.chance_to_win == pytest.approx(win, abs=1e-12)
    assert r.expected_loss_control == pytest.approx(loss, rel=1e-10, abs=1e-16)
    # E[(T - C)+] - E[(C - T)+] = E[T] - E[C]
    assert r.expected_loss_treatment == pytest.approx(loss - r.effect, rel=1e-9, abs=1e-16)


def test_chance_to_win_with_a_non_integer_prior_matches_30_digit_quadrature() -> None:
    # Jeffreys prior, every unit converted: Beta(147.5, 0.5) against Beta(117.5, 0.5) (mpmath.quad of
    # f_C (1 - I_x(a_T, b_T)), 30 digits); the density is singular at x = 1, no closed form applies.
    assert beta_prob_greater(147.5, 0.5, 117.5, 0.5) == pytest.approx(0.53618090705391915946, abs=1e-13)


# Lift quantiles (2.5 %, 50 %, 97.5 %) of T / C - 1: roots of the ratio CDF, both in 30-digit mpmath.
GOLD_LIFTS = [
    ((40, 3), (45, 9), (1.0, 1.0), (-0.16690905381758499507, 1.3408181276830226787, 7.3752155558030030717)),
    ((19, 0), (17, 0), (0.5, 0.5), (-0.99823274759026268272, 0.11422512050082019417, 701.57757035317749735)),
    ((10, 9), (12, 11), (1.0, 1.0), (-0.26927641005367130953, 0.023317398319994248677, 0.50764397909627124865)),
    ((1000, 100), (1000, 130), (1.0, 1.0), (0.017566971465126109321, 0.29794893249173145255, 0.66104858443075589754)),
]


@pytest.mark.parametrize(("control", "treatment", "prior", "lifts"), GOLD_LIFTS)
def test_lift_quantiles_match_30_digit_values(
    control: tuple[int, int], treatment: tuple[int, int], prior: tuple[float, float], lifts: tuple[float, float, float]
) -> None:
    r = bayesian_proportion_test(Proportion(*control), Proportion(*treatment), prior=prior)
    # 1e-10 relative on T / C (the lift's own scale: lift = T / C - 1 can sit near 0).
    for got, want in zip((r.lift_ci_low, r.lift_median, r.lift_ci_high), lifts, strict=True):
        assert 1.0 + got == pytest.approx(1.0 + want, rel=1e-10)


@pytest.mark.parametrize(
    ("a_t", "b_t", "a_c", "b_c"),
    [(3, 5, 2, 7), (1, 1, 1, 1), (50, 2, 40, 3), (2, 1, 1, 2), (1, 200, 3, 150), (7, 3, 9, 1), (31, 970, 21, 980)],
)
def test_prob_greater_matches_evan_millers_sum(a_t: int, b_t: int, a_c: int, b_c: int) -> None:
    assert beta_prob_greater(a_t, b_t, a_c, b_c) == pytest.approx(evan_miller(a_t, b_t, a_c, b_c), abs=1e-11)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 1000), st.integers(1, 300), st.integers(1, 1000))
def test_prob_greater_matches_evan_millers_sum_for_small_counts(a_t: int, b_t: int, a_c: int, b_c: int) -> None:
    assert beta_prob_greater(a_t, b_t, a_c, b_c) == pytest.approx(evan_miller(a_t, b_t, a_c, b_c), abs=1e-11)


# --- Against the slow implementation, n from 10 to 1e8, rates from 1e-4 to 0.9 ---------------

WIDE = [
    (n, rate, prior)
    for n in (10, 100, 10_000, 1_000_000, 100_000_000)
    for rate in (1e-4, 0.01, 0.2, 0.9)
    for prior in ((1.0, 1.0), (0.5, 0.5), (2.0, 20.0))
    if n * rate >= 0.5 or prior == (1.0, 1.0)
]


@pytest.mark.parametrize(("n", "rate", "prior"), WIDE)
def test_matches_the_adaptive_quadrature_reference(n: int, rate: float, prior: tuple[float, float]) -> None:
    control = Proportion(n, round(n * rate))
    treatment = Proportion(round(n * 1.1), min(round(n * 1.1), round(n * 1.1 * rate * 1.04)))
    r = bayesian_proportion_test(control, treatment, prior=prior)
    ref = reference_test(
        *posterior(treatment.n, treatment.successes, prior), *posterior(control.n, control.successes, prior)
    )
    assert r.chance_to_win == pytest.approx(ref["chance_to_win"], abs=1e-10)
    for loss in ("expected_loss_control", "expected_loss_treatment"):
        assert getattr(r, loss) == pytest.approx(ref[loss], rel=1e-8, abs=1e-13)
    for q in ("lift_ci_low", "lift_median", "lift_ci_high"):
        assert 1.0 + getattr(r, q) == pytest.approx(1.0 + ref[q], rel=1e-9)
        assert getattr(r, q) == pytest.approx(ref[q], rel=1e-7, abs=1e-9)


def test_lift_bounds_hit_their_levels() -> None:
    r = bayesian_proportion_test(Proportion(500, 40), Proportion(450, 52), credible_level=0.9)
    args = (r.alpha_treatment, r.beta_treatment, r.alpha_control, r.beta_control)
    assert reference_ratio_cdf(1 + r.lift_ci_low, *args) == pytest.approx(0.05, abs=1e-10)
    assert reference_ratio_cdf(1 + r.lift_median, *args) == pytest.approx(0.5, abs=1e-10)
    assert reference_ratio_cdf(1 + r.lift_ci_high, *args) == pytest.approx(0.95, abs=1e-10)


def test_losses_satisfy_identity_and_match_monte_carlo() -> None:
    r = bayesian_proportion_test(Proportion(2_000, 210), Proportion(2_000, 230))
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(r.effect, abs=1e-15)
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


# --- Properties ---------------------------------------------------------------------------------

arms = st.tuples(st.integers(1, 10**8), st.floats(0.0, 1.0)).map(lambda p: Proportion(p[0], round(p[0] * p[1])))
priors = st.sampled_from([(1.0, 1.0), (0.5, 0.5), (2.0, 20.0)])


@settings(max_examples=150, deadline=None)
@given(arms, arms, priors)
def test_swapping_the_arms_complements_the_chance_and_swaps_the_losses(
    c: Proportion, t: Proportion, prior: tuple[float, float]
) -> None:
    r = bayesian_proportion_test(c, t, prior=prior)
    swapped = bayesian_proportion_test(t, c, prior=prior)
    assert r.chance_to_win + swapped.chance_to_win == pytest.approx(1.0, abs=1e-12)
    # Losses are exact to ~1e-13 of the rates involved (rounding in sums of partial means of that size).
    slack = 1e-13 * max(r.control_mean, r.treatment_mean)
    assert swapped.expected_loss_control == pytest.approx(r.expected_loss_treatment, rel=1e-9, abs=slack)
    assert swapped.expected_loss_treatment == pytest.approx(r.expected_loss_control, rel=1e-9, abs=slack)
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(r.effect, abs=slack)
    # T / C and C / T: the quantiles mirror each other, log(1 + lift) = -log(1 + swapped lift). A lift
    # near -1 carries only ~1e-16 / (1 + lift) relative precision in 1 + lift, hence the second term.
    pairs = zip(
        (r.lift_ci_low, r.lift_median, r.lift_ci_high),
        (swapped.lift_ci_high, swapped.lift_median, swapped.lift_ci_low),
        strict=True,
    )
    for mine, theirs in pairs:
        rounding = 1e-15 / min(1 + mine, 1 + theirs)
        assert math.log1p(mine) == pytest.approx(-math.log1p(theirs), rel=1e-9, abs=1e-12 + rounding)
    values = dataclasses.asdict(r)
    assert all(math.isfinite(v) for v in values.values() if isinstance(v, float))
    assert 0.0 <= r.chance_to_win <= 1.0
    assert min(r.expected_loss_control, r.expected_loss_treatment) >= 0.0
    assert -1.0 <= r.lift_ci_low <= r.lift_median <= r.lift_ci_high


@settings(max_examples=100, deadline=None)
@given(arms, st.integers(1, 10**8), st.floats(0.0, 1.0), st.integers(1, 1000), priors)
def test_more_treatment_successes_never_lower_its_chance_or_lift(
    c: Proportion, n_t: int, share: float, extra: int, prior: tuple[float, float]
) -> None:
    successes = min(round(n_t * share), n_t - 1)
    fewer = bayesian_proportion_test(c, Proportion(n_t, successes), prior=prior)
    more = bayesian_proportion_test(c, Proportion(n_t, min(successes + extra, n_t)), prior=prior)
    assert more.chance_to_win >= fewer.chance_to_win - 1e-12
    # Losses are exact to ~1e-13 of the rates involved (rounding in sums of partial means of that size).
    slack = 1e-13 * max(more.control_mean, more.treatment_mean, fewer.treatment_mean)
    assert more.expected_loss_control >= fewer.expected_loss_control - slack
    assert more.expected_loss_treatment <= fewer.expected_loss_treatment + slack
    for q in ("lift_ci_low", "lift_median", "lift_ci_high"):
        assert 1 + getattr(more, q) >= (1 + getattr(fewer, q)) * (1 - 1e-10)


def test_identical_arms_are_exactly_even() -> None:
    r = bayesian_proportion_test(Proportion(1_000, 37), Proportion(1_000, 37))
    assert (r.chance_to_win, r.lift_median) == (0.5, 0.0)
    assert r.expected_loss_control == r.expected_loss_treatment
    assert (1 + r.lift_ci_low) * (1 + r.lift_ci_high) == pytest.approx(1.0, rel=1e-14)
    assert beta_prob_greater(1, 1, 1, 1) == 0.5


@pytest.mark.parametrize(
    ("c", "t"),
    [
        ((10**9, 10**8), (10**9, 10**8 + 30_000)),
        ((100, 0), (10**9, 10**8)),
        ((1, 0), (1, 1)),
        ((50, 50), (50, 0)),
        ((10**6, 10**6), (10**6, 5 * 10**5)),
        ((10**9, 10**9 - 1), (10**9, 1)),
    ],
)
def test_extremes_are_finite_and_serialisable(c: tuple[int, int], t: tuple[int, int]) -> None:
    r = bayesian_proportion_test(Proportion(*c), Proportion(*t))
    values = dataclasses.asdict(r)
    assert all(math.isfinite(v) for v in values.values() if isinstance(v, float))
    assert json.loads(json.dumps(values)) == values
    assert -1.0 <= r.lift_ci_low <= r.lift_median <= r.lift_ci_high


def test_huge_n_chance_to_win_matches_normal_limit() -> None:
    n = 10**9
    r = bayesian_proportion_test(Proportion(n, n // 10), Proportion(n, n // 10 + 30_000))
    a_c, b_c, a_t, b_t = (
        float(v or 0.0) for v in (r.alpha_control, r.beta_control, r.alpha_treatment, r.beta_treatment)
    )
    sd = math.hypot(_sd(a_c, b_c), _sd(a_t, b_t))
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(r.effect / sd), abs=1e-4)
    assert r.chance_to_win == pytest.approx(reference_prob_greater(a_t, b_t, a_c, b_c), abs=1e-11)


def test_the_result_names_its_method_and_loss_scale() -> None:
    r = bayesian_test(Proportion(100, 7), Proportion(100, 9), BayesianConfig(prior=(0.5, 0.5), credible_level=0.8))
    assert (r.method, r.loss_scale, r.credible_level) == ("beta_binomial", "absolute", 0.8)
    assert (r.alpha_control, r.beta_control, r.alpha_treatment, r.beta_treatment) == (7.5, 93.5, 9.5, 91.5)
    assert r == bayesian_proportion_test(Proportion(100, 7), Proportion(100, 9), prior=(0.5, 0.5), credible_level=0.8)


@pytest.mark.parametrize("prior", [(0, 1), (1, -1), (1,), (float("inf"), 1)])
def test_bad_prior(prior: tuple[float, ...]) -> None:
    with pytest.raises(InvalidParameterError):
        bayesian_proportion_test(Proportion(10, 1), Proportion(10, 2), prior=prior)  # type: ignore[arg-type]


def test_a_prior_too_diffuse_for_the_grids_says_so() -> None:
    with pytest.raises(DegenerateDataError, match="too diffuse"):
        bayesian_proportion_test(Proportion(10, 0), Proportion(10, 1), prior=(0.001, 0.001))
