"""The always-valid sign test: hand-computed mixture ratios, its confidence sequence, and by simulation
a false-positive rate at most alpha when it is read after every decided session (the fixed-horizon sign
test, read the same way, is not)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from engine.interleaving import (
    DEFAULT_N_STAR,
    InterleavingError,
    Tally,
    concentration_for,
    interleaving_test,
    log_mixture_ratio,
    sequential_sign_test,
)


@pytest.mark.parametrize(
    ("wins_a", "wins_b", "concentration", "ratio"),
    [
        # Uniform prior (a = 1): Λ = B(1 + W_A, 1 + W_B) · 2^d = W_A! W_B! / (d + 1)! · 2^d.
        (3, 0, 1.0, 3 * 2 * 1 / 24 * 8),  # = 2
        (0, 12, 1.0, 4096 / 13),  # 12! / 13! · 2^12
        (1, 1, 1.0, 4 / 6),  # 1 · 1 / 3! · 4
        (0, 0, 1.0, 1.0),  # no decided session: no evidence
        # a = 2: B(4, 2) / B(2, 2) · 2^2 = (3! 1! / 5!) / (1! 1! / 3!) · 4 = (1/20) / (1/6) · 4.
        (2, 0, 2.0, 1.2),
    ],
)
def test_the_mixture_ratio_matches_hand_computed_values(wins_a: int, wins_b: int, concentration: float,
                                                        ratio: float) -> None:  # fmt: skip
    assert math.exp(float(log_mixture_ratio(wins_a, wins_b, concentration))) == pytest.approx(ratio, rel=1e-12)
    result = sequential_sign_test(Tally(wins_a, wins_b, 5), concentration=concentration)
    assert result.p_value == pytest.approx(min(1.0, 1 / ratio), rel=1e-12)
    assert (result.n_star, result.concentration) == (None, concentration)


def test_the_mixture_ratio_is_the_integral_of_the_likelihood_ratio_over_the_beta_prior() -> None:
    a, wins_a, wins_b = concentration_for(DEFAULT_N_STAR, 0.05), 140, 95

    def integrand(s: float) -> float:
        return math.exp(wins_a * math.log(2 * s) + wins_b * math.log(2 * (1 - s))) * stats.beta.pdf(s, a, a)

    numeric, _ = integrate.quad(integrand, 0, 1, points=[wins_a / (wins_a + wins_b)], limit=200)
    assert math.exp(float(log_mixture_ratio(wins_a, wins_b, a))) == pytest.approx(numeric, rel=1e-8)


def test_the_default_concentration_follows_the_tuning_formula() -> None:
    rho_squared = (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / 1000
    assert concentration_for(1000, 0.05) == pytest.approx((1 / rho_squared - 1) / 2, rel=1e-12)
    assert concentration_for(1000, 0.05) == pytest.approx(62.5, abs=0.01)  # ρ² = 7.936 / 1000 -> a = (126.0 - 1) / 2
    with pytest.raises(InterleavingError, match=r"too small for alpha = 0\.05"):
        concentration_for(5, 0.05)
    with pytest.raises(InterleavingError, match="no sessions yet"):
        sequential_sign_test(Tally(0, 0, 0))


@pytest.mark.parametrize(("wins_a", "wins_b", "ties"), [(0, 12, 0), (30, 12, 50), (300, 250, 2000), (1, 0, 3)])
def test_the_confidence_sequence_is_where_the_ratio_stays_below_one_over_alpha(wins_a: int, wins_b: int,
                                                                               ties: int) -> None:  # fmt: skip
    a, alpha = 3.0, 0.05
    result = sequential_sign_test(Tally(wins_a, wins_b, ties), alpha, concentration=a)
    low, high = result.share_a_sequence  # type: ignore[misc]
    log_marginal = float(log_mixture_ratio(wins_a, wins_b, a)) - (wins_a + wins_b) * math.log(2)

    def log_ratio_at(s: float) -> float:  # log Λ(s) = log m - log L(s)
        return log_marginal - wins_a * math.log(s) - wins_b * math.log1p(-s)

    for bound, inside in ((low, low + 1e-6), (high, high - 1e-6)):
        if 0 < bound < 1:
            assert log_ratio_at(bound) == pytest.approx(-math.log(alpha), abs=1e-6)
            assert log_ratio_at(inside) < -math.log(alpha)
    assert low <= wins_a / (wins_a + wins_b) <= high
    assert (low == 0.0, high == 1.0) == (wins_a == 0, wins_b == 0)
    assert result.significant == (not low < 0.5 < high) == (result.p_value < alpha)
    scale = (wins_a + wins_b) / (wins_a + wins_b + ties)
    assert result.delta_sequence == pytest.approx(((2 * low - 1) * scale, (2 * high - 1) * scale))


def test_a_clear_preference_is_significant_and_names_the_side_that_won() -> None:
    result = sequential_sign_test(Tally(20, 80, 400))
    assert (result.significant, result.preferred) == (True, "B")
    assert result.delta_sequence[1] < 0  # type: ignore[index]
    # Wider than the fixed-horizon interval at the same look: the price of looking at any time.
    fixed = interleaving_test(Tally(20, 80, 400))
    assert result.p_value > fixed.p_value
    low, high = result.share_a_sequence  # type: ignore[misc]
    assert low < fixed.share_a_interval[0]  # type: ignore[index]
    assert high > fixed.share_a_interval[1]  # type: ignore[index]
    assert sequential_sign_test(Tally(52, 48, 400)).preferred is None


def test_read_after_every_decided_session_it_keeps_false_positives_below_alpha_and_the_fixed_test_does_not() -> None:
    rng = np.random.default_rng(20261128)
    experiments, looks, alpha = 2000, 1500, 0.05
    wins_a = np.cumsum(rng.random((experiments, looks)) < 0.5, axis=1)  # H0: s = 1/2, one look per decided session
    decided = np.arange(1, looks + 1)
    wins_b = decided - wins_a
    log_ratio = log_mixture_ratio(wins_a, wins_b, concentration_for(DEFAULT_N_STAR, alpha))
    sequential = (log_ratio >= -math.log(alpha)).any(axis=1).mean()
    # The exact two-sided sign test at s = 1/2: p = min(1, 2 min(P(X <= W_A), P(X >= W_A))).
    tail = np.minimum(stats.binom.cdf(wins_a, decided, 0.5), stats.binom.sf(wins_a - 1, decided, 0.5))
    peeking = (np.minimum(1.0, 2 * tail) < alpha).any(axis=1).mean()
    assert sequential <= alpha  # Ville's inequality: at most alpha over all 1,500 looks
    assert peeking > 3 * alpha  # the fixed-horizon test read after every session rejects far more often
    # ... and the sequential test still has power: at s = 0.6 it rejects in most runs by 1,500 decided sessions.
    wins_a = np.cumsum(rng.random((500, looks)) < 0.6, axis=1)
    found = (log_mixture_ratio(wins_a, decided - wins_a, concentration_for(DEFAULT_N_STAR, alpha))
             >= -math.log(alpha)).any(axis=1).mean()  # fmt: skip
    assert found > 0.9
