"""Position-wise slate estimators: hand-computed slate, reward model, cross-fitting, coverage warnings."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from engine.offpolicy import (
    EstimatorConfig,
    InvalidLogError,
    InvalidPolicyError,
    PositionPolicy,
    RewardModelConfig,
    SlateLog,
    cross_fitted_predictions,
    evaluate_position_wise,
    fit_item_position_ctr,
    simulate_slate_log,
    true_value,
)

FAST = EstimatorConfig(n_bootstrap=200)
# Two items, two positions, one impression of each (item, position) pair, uniform logging.
TINY_SLATE = SlateLog(
    items=np.array([0, 1, 0, 1]),
    positions=np.array([0, 0, 1, 1]),
    rewards=np.array([1.0, 0.0, 0.0, 1.0]),
    propensities=np.full(4, 0.5),
    n_items=2,
    n_positions=2,
)
TINY_TARGET = PositionPolicy(np.array([[1.0, 0.0], [0.5, 0.5]]))


def test_position_wise_ips_on_hand_computed_slate() -> None:
    result = evaluate_position_wise(TINY_SLATE, TINY_TARGET, FAST, RewardModelConfig(folds=2))
    # pi_i = [1, 0, 0.5, 0.5], w = [2, 0, 1, 1]: IPS = (2 + 0 + 0 + 1) / 4, SNIPS = 3 / 4
    assert result.ips.estimate == pytest.approx(0.75)
    assert result.snips.estimate == pytest.approx(0.75)
    assert [p.estimate if p else None for p in result.per_position] == pytest.approx([1.0, 0.5])
    # position 0: (2*1 + 0*0) / 2; position 1: (1*0 + 1*1) / 2
    assert result.unlogged_target_mass == 0.0
    assert "position-wise" in result.method


def test_evaluation_is_json_serialisable_for_the_task_that_will_store_it() -> None:
    result = evaluate_position_wise(TINY_SLATE, TINY_TARGET, FAST, RewardModelConfig(folds=2))
    payload = json.loads(json.dumps(dataclasses.asdict(result)))
    assert payload["ips"]["estimate"] == pytest.approx(0.75)
    assert payload["per_position"][1]["estimator"] == "IPS"
    assert payload["method"] == result.method


def test_reward_model_shrinks_each_cell_toward_its_position_ctr() -> None:
    model = fit_item_position_ctr(TINY_SLATE, prior_strength=2.0)
    # position CTRs are both 0.5: (1 + 2*0.5) / (1 + 2) and (0 + 2*0.5) / (1 + 2)
    np.testing.assert_allclose(model, [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(fit_item_position_ctr(TINY_SLATE, prior_strength=0.0), [[1, 0], [0, 1]])


def test_cross_fitting_keeps_a_units_own_click_out_of_its_prediction() -> None:
    rng = np.random.default_rng(2)
    log = simulate_slate_log(np.full((3, 5), 0.3), PositionPolicy.uniform(5, 3), 200, rng)
    target = PositionPolicy.uniform(5, 3)
    config = RewardModelConfig(prior_strength=1.0, folds=4, seed=0)
    before = cross_fitted_predictions(log, target, config)
    flipped = log.rewards.copy()
    flipped[17] = 1.0 - flipped[17]
    changed = SlateLog(log.items, log.positions, flipped, log.propensities, 5, 3)
    after = cross_fitted_predictions(changed, target, config)
    assert after.logged[17] == before.logged[17]
    assert after.under_target[17] == before.under_target[17]
    assert not np.array_equal(after.logged, before.logged)  # the click does inform the other folds


def test_dr_is_unbiased_and_less_variable_than_ips_on_synthetic_slates() -> None:
    rng = np.random.default_rng(20261128)
    # Strong position effect and item effects: a model that learns them removes most of IPS's noise.
    ctr = np.outer([0.3, 0.2, 0.1], rng.uniform(0.2, 1.0, size=6))
    logging = PositionPolicy.uniform(6, 3)
    target = PositionPolicy(np.tile(np.array([0.5, 0.2, 0.1, 0.1, 0.1, 0.0]), (3, 1)))
    truth = true_value(ctr, target)
    ips_estimates, dr_estimates = [], []
    for _ in range(60):
        result = evaluate_position_wise(simulate_slate_log(ctr, logging, 600, rng), target, FAST)
        ips_estimates.append(result.ips.estimate)
        dr_estimates.append(result.dr.estimate)
    dr_se = float(np.std(dr_estimates, ddof=1) / math.sqrt(len(dr_estimates)))
    assert abs(float(np.mean(dr_estimates)) - truth) < 3 * dr_se
    assert np.std(dr_estimates) < np.std(ips_estimates)


def test_target_mass_on_never_logged_pairs_is_warned_about() -> None:
    log = SlateLog(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), np.zeros(4), np.full(4, 0.5), 3, 1)
    target = PositionPolicy(np.array([[0.5, 0.25, 0.25]]))  # item 2 never appears in the log
    result = evaluate_position_wise(log, target, FAST, RewardModelConfig(folds=2))
    assert result.unlogged_target_mass == pytest.approx(0.25)
    assert len(result.warnings) == 1
    assert "puts 25.0% of its placements on (item, position) pairs these logs never show" in result.warnings[0]


def test_a_slot_the_logs_say_nothing_about_gets_no_estimate_and_a_warning() -> None:
    # At position 1 the target only shows item 1, which the logs only ever showed at position 0.
    log = SlateLog(np.array([0, 1, 0, 0]), np.array([0, 0, 1, 1]), np.array([1.0, 0, 0, 1]), np.full(4, 0.5), 2, 2)
    target = PositionPolicy(np.array([[0.5, 0.5], [0.0, 1.0]]))
    result = evaluate_position_wise(log, target, FAST, RewardModelConfig(folds=2))
    assert result.per_position[1] is None
    assert result.per_position[0] is not None
    assert result.ips.estimate == pytest.approx(0.25)  # w = [1, 1, 0, 0]: (1 + 0) / 4
    assert "the target never places a logged item at position 2: no estimate for it alone" in result.warnings
    assert result.unlogged_target_mass == pytest.approx(0.5)  # half the impressions are at position 1


def test_intervals_cover_the_truth_on_synthetic_slates() -> None:
    rng = np.random.default_rng(99)
    ctr = np.outer([0.3, 0.2, 0.1], rng.uniform(0.2, 1.0, size=6))
    target = PositionPolicy(np.tile(np.array([0.5, 0.2, 0.1, 0.1, 0.1, 0.0]), (3, 1)))
    truth = true_value(ctr, target)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    for seed in range(60):
        log = simulate_slate_log(ctr, PositionPolicy.uniform(6, 3), 600, rng)
        result = evaluate_position_wise(log, target, EstimatorConfig(n_bootstrap=200, seed=seed))
        for name in covered:
            estimate = getattr(result, name)
            covered[name] += estimate.ci_lower <= truth <= estimate.ci_upper
    # Nominal 95 %: below 51 of 60 would be a 1-in-100 event for a calibrated interval.
    assert min(covered.values()) >= 51, covered


def test_empirical_frequencies_estimate_a_policy_with_optional_smoothing() -> None:
    policy = PositionPolicy.from_frequencies([0, 0, 1, 2], [0, 0, 0, 1], n_items=3, n_positions=2)
    np.testing.assert_allclose(policy.probabilities, [[2 / 3, 1 / 3, 0], [0, 0, 1]])
    smoothed = PositionPolicy.from_frequencies([0, 0, 1, 2], [0, 0, 0, 1], 3, 2, smoothing=1.0)
    np.testing.assert_allclose(smoothed.probabilities, [[3 / 6, 2 / 6, 1 / 6], [1 / 4, 1 / 4, 2 / 4]])
    with pytest.raises(InvalidLogError, match="position 1 has no logged impression"):
        PositionPolicy.from_frequencies([0], [0], 3, 2)


def test_bad_slates_and_policies_are_refused() -> None:
    with pytest.raises(InvalidLogError, match=r"items must lie in \[0, 2\), row 1 is 2"):
        SlateLog(np.array([0, 2]), np.array([0, 0]), np.zeros(2), np.full(2, 0.5), 2, 1)
    with pytest.raises(InvalidLogError, match="length mismatch: 2 items but 3 positions"):
        SlateLog(np.array([0, 1]), np.array([0, 0, 0]), np.zeros(2), np.full(2, 0.5), 2, 1)
    with pytest.raises(InvalidLogError, match="positions must be integers"):
        SlateLog(np.array([0, 1]), np.array([0, 0.5]), np.zeros(2), np.full(2, 0.5), 2, 1)
    with pytest.raises(InvalidPolicyError, match=r"position 0 sums to 0\.9"):
        PositionPolicy(np.array([[0.5, 0.4]]))
    with pytest.raises(InvalidPolicyError, match="covers 1 positions x 3 items but the log has 2 x 2"):
        evaluate_position_wise(TINY_SLATE, PositionPolicy.uniform(3, 1), FAST)
