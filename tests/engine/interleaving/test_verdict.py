"""Credit, ties, the sign test and its calibration under identical rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from engine.interleaving import (
    A_WINS,
    B_WINS,
    NO_TEAM,
    TEAM_A,
    TEAM_B,
    TIE,
    Interleaving,
    InterleavingError,
    Tally,
    credit,
    interleaving_test,
    random_coins,
    sessions_for_power,
    team_draft_many,
)

A, B, N = TEAM_A, TEAM_B, NO_TEAM


def _lists(teams: list[list[int]]) -> Interleaving:
    team = np.array(teams, dtype=np.int8)
    return Interleaving(items=np.where(team == N, -1, np.arange(team.size).reshape(team.shape)), team=team)


def test_clicks_are_credited_to_the_contributing_team_and_equal_credit_is_a_tie() -> None:
    lists = _lists([[A, B, B, A], [A, B, B, A], [B, A, N, N], [A, B, A, B]])
    clicked = np.array(
        [
            [True, False, True, True],  # A 2, B 1: A wins
            [False, True, True, False],  # B 2: B wins
            [True, True, False, False],  # 1 each: tie
            [False, False, False, False],  # no clicks: tie
        ]
    )
    result = credit(lists, clicked)
    assert result.clicks_a.tolist() == [2, 0, 1, 0]
    assert result.clicks_b.tolist() == [1, 2, 1, 0]
    assert result.outcome.tolist() == [A_WINS, B_WINS, TIE, TIE]
    assert result.tally() == Tally(wins_a=1, wins_b=1, ties=2)
    assert Tally.from_outcomes(result.outcome) == Tally(1, 1, 2)


def test_credit_refuses_misaligned_clicks_and_clicks_on_empty_slots() -> None:
    lists = _lists([[A, B, N]])
    with pytest.raises(InterleavingError, match="shape"):
        credit(lists, np.zeros((1, 2), bool))
    with pytest.raises(InterleavingError, match="empty slot"):
        credit(lists, np.array([[False, False, True]]))
    with pytest.raises(InterleavingError, match="boolean"):
        credit(lists, np.zeros((1, 3), int))


def test_sign_test_matches_hand_computation_and_scipy() -> None:
    result = interleaving_test(Tally(wins_a=8, wins_b=2, ties=5))
    # P(X >= 8 | n = 10, 1/2) = (45 + 10 + 1) / 1024; two-sided (symmetric) = twice that.
    assert result.p_value == pytest.approx(2 * 56 / 1024, abs=1e-12)
    assert result.p_value == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue, abs=1e-15)
    assert (result.sessions, result.share_a, result.delta) == (15, 0.8, pytest.approx(6 / 15))
    z = special.ndtri(0.975)
    centre = (8 + z * z / 2) / (10 + z * z)
    half = z / (10 + z * z) * math.sqrt(8 * 2 / 10 + z * z / 4)
    assert result.share_a_interval == pytest.approx((centre - half, centre + half), abs=1e-12)
    expected = ((2 * (centre - half) - 1) * 10 / 15, (2 * (centre + half) - 1) * 10 / 15)
    assert result.delta_interval == pytest.approx(expected)
    assert not result.significant
    assert result.preferred is None
    assert "5 tied sessions" in result.method


def test_a_clear_preference_for_b_is_significant_and_named() -> None:
    result = interleaving_test(Tally(wins_a=30, wins_b=70, ties=100), alpha=0.05)
    assert result.p_value == pytest.approx(stats.binomtest(30, 100).pvalue)
    assert result.significant
    assert result.preferred == "B"
    assert result.delta == pytest.approx(-0.2)
    assert result.delta_interval is not None
    assert result.delta_interval[1] < 0


def test_only_ties_give_no_evidence_and_no_interval() -> None:
    result = interleaving_test(Tally(0, 0, 12))
    assert (result.p_value, result.delta, result.share_a, result.delta_interval) == (1.0, 0.0, None, None)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Tally(-1, 0, 0), "wins_a must be at least 0"),
        (lambda: Tally(1, 2.5, 0), "wins_b must be an integer"),  # type: ignore[arg-type]
        (lambda: interleaving_test(Tally(0, 0, 0)), "no sessions"),
        (lambda: interleaving_test(Tally(1, 2, 0), alpha=1.5), "alpha must lie"),
        (lambda: Tally.from_outcomes([1, 2]), "outcomes must be"),
        (lambda: sessions_for_power(0.2, 0.2), "no preference"),
        (lambda: sessions_for_power(0.7, 0.6), "at most 1"),
    ],
)
def test_bad_tallies_and_settings_are_refused(call: object, message: str) -> None:
    with pytest.raises(InterleavingError, match=message):
        call()  # type: ignore[operator]


def _aa_false_positive_rate(coins: np.ndarray, runs: int, sessions: int, rng: np.random.Generator) -> float:
    """Share of `runs` A/A experiments (identical rankings, position-biased clicks) with p < 0.05."""
    n = runs * sessions
    ranking = np.tile(np.arange(10), (n, 1))
    lists = team_draft_many(ranking, ranking, 10, coins)
    clicked = rng.random((n, 10)) < 0.4 / np.arange(1, 11)
    outcome = credit(lists, clicked).outcome.reshape(runs, sessions)
    p_values = [interleaving_test(Tally.from_outcomes(row)).p_value for row in outcome]
    return float(np.mean(np.array(p_values) < 0.05))


def test_identical_rankings_keep_the_test_calibrated() -> None:
    rng = np.random.default_rng(20260128)
    runs, sessions = 600, 200
    rate = _aa_false_positive_rate(random_coins(runs * sessions, 10, rng), runs, sessions, rng)
    # The exact binomial test is slightly conservative (discrete); 600 runs give a standard error of 0.009.
    assert 0.025 <= rate <= 0.065


def test_without_the_coin_position_bias_would_fake_a_winner() -> None:
    # The control for the calibration test: if A always picked first it would own rank 1 and win A/A tests.
    rng = np.random.default_rng(5)
    runs, sessions = 100, 200
    rate = _aa_false_positive_rate(np.ones((runs * sessions, 5), bool), runs, sessions, rng)
    assert rate > 0.5


def test_sessions_for_power_reaches_the_power_in_simulated_experiments() -> None:
    p_a, p_b = 0.18, 0.12
    plan = sessions_for_power(p_a, p_b, alpha=0.05, power=0.8)
    assert plan.share_a == pytest.approx(0.6)
    assert plan.tie_share == pytest.approx(0.7)
    rng = np.random.default_rng(11)
    counts = rng.multinomial(plan.sessions, [p_a, p_b, 1 - p_a - p_b], size=2000)
    detected = np.mean([interleaving_test(Tally(int(a), int(b), int(t))).p_value < 0.05 for a, b, t in counts])
    assert 0.76 <= detected <= 0.84
