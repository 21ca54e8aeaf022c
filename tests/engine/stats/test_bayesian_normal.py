"""bayesian_test: the normal posterior of the relative lift for ratios and means against GrowthBook's
gbstats 0.8.0 EffectBayesianABTest (flat prior), the dispatch on statistic types, and the result's checks."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.stats import (
    BayesianConfig,
    BayesianResult,
    CovariateSample,
    DegenerateDataError,
    InvalidDataError,
    InvalidParameterError,
    Proportion,
    RatioSample,
    SampleMean,
    bayesian_test,
)

CTR = (
    RatioSample(n=5000, sum_x=1210.0, sum_y=24950.0, sum_x2=1790.0, sum_y2=149800.0, sum_xy=7520.0),
    RatioSample(n=5100, sum_x=1335.0, sum_y=25400.0, sum_x2=2010.0, sum_y2=152900.0, sum_xy=8240.0),
)
CTR_SMALL = (
    RatioSample(n=40, sum_x=9.0, sum_y=180.0, sum_x2=13.0, sum_y2=1010.0, sum_xy=52.0),
    RatioSample(n=35, sum_x=7.0, sum_y=171.0, sum_x2=9.0, sum_y2=1005.0, sum_xy=41.0),
)
REVENUE = (
    SampleMean(n=20000, sum=412345.6, sum_squares=95123456.0),
    SampleMean(n=19850, sum=421987.3, sum_squares=98765432.0),
)
REVENUE_SMALL = (SampleMean(n=12, sum=310.5, sum_squares=11012.25), SampleMean(n=15, sum=290.25, sum_squares=7700.5))

# gbstats 0.8.0, EffectBayesianABTest(stat_a, stat_b, EffectBayesianConfig()).compute_result() on the
# same sums: chance_to_win, risk[0], risk[1], expected, ci[0], ci[1].
GBSTATS = [
    (CTR, (0.9640440045828773, 0.08442397578440403, 0.0006649466960979318, 0.0837590290883061,
           -0.007460047654091959, 0.17497810583070414)),
    (CTR_SMALL, (0.3390669236511905, 0.09841972713887381, 0.2797062768464763, -0.18128654970760244,
                 -1.0374448310197044, 0.6748717316044994)),
    (REVENUE, (0.8283792796495214, 0.03413423318466427, 0.003018293286673332, 0.031115939897990944,
               -0.033230341487018866, 0.09546222128300073)),
    (REVENUE_SMALL, (0.08467165017369216, 0.007117993638720796, 0.259291906682199, -0.2521739130434782,
                     -0.6118084066532437, 0.10746058056628721)),
]  # fmt: skip


@pytest.mark.parametrize(("arms", "expected"), GBSTATS)
def test_matches_gbstats_reference_values(
    arms: tuple[RatioSample, RatioSample] | tuple[SampleMean, SampleMean], expected: tuple[float, ...]
) -> None:
    r = bayesian_test(*arms)
    got = (r.chance_to_win, r.expected_loss_control, r.expected_loss_treatment, r.lift_median, r.lift_ci_low,
           r.lift_ci_high)  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert (r.method, r.loss_scale) == ("normal_relative", "relative")


def test_the_credible_level_sets_the_interval_as_gbstats_alpha_does() -> None:
    r = bayesian_test(*CTR, BayesianConfig(credible_level=0.9))
    # gbstats EffectBayesianConfig(alpha=0.1): ci
    assert (r.lift_ci_low, r.lift_ci_high) == pytest.approx((0.007205566672460431, 0.16031249150415172), rel=1e-9)
    assert r.chance_to_win == bayesian_test(*CTR).chance_to_win


def _gbstats(stat: RatioSample | SampleMean) -> RatioStatistic | SampleMeanStatistic:
    if isinstance(stat, RatioSample):
        return RatioStatistic(
            n=stat.n,
            m_statistic=SampleMeanStatistic(n=stat.n, sum=stat.sum_x, sum_squares=stat.sum_x2),
            d_statistic=SampleMeanStatistic(n=stat.n, sum=stat.sum_y, sum_squares=stat.sum_y2),
            m_d_sum_of_products=stat.sum_xy,
        )
    return SampleMeanStatistic(n=stat.n, sum=stat.sum, sum_squares=stat.sum_squares)


@st.composite
def ctr_arms(draw: st.DrawFn) -> RatioSample:
    """Clicks and impressions summed over n users: E[y] impressions per user, CTR p, overdispersion."""
    n = draw(st.integers(2, 10**7))
    per_user = draw(st.floats(1.0, 50.0))
    p = draw(st.floats(1e-3, 0.5))
    spread = draw(st.floats(0.0, 2.0))
    sum_y = n * per_user
    sum_y2 = n * per_user * per_user * (1.0 + spread)
    sum_x = sum_y * p
    sum_x2 = n * (per_user * p) ** 2 * (1.0 + spread) + sum_x * (1.0 - p)
    sum_xy = n * per_user * per_user * p * (1.0 + spread)
    return RatioSample(n=n, sum_x=sum_x, sum_y=sum_y, sum_x2=sum_x2, sum_y2=sum_y2, sum_xy=sum_xy)


@st.composite
def revenue_arms(draw: st.DrawFn) -> SampleMean:
    n = draw(st.integers(2, 10**7))
    return SampleMean.from_moments(n, draw(st.floats(0.01, 1e4)), draw(st.floats(0.0, 1e8)))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.tuples(ctr_arms(), ctr_arms()), st.tuples(revenue_arms(), revenue_arms())))
def test_matches_gbstats_on_random_ratios_and_means(
    arms: tuple[RatioSample, RatioSample] | tuple[SampleMean, SampleMean],
) -> None:
    control, treatment = arms
    with warnings.catch_warnings():  # gbstats' truncnorm.stats overflows (and warns) far in a tail
        warnings.simplefilter("ignore", RuntimeWarning)
        g = EffectBayesianABTest(_gbstats(control), _gbstats(treatment), EffectBayesianConfig()).compute_result()
    if g.error_message == "ZERO_NEGATIVE_VARIANCE":
        # gbstats gives up when either arm has no variance; the delta-method variance only needs one.
        assert min(control.variance, treatment.variance) == 0.0
        if max(control.variance, treatment.variance) == 0.0:
            with pytest.raises(DegenerateDataError, match="zero variance"):
                bayesian_test(control, treatment)
        return
    assert g.error_message is None
    r = bayesian_test(control, treatment)
    assert r.chance_to_win == pytest.approx(g.chance_to_win, abs=1e-9)
    for mine, theirs in ((r.expected_loss_control, g.risk[0]), (r.expected_loss_treatment, g.risk[1]),
                         (r.lift_median, g.expected), (r.lift_ci_low, g.ci[0]), (r.lift_ci_high, g.ci[1])):  # fmt: skip
        if math.isnan(theirs):
            # gbstats' truncnorm.stats returns NaN for a loss whose normal is truncated ~40 sd out; the
            # loss there is below 1e-300 of the lift's scale.
            assert mine == 0.0
            assert abs(r.lift_median) > 30 * (r.lift_ci_high - r.lift_median) / 1.96
        else:
            assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_formulas() -> None:
    r = bayesian_test(*REVENUE)
    d = REVENUE[1].mean / REVENUE[0].mean - 1.0
    s = math.sqrt(
        REVENUE[1].variance / (REVENUE[0].mean ** 2 * REVENUE[1].n)
        + REVENUE[1].mean ** 2 * REVENUE[0].variance / (REVENUE[0].mean ** 4 * REVENUE[0].n)
    )
    z = d / s
    assert r.lift_median == pytest.approx(d, rel=1e-14)
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(z), rel=1e-14)
    assert r.lift_ci_high - r.lift_median == pytest.approx(stats.norm.ppf(0.975) * s, rel=1e-14)
    assert r.expected_loss_control == pytest.approx(d * stats.norm.cdf(z) + s * stats.norm.pdf(z), rel=1e-12)
    assert r.expected_loss_treatment == pytest.approx(-d * stats.norm.cdf(-z) + s * stats.norm.pdf(z), rel=1e-12)
    # E[D+] - E[D-] = E[D]
    assert r.expected_loss_control - r.expected_loss_treatment == pytest.approx(d, rel=1e-12)
    assert (r.control_mean, r.treatment_mean) == (REVENUE[0].mean, REVENUE[1].mean)
    assert r.effect == pytest.approx(REVENUE[1].mean - REVENUE[0].mean, rel=1e-15)
    assert (r.alpha_control, r.beta_control, r.alpha_treatment, r.beta_treatment) == (None,) * 4


def test_a_far_losing_treatment_keeps_a_tiny_chance_accurate() -> None:
    control = SampleMean.from_moments(10**6, 10.0, 4.0)
    treatment = SampleMean.from_moments(10**6, 9.9, 4.0)  # z ~ -35
    r = bayesian_test(control, treatment)
    z = r.lift_median / ((r.lift_ci_high - r.lift_median) / stats.norm.ppf(0.975))
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert 0.0 < r.chance_to_win < 1e-250
    assert r.expected_loss_control >= 0.0


def test_the_statistic_type_chooses_the_method() -> None:
    assert bayesian_test(Proportion(1000, 50), Proportion(1000, 60)).method == "beta_binomial"
    assert bayesian_test(*CTR).method == "normal_relative"
    assert bayesian_test(*REVENUE).method == "normal_relative"


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        (Proportion(100, 5), SampleMean(n=100, sum=5.0, sum_squares=5.0)),
        (CTR[0], REVENUE[1]),
    ],
)
def test_mixed_statistics_are_refused(control: object, treatment: object) -> None:
    with pytest.raises(InvalidDataError, match="same kind of statistic"):
        bayesian_test(control, treatment)  # type: ignore[arg-type]


def test_unsupported_statistics_are_refused() -> None:
    covariate = CovariateSample.from_values([1.0, 2.0, 3.0], [1.0, 1.0, 2.0])
    with pytest.raises(InvalidDataError, match="Proportion, RatioSample or SampleMean"):
        bayesian_test(covariate, covariate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("control", "message"),
    [
        (SampleMean(n=100, sum=0.0, sum_squares=0.0), "positive control mean"),
        (SampleMean.from_moments(100, -3.0, 1.0), "positive control mean"),
        (RatioSample(n=10, sum_x=0.0, sum_y=30.0, sum_x2=0.0, sum_y2=100.0, sum_xy=0.0), "positive control mean"),
        (RatioSample(n=10, sum_x=0.0, sum_y=0.0, sum_x2=0.0, sum_y2=0.0, sum_xy=0.0), "sum_y is 0"),
        (SampleMean(n=1, sum=5.0, sum_squares=25.0), "n >= 2"),
    ],
)
def test_a_lift_without_a_usable_baseline_is_degenerate(control: RatioSample | SampleMean, message: str) -> None:
    treatment = (
        SampleMean.from_moments(100, 2.0, 1.0)
        if isinstance(control, SampleMean)
        else RatioSample(n=10, sum_x=3.0, sum_y=30.0, sum_x2=3.0, sum_y2=100.0, sum_xy=10.0)
    )
    with pytest.raises(DegenerateDataError, match=message):
        bayesian_test(control, treatment)  # type: ignore[arg-type]


def test_zero_variance_in_both_arms_is_degenerate() -> None:
    arm = SampleMean.from_moments(50, 3.0, 0.0)
    with pytest.raises(DegenerateDataError, match="zero variance"):
        bayesian_test(arm, arm)


def test_results_serialise_and_validate_themselves() -> None:
    r = bayesian_test(*CTR_SMALL)
    assert dataclasses.asdict(r)["alpha_control"] is None
    fields = dataclasses.asdict(r)
    for change, error in [
        ({"method": "bootstrap"}, InvalidParameterError),
        ({"loss_scale": "absolute"}, InvalidParameterError),
        ({"chance_to_win": 1.5}, InvalidDataError),
        ({"expected_loss_control": -0.1}, InvalidDataError),
        ({"lift_median": float("nan")}, InvalidDataError),
        ({"lift_ci_low": 0.9}, InvalidDataError),
        ({"credible_level": 1.0}, InvalidParameterError),
        ({"alpha_control": 1.0}, InvalidParameterError),
    ]:
        with pytest.raises(error):
            BayesianResult(**{**fields, **change})
