"""Analysis under changing weights: Simpson's paradox, unbiasedness, coverage, SRM with served weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.bandits import (
    ArmCounts,
    DegenerateBanditDataError,
    InvalidBanditConfigError,
    InvalidBanditDataError,
    PeriodData,
    ThompsonConfig,
    bandit_srm,
    cohort_data,
    pooled_counts,
    stratified_comparison,
    thompson_update,
)
from engine.stats import Proportion, proportion_test, srm_test

# Conversion falls from 10 % to 2 % while the bandit moves 90 % of new users to arm 1; both arms
# convert identically within each period, so the true effect is exactly 0.
SIMPSON = (
    PeriodData(period=0, weights=(0.5, 0.5), users=(1000, 1000), successes=(100, 100)),
    PeriodData(period=1, weights=(0.1, 0.9), users=(200, 1800), successes=(4, 36)),
)


def test_naive_pooling_finds_a_false_loss_where_the_stratified_effect_is_zero() -> None:
    (n0, s0), (n1, s1) = pooled_counts(SIMPSON)
    assert (n0, s0, n1, s1) == (1200, 104, 2800, 136)
    naive = proportion_test(Proportion(n0, s0), Proportion(n1, s1))
    assert naive.p_value < 0.001
    assert naive.effect < -0.03

    (result,) = stratified_comparison(SIMPSON)
    # v = (2000, 2000) / 4000 = (0.5, 0.5); both rates 0.5 x 0.10 + 0.5 x 0.02 = 0.06.
    var = 0.25 * (0.1 * 0.9 / 1000 * 2) + 0.25 * (0.02 * 0.98 / 200 + 0.02 * 0.98 / 1800)
    assert result.effect == pytest.approx(0.0, abs=1e-15)
    assert (result.control_rate, result.arm_rate) == pytest.approx((0.06, 0.06))
    assert result.std_error == pytest.approx(math.sqrt(var))
    assert result.ci_low == pytest.approx(-1.959963984540054 * math.sqrt(var))
    assert result.p_value == pytest.approx(1.0)
    assert (result.batched_z, result.batched_p_value, result.batched_periods) == (0.0, 1.0, 2)
    assert result.lift == pytest.approx(0.0, abs=1e-12)
    assert (result.users, result.periods_used, result.periods_skipped) == (4000, (0, 1), ())


def test_one_period_reduces_to_the_unpooled_two_sample_z_test() -> None:
    period = PeriodData(period=0, weights=(0.5, 0.5), users=(2000, 2000), successes=(100, 130))
    (result,) = stratified_comparison([period])
    reference = proportion_test(Proportion(2000, 100), Proportion(2000, 130))
    se = math.sqrt(0.05 * 0.95 / 2000 + 0.065 * 0.935 / 2000)
    assert result.effect == pytest.approx(0.015)
    assert result.std_error == pytest.approx(se)
    assert result.p_value == pytest.approx(math.erfc(0.015 / se / math.sqrt(2)))
    assert result.effect == pytest.approx(reference.effect)
    # One batch: the batched z is the pooled-variance two-proportion z of that batch.
    assert result.batched_z == pytest.approx(0.015 / math.sqrt(0.0575 * 0.9425 * (2 / 2000)))
    # Delta-method lift: var_T / c^2 + t^2 var_C / c^4.
    lift_se = math.sqrt((0.065 * 0.935 / 2000) / 0.05**2 + 0.065**2 * (0.05 * 0.95 / 2000) / 0.05**4)
    assert result.lift == pytest.approx(0.3)
    assert result.lift_ci_high == pytest.approx(0.3 + 1.959963984540054 * lift_se)


def test_batched_z_is_the_sum_of_period_z_over_root_periods() -> None:
    periods = [
        PeriodData(period=0, weights=(0.5, 0.5), users=(1000, 1000), successes=(100, 120)),
        PeriodData(period=1, weights=(0.1, 0.9), users=(200, 1800), successes=(10, 108)),
    ]
    (result,) = stratified_comparison(periods)
    z0 = 0.02 / math.sqrt(0.11 * 0.89 * (1 / 1000 + 1 / 1000))  # pooled rate 220 / 2000
    z1 = 0.01 / math.sqrt(0.059 * 0.941 * (1 / 200 + 1 / 1800))  # pooled rate 118 / 2000
    assert result.batched_z == pytest.approx((z0 + z1) / math.sqrt(2))
    assert result.batched_p_value == pytest.approx(math.erfc((z0 + z1) / 2))
    assert result.effect == pytest.approx(0.5 * 0.02 + 0.5 * 0.01)


def _simulate_trend(rng: np.random.Generator, reps: int, effect: float) -> tuple[list[float], list[bool], list[float]]:
    """Falling conversion, weights moving to arm 1, a constant additive effect in every period."""
    base = (0.10, 0.08, 0.05, 0.03)
    weight_1 = (0.5, 0.7, 0.85, 0.95)
    estimates, covered, naive = [], [], []
    for _ in range(reps):
        periods = []
        for t, (b, w) in enumerate(zip(base, weight_1, strict=True)):
            n1 = int(rng.binomial(4000, w))
            users = (4000 - n1, n1)
            successes = (int(rng.binomial(users[0], b)), int(rng.binomial(users[1], b + effect)))
            periods.append(PeriodData(period=t, weights=(1 - w, w), users=users, successes=successes))
        (result,) = stratified_comparison(periods)
        estimates.append(result.effect)
        covered.append(result.ci_low <= effect <= result.ci_high)
        (n0, s0), (n1, s1) = pooled_counts(periods)
        naive.append(s1 / n1 - s0 / n0)
    return estimates, covered, naive


def test_stratified_effect_is_unbiased_and_covers_where_pooling_is_biased() -> None:
    estimates, covered, naive = _simulate_trend(np.random.default_rng(20261128), reps=1500, effect=0.005)
    sem = float(np.std(estimates)) / math.sqrt(len(estimates))
    assert abs(float(np.mean(estimates)) - 0.005) < 4 * sem
    assert 0.93 <= float(np.mean(covered)) <= 0.97  # 95 % +- 4 Monte Carlo standard errors
    # Arm 1's users come mostly from the late, low-converting periods: pooling flips the sign.
    assert float(np.mean(naive)) < -0.01


def test_adaptive_weights_under_aa_keep_the_false_positive_rate_near_alpha() -> None:
    # Weights for period t depend on the data of period t - 1 (the leader gets 85 %): the
    # stratified test must stay calibrated although the design is adaptive.
    rng = np.random.default_rng(8)
    rejections = batched_rejections = 0
    reps = 1500
    for _ in range(reps):
        periods, w = [], 0.5
        for t, b in enumerate((0.08, 0.06, 0.05, 0.04, 0.03)):
            n1 = int(rng.binomial(3000, w))
            users = (3000 - n1, n1)
            successes = (int(rng.binomial(users[0], b)), int(rng.binomial(users[1], b)))
            periods.append(PeriodData(period=t, weights=(1 - w, w), users=users, successes=successes))
            w = 0.85 if successes[1] / users[1] > successes[0] / users[0] else 0.15
        (result,) = stratified_comparison(periods)
        rejections += result.p_value < 0.05
        batched_rejections += result.batched_p_value < 0.05
    assert 0.035 <= rejections / reps <= 0.065  # 0.05 +- 4 Monte Carlo standard errors (0.0056)
    assert 0.035 <= batched_rejections / reps <= 0.065


def test_three_arms_are_each_compared_with_the_control_and_empty_cells_skip_a_period() -> None:
    periods = [
        PeriodData(period=0, weights=(0.4, 0.3, 0.3), users=(400, 300, 300), successes=(40, 30, 45)),
        PeriodData(period=1, weights=(0.5, 0.5, 0.0), users=(500, 500, 0), successes=(25, 30, 0)),
    ]
    arm1, arm2 = stratified_comparison(periods)
    assert arm1.effect == pytest.approx(0.5 * 0.0 + 0.5 * 0.01)  # N_t = 1000 in both periods
    assert (arm2.effect, arm2.periods_used, arm2.periods_skipped) == (pytest.approx(0.05), (0,), (1,))
    (against_2,) = [r for r in stratified_comparison(periods, control=2) if r.arm == 0]
    assert against_2.effect == pytest.approx(-0.05)


# --- SRM --------------------------------------------------------------------------------------

FOLLOWS = (
    PeriodData(period=0, weights=(0.5, 0.5), users=(500, 500), successes=(0, 0)),
    PeriodData(period=1, weights=(0.2, 0.8), users=(200, 800), successes=(0, 0)),
)


def test_srm_uses_served_weights_so_counts_that_follow_them_do_not_alarm() -> None:
    result = bandit_srm(FOLLOWS)
    assert result.expected == (700.0, 1300.0)  # 1000 x 0.5 + 1000 x 0.2, 1000 x 0.5 + 1000 x 0.8
    assert (result.pooled.chi2, result.pooled.p_value, result.mismatch) == (0.0, 1.0, False)
    assert result.period_alpha == pytest.approx(0.0005)
    # Checking the totals against the latest weights only would raise a false alarm.
    assert srm_test([700, 1300], [0.2, 0.8]).mismatch


def test_srm_alarms_when_a_period_does_not_follow_its_weights() -> None:
    broken = (FOLLOWS[0], PeriodData(period=1, weights=(0.2, 0.8), users=(300, 700), successes=(0, 0)))
    result = bandit_srm(broken)
    assert result.pooled.chi2 == pytest.approx(100**2 / 700 + 100**2 / 1300)
    assert result.pooled.mismatch
    assert result.mismatch
    period_1 = result.per_period[1]
    assert period_1 is not None
    assert period_1.chi2 == pytest.approx(100**2 / 200 + 100**2 / 800)


def test_srm_per_period_check_catches_mismatches_that_cancel_in_the_totals() -> None:
    cancelling = (
        PeriodData(period=0, weights=(0.5, 0.5), users=(600, 400), successes=(0, 0)),
        PeriodData(period=1, weights=(0.5, 0.5), users=(400, 600), successes=(0, 0)),
    )
    result = bandit_srm(cancelling)
    assert result.pooled.chi2 == 0.0
    assert not result.pooled.mismatch
    assert result.mismatch  # each period: chi2 = 2 x 100^2 / 500 = 40, p ~ 2.5e-10 < 0.0005


def test_srm_random_counts_drawn_from_served_weights_rarely_alarm() -> None:
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(300):
        periods = []
        for t in range(10):
            w1 = float(rng.uniform(0.05, 0.95))
            n1 = int(rng.binomial(2000, w1))
            periods.append(PeriodData(period=t, weights=(1 - w1, w1), users=(2000 - n1, n1), successes=(0, 0)))
        alarms += bandit_srm(periods).mismatch
    assert alarms <= 3  # two checks at 0.001 each: ~0.6 expected alarms in 300


def test_srm_skips_an_arm_never_served() -> None:
    periods = [PeriodData(period=0, weights=(0.5, 0.5, 0.0), users=(510, 490, 0), successes=(0, 0, 0))]
    result = bandit_srm(periods)
    assert result.pooled.observed == [510, 490]
    assert not result.mismatch


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": (0.5, 0.6), "users": (1, 1), "successes": (0, 0)}, "sum to 1"),
        ({"weights": (0.5, 0.5), "users": (1, 1), "successes": (2, 0)}, "2 successes but only 1 users"),
        ({"weights": (1.0, 0.0), "users": (1, 1), "successes": (0, 0)}, "weight 0"),
        ({"weights": (0.5, 0.5), "users": (1, 1, 1), "successes": (0, 0)}, "one of each per arm"),
        ({"weights": (1.0,), "users": (1,), "successes": (0,)}, "at least 2 arms"),
        ({"weights": (0.5, 0.5), "users": (-1, 1), "successes": (0, 0)}, ">= 0"),
        ({"weights": (0.5, 0.5), "users": (1.0, 1), "successes": (0, 0)}, "integer count"),
        ({"weights": (math.nan, 0.5), "users": (1, 1), "successes": (0, 0)}, r"in \[0, 1\]"),
    ],
)
def test_impossible_period_data_is_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidBanditDataError, match=match):
        PeriodData(period=0, **kwargs)  # type: ignore[arg-type]


def test_inconsistent_periods_and_parameters_are_refused() -> None:
    two = PeriodData(period=0, weights=(0.5, 0.5), users=(10, 10), successes=(1, 2))
    three = PeriodData(period=1, weights=(0.4, 0.3, 0.3), users=(4, 3, 3), successes=(0, 0, 0))
    with pytest.raises(InvalidBanditDataError, match="arms"):
        stratified_comparison([two, three])
    with pytest.raises(InvalidBanditDataError, match="once"):
        bandit_srm([two, two])
    with pytest.raises(InvalidBanditDataError, match="no periods"):
        stratified_comparison([])
    with pytest.raises(InvalidBanditConfigError):
        stratified_comparison([two], control=2)
    with pytest.raises(InvalidBanditConfigError):
        bandit_srm([two], alpha=1.5)
    only_control = PeriodData(period=0, weights=(0.5, 0.5), users=(10, 0), successes=(1, 0))
    with pytest.raises(DegenerateBanditDataError, match="both arm 1 and control arm 0"):
        stratified_comparison([only_control])
    flat = PeriodData(period=0, weights=(0.5, 0.5), users=(10, 10), successes=(0, 10))
    with pytest.raises(DegenerateBanditDataError, match="no variance"):
        stratified_comparison([flat])
    with pytest.raises(DegenerateBanditDataError, match="no users"):
        bandit_srm([PeriodData(period=0, weights=(0.5, 0.5), users=(0, 0), successes=(0, 0))])


def test_cohort_data_pairs_a_weight_update_with_the_shares_really_served() -> None:
    config = ThompsonConfig(min_share=0.1, burn_in_trials=0, burn_in_periods=0)
    update = thompson_update([ArmCounts(3000, 150), ArmCounts(3000, 210), ArmCounts(3000, 150)], 4, config)
    cohort = cohort_data(update, users=(120, 780, 100), successes=(6, 50, 5))
    assert cohort.period == 4
    assert cohort.weights == (0.1, 0.8, 0.1)  # arm 1 is all but certainly best: the others at the floor
    assert cohort.users == (120, 780, 100)
    with pytest.raises(InvalidBanditDataError, match="one of each per arm"):
        cohort_data(update, users=(1, 2), successes=(0, 0))
