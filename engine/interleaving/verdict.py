"""Credit, per-session outcomes and the verdict of an interleaving experiment (Django-free).

Credit (team-draft, Radlinski et al. 2008): a click on position p counts for the team that
contributed the item at p. Session s is won by A when c_A(s) > c_B(s), by B when c_B(s) > c_A(s),
and is a tie otherwise, including the sessions without clicks.

Verdict. With W_A, W_B the sessions won by A and B, T the ties and n = W_A + W_B + T:

* Test: a two-sided exact binomial (sign) test of H0: P(A wins | a team wins) = 1/2 on W_A out
  of d = W_A + W_B decided sessions (`scipy.stats.binomtest`). Ties carry no preference and are
  left out of the test, as in the sign test and as in Chapelle, Joachims, Radlinski & Yue (2012),
  "Large-scale validation and analysis of interleaved search evaluation", ACM TOIS 30(1), §3,
  whose tests compare wins against losses; they are reported, and they enter Δ below.
* Preference Δ = (W_A - W_B) / n (Chapelle et al. 2012, eq. 2): the share of sessions A wins
  minus the share B wins, in [-1, 1], 0 for no preference; ties dilute it.
* Interval: the Wilson score interval [s_lo, s_hi] for the share s = W_A / d of A-wins among
  decided sessions, mapped through Δ = (2s - 1) · d / n. Like the test it conditions on d, so it
  treats the tie share as known; that is what keeps the interval and the test telling the same
  story (both are about s, and Δ is a fixed monotone function of s given d).

Sample size (`sessions_for_power`): per-session probabilities p_A (A wins) and p_B (B wins) give
s = p_A / (p_A + p_B); the normal approximation to the binomial test of s = 1/2 needs

    d = ((z_{1-α/2} · 0.5 + z_{power} · sqrt(s (1 - s))) / (s - 0.5))²

decided sessions (the one-sample proportion formula, e.g. Chow, Shao & Wang 2008, "Sample Size
Calculations in Clinical Research", §4.1), hence d / (p_A + p_B) sessions in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from .errors import InterleavingError
from .team_draft import NO_TEAM, TEAM_A, TEAM_B, Interleaving

__all__ = [
    "A_WINS",
    "B_WINS",
    "TIE",
    "Credit",
    "InterleavingResult",
    "SessionsForPower",
    "Tally",
    "credit",
    "interleaving_test",
    "sessions_for_power",
]

A_WINS = 1
B_WINS = -1
TIE = 0
"""Per-session outcome codes in `Credit.outcome`: the sign of c_A - c_B."""


@dataclass(frozen=True)
class Credit:
    """Per-session click credit: `clicks_a[s]`, `clicks_b[s]` and `outcome[s]` (A_WINS, B_WINS or TIE)."""

    clicks_a: npt.NDArray[np.int64]
    clicks_b: npt.NDArray[np.int64]
    outcome: npt.NDArray[np.int8]

    def tally(self) -> Tally:
        return Tally(
            wins_a=int(np.count_nonzero(self.outcome == A_WINS)),
            wins_b=int(np.count_nonzero(self.outcome == B_WINS)),
            ties=int(np.count_nonzero(self.outcome == TIE)),
        )


def credit(interleaving: Interleaving, clicked: npt.ArrayLike) -> Credit:
    """Credit each click to the team that contributed the clicked position (module docstring).

    `clicked` is a (sessions x k) boolean array aligned with `interleaving.items`; a click on an
    empty slot is impossible and raises.
    """
    clicks = np.asarray(clicked)
    if clicks.dtype != np.bool_:
        raise InterleavingError(f"clicked must be a boolean array, got dtype {clicks.dtype}")
    if clicks.shape != interleaving.team.shape:
        raise InterleavingError(
            f"clicked has shape {clicks.shape} but the interleaved lists have shape {interleaving.team.shape}"
        )
    if (clicks & (interleaving.team == NO_TEAM)).any():
        raise InterleavingError("a click falls on an empty slot of an interleaved list (nothing was shown there)")
    clicks_a = np.count_nonzero(clicks & (interleaving.team == TEAM_A), axis=1).astype(np.int64)
    clicks_b = np.count_nonzero(clicks & (interleaving.team == TEAM_B), axis=1).astype(np.int64)
    return Credit(clicks_a=clicks_a, clicks_b=clicks_b, outcome=np.sign(clicks_a - clicks_b).astype(np.int8))


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InterleavingError(f"{name} must be an integer count, got {value!r}")
    if value < 0:
        raise InterleavingError(f"{name} must be at least 0, got {value}")
    return int(value)


@dataclass(frozen=True)
class Tally:
    """The sufficient statistic of an interleaving experiment: sessions won by A, by B, and tied."""

    wins_a: int
    wins_b: int
    ties: int

    def __post_init__(self) -> None:
        for name in ("wins_a", "wins_b", "ties"):
            object.__setattr__(self, name, _count(getattr(self, name), name))

    @property
    def decided(self) -> int:
        return self.wins_a + self.wins_b

    @property
    def sessions(self) -> int:
        return self.wins_a + self.wins_b + self.ties

    @classmethod
    def from_outcomes(cls, outcome: npt.ArrayLike) -> Tally:
        """Count per-session outcomes coded A_WINS / B_WINS / TIE (e.g. stored ones)."""
        values = np.asarray(outcome)
        if values.size and not np.isin(values, (A_WINS, B_WINS, TIE)).all():
            raise InterleavingError("outcomes must be 1 (A wins), -1 (B wins) or 0 (tie)")
        return cls(
            wins_a=int(np.count_nonzero(values == A_WINS)),
            wins_b=int(np.count_nonzero(values == B_WINS)),
            ties=int(np.count_nonzero(values == TIE)),
        )


@dataclass(frozen=True)
class InterleavingResult:
    """The verdict (formulas in the module docstring).

    `share_a` (W_A / d) and the intervals are None while no session has a winner; `p_value` is
    then 1 and `delta` 0. `preferred` is "A" or "B" when p < alpha, else None.
    """

    wins_a: int
    wins_b: int
    ties: int
    sessions: int
    share_a: float | None
    share_a_interval: tuple[float, float] | None
    delta: float
    delta_interval: tuple[float, float] | None
    p_value: float
    alpha: float
    confidence: float
    significant: bool
    preferred: Literal["A", "B"] | None
    method: str


def _probability(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 < value < 1.0):
        raise InterleavingError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def interleaving_test(tally: Tally, alpha: float = 0.05, confidence: float | None = None) -> InterleavingResult:
    """Two-sided sign test of the A-win share among decided sessions, Δ and its interval.

    `confidence` defaults to 1 - alpha, so the interval and the test use the same level.
    """
    alpha = _probability(alpha, "alpha")
    level = _probability(1.0 - alpha if confidence is None else confidence, "confidence")
    if tally.sessions == 0:
        raise InterleavingError("no sessions to test: the tally is empty")
    method = (
        f"two-sided exact binomial (sign) test of A's share of the {tally.decided} decided sessions against 1/2; "
        f"{tally.ties} tied sessions (no clicks or equal credit) excluded from the test, counted in Δ; "
        f"{level:.0%} Wilson interval"
    )
    if tally.decided == 0:
        return InterleavingResult(
            wins_a=tally.wins_a, wins_b=tally.wins_b, ties=tally.ties, sessions=tally.sessions,
            share_a=None, share_a_interval=None, delta=0.0, delta_interval=None, p_value=1.0,
            alpha=alpha, confidence=level, significant=False, preferred=None, method=method,
        )  # fmt: skip
    test = stats.binomtest(tally.wins_a, tally.decided, 0.5, alternative="two-sided")
    interval = test.proportion_ci(confidence_level=level, method="wilson")
    scale = tally.decided / tally.sessions
    share = tally.wins_a / tally.decided
    p_value = float(test.pvalue)
    significant = p_value < alpha
    preferred: Literal["A", "B"] | None = None
    if significant:
        preferred = "A" if tally.wins_a > tally.wins_b else "B"
    return InterleavingResult(
        wins_a=tally.wins_a,
        wins_b=tally.wins_b,
        ties=tally.ties,
        sessions=tally.sessions,
        share_a=share,
        share_a_interval=(float(interval.low), float(interval.high)),
        delta=(tally.wins_a - tally.wins_b) / tally.sessions,
        delta_interval=((2 * float(interval.low) - 1) * scale, (2 * float(interval.high) - 1) * scale),
        p_value=p_value,
        alpha=alpha,
        confidence=level,
        significant=significant,
        preferred=preferred,
        method=method,
    )


@dataclass(frozen=True)
class SessionsForPower:
    """Sessions an interleaving experiment needs (formula in the module docstring)."""

    sessions: int
    decided: int
    share_a: float
    tie_share: float
    alpha: float
    power: float


def sessions_for_power(p_a_wins: float, p_b_wins: float, alpha: float = 0.05, power: float = 0.8) -> SessionsForPower:
    """Sessions for the sign test to detect per-session win probabilities p_A vs p_B with `power`."""
    p_a = _probability(p_a_wins, "p_a_wins")
    p_b = _probability(p_b_wins, "p_b_wins")
    alpha = _probability(alpha, "alpha")
    power = _probability(power, "power")
    if p_a + p_b > 1.0:
        raise InterleavingError(f"p_a_wins + p_b_wins must be at most 1, got {p_a + p_b}")
    if p_a == p_b:
        raise InterleavingError("p_a_wins equals p_b_wins: no preference to detect, no sample size is enough")
    share = p_a / (p_a + p_b)
    numerator = special.ndtri(1.0 - alpha / 2.0) * 0.5 + special.ndtri(power) * math.sqrt(share * (1.0 - share))
    decided = (numerator / (share - 0.5)) ** 2
    return SessionsForPower(
        sessions=math.ceil(decided / (p_a + p_b)),
        decided=math.ceil(decided),
        share_a=share,
        tie_share=1.0 - p_a - p_b,
        alpha=alpha,
        power=power,
    )
