"""Django-free interleaving experiments for two rankers (numpy/scipy only).

Public API: team-draft interleaving (Radlinski, Kurup & Joachims 2008) with ``team_draft_many``
(many sessions of integer item indices at once, explicit coins) and ``interleave`` (one request's
list of any item ids, reproducible from a request key), returning ``Interleaving`` /
``InterleavedList``; coins from ``request_coins`` (per request) or ``random_coins`` (simulations).
Credit and verdict: ``credit`` -> ``Credit`` (clicks per team, per-session outcome), ``Tally``
(wins A, wins B, ties), ``interleaving_test`` -> ``InterleavingResult`` (sign test, Δ with a
Wilson-based interval), and ``sessions_for_power`` (sample size of the sign test). Every impossible
input raises ``InterleavingError``.
"""

from .errors import InterleavingError
from .team_draft import (
    NO_TEAM,
    TEAM_A,
    TEAM_B,
    InterleavedList,
    Interleaving,
    interleave,
    random_coins,
    request_coins,
    rounds_for,
    team_draft_many,
)
from .verdict import (
    A_WINS,
    B_WINS,
    TIE,
    Credit,
    InterleavingResult,
    SessionsForPower,
    Tally,
    credit,
    interleaving_test,
    sessions_for_power,
)

__all__ = [
    "A_WINS",
    "B_WINS",
    "NO_TEAM",
    "TEAM_A",
    "TEAM_B",
    "TIE",
    "Credit",
    "InterleavedList",
    "Interleaving",
    "InterleavingError",
    "InterleavingResult",
    "SessionsForPower",
    "Tally",
    "credit",
    "interleave",
    "interleaving_test",
    "random_coins",
    "request_coins",
    "rounds_for",
    "sessions_for_power",
    "team_draft_many",
]
