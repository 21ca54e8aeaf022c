"""Thompson allocation: floor by water-filling, exact and Monte Carlo probability best, burn-in, history."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from engine.bandits import (
    ArmCounts,
    BanditState,
    InvalidBanditConfigError,
    InvalidBanditDataError,
    ThompsonConfig,
    WeightUpdate,
    allocation_for,
    ctr_design_effect,
    floor_weights,
    probability_best,
    served_weights,
    thompson_update,
)
from engine.stats import RatioSample


def _reference_probability_best(counts: list[ArmCounts], arm: int) -> float:
    """P(theta_arm is the max) = integral f_arm(x) prod_{j != arm} F_j(x) dx, with scipy.stats."""
    dists = [stats.beta(1 + c.successes, 1 + c.trials - c.successes) for c in counts]
    others = [d for j, d in enumerate(dists) if j != arm]
    lo, hi = dists[arm].ppf(1e-12), dists[arm].ppf(1 - 1e-12)
    value, _ = integrate.quad(
        lambda x: dists[arm].pdf(x) * math.prod(d.cdf(x) for d in others), lo, hi, epsabs=1e-12, limit=200
    )
    return float(value)


# --- floor ------------------------------------------------------------------------------------


def test_floor_pins_small_arms_and_shares_the_rest_in_proportion() -> None:
    # Arm 2 pinned at 0.1; arms 0 and 1 share 0.9 as 0.6 : 0.35.
    assert floor_weights([0.6, 0.35, 0.05], 0.1) == pytest.approx((0.6 * 0.9 / 0.95, 0.35 * 0.9 / 0.95, 0.1))


def test_floor_cascades_when_renormalising_pushes_another_arm_below_it() -> None:
    # Round 1 pins arm 2 at 0.2; arms 0, 1 would get 0.8 * (0.7, 0.22) / 0.92 = (0.6087, 0.1913):
    # arm 1 is now below 0.2, so round 2 pins it too and arm 0 keeps 0.6.
    assert floor_weights([0.7, 0.22, 0.08], 0.2) == pytest.approx((0.6, 0.2, 0.2))


def test_floor_holds_where_clip_then_divide_would_break_it() -> None:
    # Clipping (0.9, 0.08, 0.02) to (0.9, 0.1, 0.1) and dividing by 1.1 gives 0.0909 < 0.1.
    weights = floor_weights([0.9, 0.08, 0.02], 0.1)
    assert weights == pytest.approx((0.8, 0.1, 0.1))
    assert min(weights) >= 0.1 - 1e-15


def test_floor_two_arms_and_edge_values() -> None:
    assert floor_weights([0.99, 0.01], 0.05) == pytest.approx((0.95, 0.05))
    assert floor_weights([2.0, 1.0, 1.0], 0.0) == pytest.approx((0.5, 0.25, 0.25))  # proportional, normalised
    assert floor_weights([1.0, 0.0, 0.0], 1 / 3) == pytest.approx((1 / 3, 1 / 3, 1 / 3))  # floor = 1/k: equal
    assert floor_weights([0.3, 0.7], 0.05) == pytest.approx((0.3, 0.7))  # nothing below the floor: unchanged


@pytest.mark.parametrize(
    ("probabilities", "min_share", "error"),
    [
        ([0.5], 0.0, InvalidBanditDataError),
        ([0.5, -0.1, 0.6], 0.0, InvalidBanditDataError),
        ([0.0, 0.0], 0.0, InvalidBanditDataError),
        ([0.5, math.nan], 0.0, InvalidBanditDataError),
        ([0.5, 0.5, 0.0], 0.34, InvalidBanditConfigError),
        ("ab", 0.1, InvalidBanditDataError),
    ],
)
def test_floor_rejects_impossible_input(probabilities: object, min_share: float, error: type[Exception]) -> None:
    with pytest.raises(error):
        floor_weights(probabilities, min_share)  # type: ignore[arg-type]


# --- probability best -------------------------------------------------------------------------


def test_two_arm_probability_best_matches_scipy_integral() -> None:
    counts = [ArmCounts(1000, 50), ArmCounts(1000, 62)]
    q = probability_best(counts)
    assert q[1] == pytest.approx(_reference_probability_best(counts, 1), abs=1e-9)
    assert q[0] + q[1] == pytest.approx(1.0)
    assert 0.85 < q[1] < 0.9  # the +24 % arm on 1,000 users each: likely, not certain


def test_identical_arms_are_equally_likely_best() -> None:
    assert probability_best([ArmCounts(500, 40), ArmCounts(500, 40)]) == pytest.approx((0.5, 0.5), abs=1e-9)


def test_three_arm_monte_carlo_is_within_four_standard_errors_of_quadrature() -> None:
    counts = [ArmCounts(800, 40), ArmCounts(800, 52), ArmCounts(800, 47)]
    q = probability_best(counts, draws=100_000, seed=7)
    for arm in range(3):
        ref = _reference_probability_best(counts, arm)
        assert abs(q[arm] - ref) < 4 * math.sqrt(ref * (1 - ref) / 100_000), (arm, q[arm], ref)
    assert sum(q) == pytest.approx(1.0)
    assert probability_best(counts, draws=100_000, seed=7) == q  # seeded: reproducible


# --- updates and burn-in ----------------------------------------------------------------------


def test_burn_in_gives_equal_weights_until_trials_and_periods_are_both_reached() -> None:
    config = ThompsonConfig(min_share=0.1, burn_in_trials=1000, burn_in_periods=2)
    strong = [ArmCounts(5000, 250), ArmCounts(5000, 400)]  # arm 1 is clearly better
    early = thompson_update(strong, period=1, config=config)  # enough trials, too early
    thin = thompson_update([ArmCounts(999, 50), ArmCounts(5000, 400)], period=9, config=config)  # late, arm 0 thin
    after = thompson_update(strong, period=2, config=config)
    assert (early.weights, early.burn_in) == ((0.5, 0.5), True)
    assert (thin.weights, thin.burn_in) == ((0.5, 0.5), True)
    assert after.burn_in is False
    assert after.weights == pytest.approx((0.1, 0.9))  # P(arm 1 best) ~ 1, so arm 0 sits at the floor
    assert early.probability_best[1] > 0.999  # computed during burn-in too, for the page


def test_update_weights_are_the_floored_probabilities_and_posteriors_are_beta() -> None:
    counts = [ArmCounts(1000, 50), ArmCounts(1000, 58)]
    update = thompson_update(counts, period=3, config=ThompsonConfig(min_share=0.2, burn_in_trials=0))
    q = probability_best(counts)
    assert update.weights == pytest.approx(floor_weights(q, 0.2))
    assert update.weights[0] > 0.2  # q_0 ~ 0.22: above the floor, so weights = q
    post = update.posteriors[1]
    assert (post.alpha, post.beta, post.mean) == (59.0, 943.0, pytest.approx(59 / 1002))
    assert (post.ci_low, post.ci_high) == pytest.approx(tuple(stats.beta(59, 943).ppf([0.025, 0.975])))
    assert (update.trials, update.successes) == ((1000, 1000), (50, 58))


def test_state_history_round_trips_through_json_and_charts() -> None:
    config = ThompsonConfig(burn_in_trials=100, burn_in_periods=1)
    state = BanditState()
    assert state.current_weights(2) == (0.5, 0.5)
    state = state.advance([ArmCounts(0, 0), ArmCounts(0, 0)], config)
    state = state.advance([ArmCounts(500, 20), ArmCounts(500, 45)], config)
    assert state.next_period == 2
    assert state.updates[0].burn_in
    assert not state.updates[1].burn_in
    series = state.weights_series()
    assert series["period"] == [0, 1]
    assert series["arm_0"][0] == 0.5
    assert series["arm_1"][1] == state.current_weights(2)[1] > 0.9
    assert BanditState.from_list(state.to_list()) == state


def test_state_refuses_gaps_and_mismatched_arms() -> None:
    update = thompson_update([ArmCounts(10, 1), ArmCounts(10, 2)], period=1)
    with pytest.raises(InvalidBanditDataError, match="periods 0, 1, 2"):
        BanditState((update,))
    first = thompson_update([ArmCounts(10, 1), ArmCounts(10, 2)], period=0)
    three = thompson_update([ArmCounts(10, 1), ArmCounts(10, 2), ArmCounts(10, 3)], period=1)
    with pytest.raises(InvalidBanditDataError, match="arms"):
        BanditState((first, three))
    with pytest.raises(InvalidBanditDataError, match="not a stored WeightUpdate"):
        WeightUpdate.from_dict({"period": 0})


def test_served_weights_are_the_rounded_bucket_shares() -> None:
    # Bounds round(10,000 x running sum) = 3333, 6667, 10000.
    assert served_weights(allocation_for((1 / 3, 1 / 3, 1 / 3))) == (0.3333, 0.3334, 0.3333)
    assert served_weights(allocation_for((0.05, 0.95), traffic=0.5)) == (0.05, 0.95)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ArmCounts(10, 11), InvalidBanditDataError),
        (lambda: ArmCounts(-1, 0), InvalidBanditDataError),
        (lambda: ArmCounts(1.5, 0), InvalidBanditDataError),  # type: ignore[arg-type]
        (lambda: ArmCounts(10, 1, design_effect=0.5), InvalidBanditDataError),
        (lambda: ArmCounts(10, 1, design_effect=float("nan")), InvalidBanditDataError),
        (lambda: ThompsonConfig(min_share=1.0), InvalidBanditConfigError),
        (lambda: ThompsonConfig(prior=(0.0, 1.0)), InvalidBanditConfigError),
        (lambda: ThompsonConfig(draws=10), InvalidBanditConfigError),
        (lambda: ThompsonConfig(burn_in_periods=-1), InvalidBanditConfigError),
        (lambda: probability_best([ArmCounts(10, 1)]), InvalidBanditDataError),
        (lambda: thompson_update([ArmCounts(10, 1), ArmCounts(10, 1)], period=-1), InvalidBanditDataError),
        (
            lambda: thompson_update(
                [ArmCounts(10, 1)] * 3, period=0, config=ThompsonConfig(min_share=0.4, burn_in_trials=0)
            ),
            InvalidBanditConfigError,
        ),
    ],
)
def test_bad_input_raises_a_bandit_error(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


def test_numpy_counts_are_accepted_and_normalised() -> None:
    counts = ArmCounts(np.int64(10), np.int64(3))  # type: ignore[arg-type]
    assert type(counts.trials) is int
    assert counts.successes == 3


# --- design effect (correlated trials, CTR) ---------------------------------------------------


def test_ctr_design_effect_of_a_worked_example() -> None:
    # (clicks, impressions) per user: R = 4 / 40 = 0.1, residuals x - R y = 2, -1, 0, -1, so the
    # delta-method Var(R) = (6 / 3) / 10^2 / 4 = 0.005 and the binomial 0.1 x 0.9 / 40 = 0.00225.
    sample = RatioSample.from_values([3, 0, 1, 0], [10, 10, 10, 10])
    assert ctr_design_effect(sample) == pytest.approx(20 / 9)
    # Every user clicking alike varies less than independent impressions would: never below 1.
    assert ctr_design_effect(RatioSample.from_values([1, 1, 1, 1], [10, 10, 10, 10])) == 1.0
    assert ctr_design_effect(RatioSample.from_values([0, 0], [10, 10])) == 1.0  # R = 0: no variance to compare
    assert ctr_design_effect(RatioSample.from_values([2], [10])) == 1.0  # one user: undefined, so 1


def test_the_design_effect_divides_the_posterior_counts_but_not_the_burn_in() -> None:
    deflated = [ArmCounts(2000, 100, design_effect=2.0), ArmCounts(2000, 116, design_effect=2.0)]
    halved = [ArmCounts(1000, 50), ArmCounts(1000, 58)]

    assert probability_best(deflated) == pytest.approx(probability_best(halved), abs=1e-12)
    assert probability_best(deflated)[1] < probability_best([ArmCounts(2000, 100), ArmCounts(2000, 116)])[1]
    update = thompson_update(deflated, period=1, config=ThompsonConfig(burn_in_trials=1500))
    assert update.burn_in is False  # 2,000 trials per arm, though the posterior counts 1,000
    assert (update.posteriors[0].alpha, update.posteriors[0].beta) == (51.0, 951.0)
    assert (update.trials, update.successes) == ((2000, 2000), (100, 116))
