"""Django-free interleaving experiments for two rankers (numpy/scipy only).

Public API: team-draft interleaving (Radlinski, Kurup & Joachims 2008) with ``team_draft_many``
(many sessions of integer item indices at once, explicit coins) and ``interleave`` (one request's
list of any item ids, reproducible from a request key), returning ``Interleaving`` /
``InterleavedList``; coins from ``request_coins`` (per request) or ``random_coins`` (simulations).
Credit and verdict: ``credit`` -> ``Credit`` (clicks per team, per-session outcome), ``Tally``
(wins A, wins B, ties), ``interleaving_test`` -> ``InterleavingResult`` (sign test, Δ with a
Wilson-based interval), and ``sessions_for_power`` (sample size of the sign test). For looks while
the experiment runs, ``sequential_sign_test`` -> ``SequentialSignResult``: the always-valid
(beta-mixture SPRT) version of the sign test with its confidence sequence. Every impossible input
raises ``InterleavingError``.
"""

from .errors import InterleavingError
from .sequential import (
    DEFAULT_N_STAR,
    SequentialSignResult,
    concentration_for,
    log_mixture_ratio,
    sequential_sign_test,
)
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
    "DEFAULT_N_STAR",
    "NO_TEAM",
    "TEAM_A",
    "TEAM_B",
    "TIE",
    "Credit",
    "InterleavedList",
    "Interleaving",
    "InterleavingError",
    "InterleavingResult",
    "SequentialSignResult",
    "SessionsForPower",
    "Tally",
    "concentration_for",
    "credit",
    "interleave",
    "interleaving_test",
    "log_mixture_ratio",
    "random_coins",
    "request_coins",
    "rounds_for",
    "sequential_sign_test",
    "sessions_for_power",
    "team_draft_many",
]
