"""IPS, SNIPS and DR on hand-computed cases, the on-policy sanity case, unbiasedness and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.offpolicy import (
    DegenerateLogError,
    EstimatorConfig,
    InvalidConfigError,
    InvalidLogError,
    InvalidPolicyError,
    LoggedFeedback,
    PositionPolicy,
    RewardPredictions,
    bootstrap_ratios,
    doubly_robust,
    effective_sample_size,
    ips,
    point_estimates,
    simulate_slate_log,
    snips,
    true_value,
)

# r, p, pi chosen so that w = pi / p = [2, 1, 2, 0].
TINY = LoggedFeedback(
    rewards=np.array([1.0, 0.0, 1.0, 0.0]),
    propensities=np.array([0.5, 0.5, 0.25, 0.25]),
    target_probabilities=np.array([1.0, 0.5, 0.5, 0.0]),
)
FAST = EstimatorConfig(n_bootstrap=200)


def test_ips_on_tiny_log_is_mean_of_weighted_rewards() -> None:
    result = ips(TINY, FAST)
    assert result.estimate == pytest.approx(1.0)  # (2*1 + 1*0 + 2*1 + 0*0) / 4
    # sd([2, 0, 2, 0], ddof=1) = sqrt(4/3); / sqrt(4)
    assert result.standard_error == pytest.approx(math.sqrt(4 / 3) / 2)
    assert result.effective_sample_size == pytest.approx(25 / 9)  # (2+1+2+0)^2 / (4+1+4+0)
    assert result.max_weight == 2.0
    assert result.n == 4
    assert result.estimator == "IPS"


def test_snips_on_tiny_log_divides_by_sum_of_weights() -> None:
    result = snips(TINY, FAST)
    assert result.estimate == pytest.approx(4 / 5)
    # linearised terms (w r - V w) / mean(w) = ([2,0,2,0] - 0.8 [2,1,2,0]) / 1.25 = [0.32, -0.64, 0.32, 0]
    assert result.standard_error == pytest.approx(np.std([0.32, -0.64, 0.32, 0.0], ddof=1) / 2)


def test_dr_on_tiny_log_adds_weighted_residuals_to_direct_method() -> None:
    predictions = RewardPredictions(np.full(4, 0.5), np.full(4, 0.4), model="constant")
    result = doubly_robust(TINY, predictions, FAST)
    # 0.4 + w (r - 0.5): 1.4, -0.1, 1.4, 0.4 -> mean 0.775
    assert result.estimate == pytest.approx(0.775)
    assert "constant" in result.method


def test_dr_with_exact_reward_model_is_the_direct_method() -> None:
    predictions = RewardPredictions(TINY.rewards, np.array([0.1, 0.2, 0.3, 0.4]), model="oracle")
    assert doubly_robust(TINY, predictions, FAST).estimate == pytest.approx(0.25)


def test_point_estimates_match_the_full_estimators() -> None:
    predictions = RewardPredictions(np.full(4, 0.5), np.full(4, 0.4), model="constant")
    assert point_estimates(TINY) == pytest.approx({"IPS": 1.0, "SNIPS": 0.8})
    assert point_estimates(TINY, predictions, clip=1.5) == pytest.approx(
        {"IPS": 0.75, "SNIPS": 3 / 4, "DR": (1.15 - 0.1 + 1.15 + 0.4) / 4}
    )


def test_clipping_caps_weights_counts_them_and_warns() -> None:
    result = ips(TINY, EstimatorConfig(n_bootstrap=200, clip=1.5))
    assert result.estimate == pytest.approx((1.5 + 1.5) / 4)
    assert result.max_weight == 1.5
    assert result.n_clipped == 2
    assert result.warnings == (
        "2 importance weight(s) clipped at 1.5: the estimate is biased toward what the logging policy did "
        "(downward, for non-negative rewards)",
    )


def test_on_policy_ips_is_sample_mean_and_ess_is_n() -> None:
    rng = np.random.default_rng(1)
    propensities = rng.uniform(0.05, 0.9, size=500)
    rewards = (rng.random(500) < 0.3).astype(float)
    feedback = LoggedFeedback(rewards, propensities, propensities)
    for estimate in (ips(feedback, FAST), snips(feedback, FAST)):
        assert estimate.estimate == pytest.approx(rewards.mean())
        assert estimate.effective_sample_size == pytest.approx(500.0)
        assert estimate.max_weight == pytest.approx(1.0)
        assert estimate.warnings == ()


def test_ips_is_unbiased_on_a_synthetic_slate_bandit() -> None:
    rng = np.random.default_rng(20261128)
    ctr = rng.uniform(0.02, 0.2, size=(3, 8))
    logging = PositionPolicy.uniform(8, 3)
    target = PositionPolicy(np.tile(np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0]), (3, 1)))
    truth = true_value(ctr, target)
    estimates = []
    for _ in range(200):
        log = simulate_slate_log(ctr, logging, 1000, rng)
        pi = target.probabilities[log.positions, log.items]
        estimates.append(
            ips(LoggedFeedback(log.rewards, log.propensities, pi), EstimatorConfig(n_bootstrap=100)).estimate
        )
    mean = float(np.mean(estimates))
    standard_error = float(np.std(estimates, ddof=1) / math.sqrt(len(estimates)))
    assert abs(mean - truth) < 3 * standard_error


def test_bootstrap_interval_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(3)
    feedback = LoggedFeedback((rng.random(300) < 0.2).astype(float), np.full(300, 0.25), rng.uniform(0, 1, 300))
    first = ips(feedback, EstimatorConfig(n_bootstrap=300, seed=7))
    again = ips(feedback, EstimatorConfig(n_bootstrap=300, seed=7))
    other = ips(feedback, EstimatorConfig(n_bootstrap=300, seed=8))
    assert (first.ci_lower, first.ci_upper) == (again.ci_lower, again.ci_upper)
    assert (first.ci_lower, first.ci_upper) != (other.ci_lower, other.ci_upper)


def test_vectorised_bootstrap_equals_one_resample_at_a_time() -> None:
    rng = np.random.default_rng(4)
    numerator, denominator = rng.random(50), rng.random(50) + 0.5
    naive_rng = np.random.default_rng(11)
    expected = []
    for _ in range(120):
        idx = naive_rng.integers(0, 50, size=50)
        expected.append(numerator[idx].sum() / denominator[idx].sum())
    np.testing.assert_allclose(bootstrap_ratios(numerator, denominator, 120, seed=11), expected)


def test_bootstrap_interval_agrees_with_normal_interval_on_large_sample() -> None:
    rng = np.random.default_rng(5)
    n = 5000
    feedback = LoggedFeedback((rng.random(n) < 0.3).astype(float), np.full(n, 0.5), rng.uniform(0.2, 0.8, n))
    result = ips(feedback, EstimatorConfig(n_bootstrap=1000))
    assert result.ci_lower < result.estimate < result.ci_upper
    half_width = 1.959964 * result.standard_error
    assert result.ci_lower == pytest.approx(result.estimate - half_width, abs=0.15 * half_width)
    assert result.ci_upper == pytest.approx(result.estimate + half_width, abs=0.15 * half_width)


def test_low_effective_sample_size_warns() -> None:
    propensities = np.full(1000, 0.5)
    target = np.zeros(1000)
    target[:10] = 1.0  # the target only agrees with the log on 10 units
    result = ips(LoggedFeedback(np.ones(1000), propensities, target), FAST)
    assert result.effective_sample_size == pytest.approx(10.0)
    assert len(result.warnings) == 1
    assert "effective sample size 10 is 1.0% of the 1,000 logged units" in result.warnings[0]


def test_target_that_never_picks_a_logged_action_is_refused() -> None:
    feedback = LoggedFeedback(np.ones(3), np.full(3, 0.5), np.zeros(3))
    with pytest.raises(DegenerateLogError, match="these logs say nothing about it"):
        ips(feedback, FAST)


@pytest.mark.parametrize(
    ("propensities", "message"),
    [
        ([0.5, 0.0, 0.5], r"propensities must lie in \(0, 1\].*row 1 is 0.0"),
        ([0.5, -0.2, 0.5], r"row 1 is -0.2"),
        ([0.5, 1.5, 0.5], r"row 1 is 1.5"),
        ([0.5, float("nan"), 0.5], r"missing or non-finite.*row 1.*missing propensities cannot be inverse-weighted"),
    ],
)
def test_impossible_propensities_are_refused_with_the_row(propensities: list[float], message: str) -> None:
    with pytest.raises(InvalidLogError, match=message):
        LoggedFeedback(np.zeros(3), np.array(propensities), np.full(3, 0.5))


def test_length_mismatch_and_nan_rewards_are_refused() -> None:
    with pytest.raises(InvalidLogError, match="length mismatch: 3 rewards, 2 propensities"):
        LoggedFeedback(np.zeros(3), np.full(2, 0.5), np.full(3, 0.5))
    with pytest.raises(InvalidLogError, match="rewards has 1 missing"):
        LoggedFeedback(np.array([0.0, np.nan]), np.full(2, 0.5), np.full(2, 0.5))
    feedback = LoggedFeedback(np.zeros(3), np.full(3, 0.5), np.full(3, 0.5))
    with pytest.raises(InvalidLogError, match="4 reward predictions for 3"):
        doubly_robust(feedback, RewardPredictions(np.zeros(4), np.zeros(4), "x"), FAST)


def test_target_probability_outside_unit_interval_is_a_policy_error() -> None:
    with pytest.raises(InvalidPolicyError, match=r"target_probabilities must lie in \[0, 1\]"):
        LoggedFeedback(np.zeros(2), np.full(2, 0.5), np.array([0.5, 1.2]))


@pytest.mark.parametrize(
    "kwargs",
    [{"confidence": 1.0}, {"n_bootstrap": 10}, {"clip": 0.0}, {"clip": float("inf")}, {"min_ess_fraction": 2.0}],
)
def test_config_out_of_range_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidConfigError):
        EstimatorConfig(**kwargs)  # type: ignore[arg-type]


def test_effective_sample_size_of_equal_weights_is_their_count() -> None:
    assert effective_sample_size([3.0, 3.0, 3.0, 3.0]) == pytest.approx(4.0)
    assert effective_sample_size([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_clustered_units_keep_the_estimate_and_resample_whole_clusters() -> None:
    # Two users with one click in two impressions each: per user A_c = 1, B_c = 2, so V = 0.5 and every
    # cluster's residual A_c - V B_c is 0 (no spread between users), while impressions alone differ.
    feedback = LoggedFeedback(np.array([1.0, 0.0, 1.0, 0.0]), np.full(4, 0.5), np.full(4, 0.5), clusters=[7, 7, 3, 3])
    clustered = ips(feedback, FAST)
    alone = ips(LoggedFeedback(feedback.rewards, feedback.propensities, feedback.target_probabilities), FAST)

    assert clustered.estimate == alone.estimate == 0.5
    assert clustered.n_clusters == 2
    assert alone.n_clusters is None
    assert clustered.standard_error == 0.0
    assert (clustered.ci_lower, clustered.ci_upper) == (0.5, 0.5)
    assert alone.standard_error == pytest.approx(np.std([1, -1, 1, -1], ddof=1) / 2 / 2)
    with pytest.raises(InvalidLogError, match="one label per logged unit"):
        LoggedFeedback(np.zeros(3), np.full(3, 0.5), np.full(3, 0.5), clusters=[1, 2])


def test_bca_levels_shift_by_twice_the_bias_correction_when_the_jackknife_is_symmetric() -> None:
    from scipy import special

    from engine.offpolicy import estimators

    # A quarter of the replicates below V = 1: z0 = Phi^-1(0.25); the jackknife (3 - a_i) / 2 = 1.5, 1, 0.5
    # is symmetric, so acc = 0 and q' = Phi(2 z0 + z_q).
    replicates = np.array([0.5, 1.5, 2.0, 2.5])
    levels = estimators.bca_quantiles(replicates, 1.0, np.array([0.0, 1.0, 2.0]), np.ones(3), (0.025, 0.975))
    z0 = special.ndtri(0.25)
    expected = [special.ndtr(2 * z0 + special.ndtri(q)) for q in (0.025, 0.975)]
    assert levels == pytest.approx(expected)
    # No bias (half below) and a symmetric jackknife: the percentile levels.
    centred = estimators.bca_quantiles(np.array([0.5, 1.5]), 1.0, np.array([0.0, 1.0, 2.0]), np.ones(3), (0.1, 0.9))
    assert centred == pytest.approx((0.1, 0.9))
    with pytest.raises(InvalidConfigError, match="interval must be one of percentile, bca"):
        EstimatorConfig(interval="studentized")
