"""Always-valid (sequential) sign test of an interleaving experiment (Django-free).

The fixed-horizon sign test (`verdict.interleaving_test`) is valid once, at the planned number of
sessions; read every day, its false-positive rate grows with the number of looks. This test may
be read after every session.

Model. Among the decided sessions (ties carry no preference and are left out, as in the sign
test) each is won by A with probability s, independently; H0: s = 1/2. After W_A wins of A and
W_B of B (d = W_A + W_B decided sessions), the mixture likelihood ratio of a Beta(a, a) mixture
over s against s = 1/2 is (Robbins 1970, "Statistical methods related to the law of the iterated
logarithm", Ann. Math. Statist. 41(5), §3; the beta-binomial case of the mixture SPRT)

    Λ_d = ∫ s^{W_A} (1 - s)^{W_B} Beta(s; a, a) ds / (1/2)^d
        = B(a + W_A, a + W_B) / B(a, a) · 2^d.

Λ_d is a nonnegative martingale with Λ_0 = 1 under H0, so by Ville's inequality
P(exists d: Λ_d >= 1/α) <= α, exactly (no normal approximation): the always-valid p value
p_d = min(1, 1/Λ_d) may be looked at after every session, P(exists d: p_d <= α) <= α.

Confidence sequence. Replacing 1/2 by any s0 gives Λ_d(s0) = B(a + W_A, a + W_B) / B(a, a) /
(s0^{W_A} (1 - s0)^{W_B}); the set {s0 : Λ_d(s0) < 1/α} is an interval around W_A / d that contains
the true s at every d at once with probability >= 1 - α (Robbins 1970). It excludes 1/2 exactly
when p_d < α. It is mapped to Δ = (2s - 1) · d / n as the fixed-horizon interval is (`verdict`).

Tuning. The prior's concentration a sets where the test is most powerful. With a Beta(a, a)
prior, s has variance 1/(4(2a + 1)) against a per-session variance of 1/4, so in the normal
approximation it is the Gaussian mixture of `engine.stats.sequential` with
τ²/σ² = 1/(2a + 1); that module's choice ρ² = (-2 log α + log(1 - 2 log α)) / N* (Howard et al.
2021, tightest at N* units) gives

    a = (1/ρ² - 1) / 2,

N* counted in decided sessions. Validity holds for every a > 0; N* only moves the power. Default
N* = 1,000 decided sessions: between the 36 and 7,600 decided sessions the interleaving sensitivity
bench (bench/interleaving_sensitivity.py) needed for its three pairs, on a log scale; the boundary is flat around N*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from .errors import InterleavingError
from .verdict import Tally

__all__ = ["DEFAULT_N_STAR", "SequentialSignResult", "concentration_for", "log_mixture_ratio", "sequential_sign_test"]

DEFAULT_N_STAR = 1_000.0
"""Decided sessions at which the default mixture is tightest (module docstring)."""


def concentration_for(n_star: float, alpha: float) -> float:
    """The Beta(a, a) concentration a = (1/ρ² - 1) / 2 tightest at `n_star` decided sessions."""
    _check_alpha(alpha)
    if not math.isfinite(n_star) or n_star <= 0:
        raise InterleavingError(f"n_star must be a positive number of decided sessions, got {n_star}")
    log_a = math.log(alpha)
    rho_squared = (-2.0 * log_a + math.log1p(-2.0 * log_a)) / n_star
    concentration = (1.0 / rho_squared - 1.0) / 2.0
    if concentration <= 0:
        raise InterleavingError(
            f"n_star = {n_star:g} decided sessions is too small for alpha = {alpha:g}: the mixture needs "
            f"n_star > {-2.0 * log_a + math.log1p(-2.0 * log_a):.3g}"
        )
    return concentration


def log_mixture_ratio(wins_a: npt.ArrayLike, wins_b: npt.ArrayLike, concentration: float) -> npt.NDArray[np.float64]:
    """log Λ = log B(a + W_A, a + W_B) - log B(a, a) + d log 2, element-wise (module docstring)."""
    if not math.isfinite(concentration) or concentration <= 0:
        raise InterleavingError(f"the concentration a must be a positive number, got {concentration}")
    a_wins = np.asarray(wins_a, dtype=np.float64)
    b_wins = np.asarray(wins_b, dtype=np.float64)
    if (a_wins < 0).any() or (b_wins < 0).any():
        raise InterleavingError("win counts must be at least 0")
    a = concentration
    result: npt.NDArray[np.float64] = (
        special.betaln(a + a_wins, a + b_wins) - special.betaln(a, a) + (a_wins + b_wins) * math.log(2.0)
    )
    return result


@dataclass(frozen=True)
class SequentialSignResult:
    """One look of the always-valid sign test.

    `p_value` = min(1, 1/Λ); `share_a_sequence` the confidence sequence for A's share of decided
    sessions, `delta_sequence` the same mapped to Δ (None before any decided session); `preferred`
    is "A" / "B" when p < alpha, by the side that won more sessions.
    """

    p_value: float
    significant: bool
    preferred: Literal["A", "B"] | None
    share_a_sequence: tuple[float, float] | None
    delta_sequence: tuple[float, float] | None
    alpha: float
    n_star: float | None
    concentration: float
    method: str


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise InterleavingError(f"alpha must be in (0, 1), got {alpha}")


def _share_sequence(wins_a: int, wins_b: int, concentration: float, alpha: float) -> tuple[float, float]:
    """{s : Λ(s) < 1/alpha}: where W_A log s + W_B log(1 - s) > log m + log alpha, m the mixture's marginal."""
    threshold = float(log_mixture_ratio(wins_a, wins_b, concentration)) - (wins_a + wins_b) * math.log(2.0)
    threshold += math.log(alpha)

    def margin(s: float) -> float:
        # 0 · log 0 = 0: a side without wins puts no weight on its end of the likelihood.
        return (wins_a * math.log(s) if wins_a else 0.0) + (wins_b * math.log1p(-s) if wins_b else 0.0) - threshold

    centre = wins_a / (wins_a + wins_b)
    tiny = 1e-300
    # A side with no win is open to its end (the likelihood is monotone there); so is a side whose
    # boundary lies below double precision's reach.
    low = 0.0 if wins_a == 0 or margin(tiny) >= 0 else optimize.brentq(margin, tiny, centre, xtol=1e-14)
    high = 1.0 if wins_b == 0 or margin(1 - 1e-16) >= 0 else optimize.brentq(margin, centre, 1 - 1e-16, xtol=1e-14)
    return float(low), float(high)


def sequential_sign_test(
    tally: Tally, alpha: float = 0.05, *, n_star: float = DEFAULT_N_STAR, concentration: float | None = None
) -> SequentialSignResult:
    """The always-valid sign test on `tally` (module docstring); `concentration` overrides the a
    derived from `n_star`. Raises InterleavingError without any session."""
    _check_alpha(alpha)
    if tally.sessions == 0:
        raise InterleavingError("no sessions yet: nothing to test")
    a = concentration_for(n_star, alpha) if concentration is None else concentration
    log_ratio = float(log_mixture_ratio(tally.wins_a, tally.wins_b, a))
    p_value = math.exp(-max(log_ratio, 0.0))
    significant = p_value < alpha
    decided = tally.wins_a + tally.wins_b
    share = delta = None
    if decided:
        share = _share_sequence(tally.wins_a, tally.wins_b, a, alpha)
        scale = decided / tally.sessions
        delta = ((2 * share[0] - 1) * scale, (2 * share[1] - 1) * scale)
    preferred: Literal["A", "B"] | None = None
    if significant:
        preferred = "A" if tally.wins_a > tally.wins_b else "B"
    return SequentialSignResult(
        p_value=p_value,
        significant=significant,
        preferred=preferred,
        share_a_sequence=share,
        delta_sequence=delta,
        alpha=alpha,
        n_star=n_star if concentration is None else None,
        concentration=a,
        method=f"always-valid mixture sign test (Beta({a:.4g}, {a:.4g}) mixture, Ville's inequality)",
    )
