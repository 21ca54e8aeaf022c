"""Whole-ranking IPS under the independent-item, cascade and whole-ranking assumptions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.offpolicy import (
    RANKING_ASSUMPTIONS,
    ClickModel,
    EstimatorConfig,
    InvalidConfigError,
    InvalidLogError,
    InvalidPolicyError,
    PlackettLuce,
    RankingFeedback,
    ranking_ips,
    ranking_true_value,
    simulate_ranking_log,
)

FAST = EstimatorConfig(n_bootstrap=100)
# Two logged rankings of two slots; round probabilities that are only required to be consistent
# (prefixes non-increasing along the ranking, never above the same slot's marginal).
TINY = RankingFeedback(
    rewards=np.array([[1.0, 0.0], [0.0, 1.0]]),
    logging_marginals=np.full((2, 2), 0.5),
    target_marginals=np.array([[0.8, 0.4], [0.2, 0.6]]),
    logging_prefixes=np.array([[0.5, 0.25], [0.5, 0.25]]),
    target_prefixes=np.array([[0.8, 0.3], [0.2, 0.1]]),
)


@pytest.mark.parametrize(
    ("assumption", "expected"),
    [
        # w = [[1.6, 0.8], [0.4, 1.2]]: ((1.6*1 + 0) / 2 + (0 + 1.2*1) / 2) / 2
        ("independent", 0.7),
        # w = [[1.6, 1.2], [0.4, 0.4]]: ((1.6) / 2 + (0.4) / 2) / 2
        ("cascade", 0.5),
        # whole-ranking w = [1.2, 0.4] on both slots: ((1.2) / 2 + (0.4) / 2) / 2
        ("standard", 0.4),
    ],
)
def test_ranking_ips_on_hand_computed_rankings(assumption: str, expected: float) -> None:
    result = ranking_ips(TINY, assumption, FAST)  # type: ignore[arg-type]
    assert result.estimate == pytest.approx(expected)
    assert result.n == 2
    assert result.method == RANKING_ASSUMPTIONS[assumption]


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


ATTRACTIVENESS = np.array([0.6, 0.5, 0.2, 0.1, 0.05])
UNIFORM = PlackettLuce(np.ones(5), 3)
TOP_HEAVY = PlackettLuce(np.array([20.0, 10.0, 1.0, 1.0, 1.0]), 3)


def _estimates_over_seeds(click_model: ClickModel, seed: int) -> tuple[float, dict[str, list[float]]]:
    """The true CTR of TOP_HEAVY and each assumption's estimates from 40 uniform logs of 1,000 rankings."""
    rng = np.random.default_rng(seed)
    estimates: dict[str, list[float]] = {a: [] for a in RANKING_ASSUMPTIONS}
    for _ in range(40):
        feedback = simulate_ranking_log(UNIFORM, TOP_HEAVY, ATTRACTIVENESS, click_model, 1000, rng)
        for assumption, values in estimates.items():
            values.append(ranking_ips(feedback, assumption, FAST).estimate)  # type: ignore[arg-type]
    return ranking_true_value(TOP_HEAVY, ATTRACTIVENESS, click_model), estimates


def test_under_cascade_clicks_only_the_cascade_and_whole_ranking_weights_are_unbiased() -> None:
    truth, estimates = _estimates_over_seeds("cascade", 20261128)
    for assumption in ("cascade", "standard"):
        mean, se = _mean_and_se(estimates[assumption])
        assert abs(mean - truth) < 3 * se
    # Two attractive items on top take the clicks from below; position-wise weights ignore that.
    mean, se = _mean_and_se(estimates["independent"])
    assert mean - truth > 10 * se


def test_under_independent_clicks_the_position_wise_weights_are_unbiased_and_least_variable() -> None:
    truth, estimates = _estimates_over_seeds("independent", 7)
    mean, se = _mean_and_se(estimates["independent"])
    assert abs(mean - truth) < 3 * se
    assert np.std(estimates["independent"]) < np.std(estimates["cascade"]) < np.std(estimates["standard"])


def test_plackett_luce_probabilities_are_consistent() -> None:
    policy = PlackettLuce(np.array([1.0, 2.0, 3.0, 4.0]), 2)
    rankings, probabilities = policy.enumerate()
    assert len(rankings) == 12
    assert probabilities.sum() == pytest.approx(1.0)
    # P(3 then 2) = 4/10 * 3/6
    assert probabilities[[tuple(r) for r in rankings].index((3, 2))] == pytest.approx(0.2)
    np.testing.assert_allclose(policy.marginals().sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(policy.marginals()[0], [0.1, 0.2, 0.3, 0.4])


def test_impossible_ranking_probabilities_are_refused() -> None:
    with pytest.raises(InvalidLogError, match=r"logging_prefixes must lie in \(0, 1\]: ranking 1, slot 0 is 0.0"):
        RankingFeedback(
            TINY.rewards, TINY.logging_marginals, TINY.target_marginals, [[0.5, 0.25], [0, 0]], TINY.target_prefixes
        )
    with pytest.raises(InvalidPolicyError, match="target prefix probabilities must not increase"):
        RankingFeedback(
            TINY.rewards, TINY.logging_marginals, TINY.target_marginals, TINY.logging_prefixes, [[0.8, 0.3], [0.2, 0.3]]
        )
    with pytest.raises(InvalidPolicyError, match="cannot exceed the marginal"):
        RankingFeedback(
            TINY.rewards, TINY.logging_marginals, TINY.target_marginals, TINY.logging_prefixes, [[0.8, 0.5], [0.2, 0.1]]
        )
    with pytest.raises(InvalidLogError, match=r"logging_marginals has shape \(2, 3\) but rewards \(2, 2\)"):
        RankingFeedback(
            TINY.rewards, np.full((2, 3), 0.5), TINY.target_marginals, TINY.logging_prefixes, TINY.target_prefixes
        )
    with pytest.raises(InvalidConfigError, match="assumption must be one of"):
        ranking_ips(TINY, "pseudo-inverse", FAST)  # type: ignore[arg-type]
