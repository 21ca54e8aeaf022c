"""Team-draft interleaving of two rankings (Django-free, vectorised over sessions).

Team-draft interleaving (Radlinski, Kurup & Joachims 2008, "How does clickthrough data reflect
retrieval quality?", CIKM, Algorithm 2) builds one list from rankings A and B like two captains
picking players: in each round a fair coin decides which team picks first, then each team adds
its highest-ranked item that is not in the list yet. Written as a loop over positions:

    while the list is shorter than k:
        if |team A| < |team B|  or  (|team A| = |team B| and coin = heads):  A picks
        else:                                                                B picks
        the picking team appends its best item not already in the list and records it as its own

Because the team that picks first is random in every round, a position-biased user who clicks
without preferring either ranker credits both teams equally in expectation; that is what makes
the per-session win test calibrated (see `verdict`).

The paper's loop stops as soon as either ranking has no unused item left. Here the other ranking
keeps filling the list (its picks credited to its own team), so the served list has
min(k, |A ∪ B|) items: a shop shows a full slate whenever it can. When both rankings are
k items long and overlap, this only happens near the end of the list.

Coins are explicit inputs (one per round, `coins[s, r]` = True when A picks first in round r of
session s) so that a list is reproducible: `request_coins` derives them from a request key (the
same key always gives the same list) and `random_coins` draws them for simulations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from .errors import InterleavingError

__all__ = [
    "NO_TEAM",
    "TEAM_A",
    "TEAM_B",
    "InterleavedList",
    "Interleaving",
    "interleave",
    "random_coins",
    "request_coins",
    "rounds_for",
    "team_draft_many",
]

IntArray = npt.NDArray[np.int64]
TeamArray = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
T = TypeVar("T", bound=Hashable)

TEAM_A = 0
TEAM_B = 1
NO_TEAM = -1
"""Team codes in `Interleaving.team`: A's pick, B's pick, or an empty slot (list shorter than k)."""


def rounds_for(k: int) -> int:
    """Coin flips a list of length k can need: one per round of two picks, ceil(k / 2)."""
    return (_check_k(k) + 1) // 2


def random_coins(n_sessions: int, k: int, rng: np.random.Generator) -> BoolArray:
    """Fair coins for `n_sessions` lists of length `k` (True = A picks first in that round)."""
    if n_sessions < 0:
        raise InterleavingError(f"n_sessions must be at least 0, got {n_sessions}")
    coins: BoolArray = rng.random((n_sessions, rounds_for(k))) < 0.5
    return coins


def request_coins(key: str, k: int) -> BoolArray:
    """The coins of one request, derived from `key` (e.g. "<experiment salt>:<user id>:<request id>").

    BLAKE2b of the key seeds numpy's generator, so a retried or replayed request gets the same
    list and the list can be rebuilt later from the logged key to audit the credit.
    """
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return random_coins(1, k, np.random.default_rng(seed))


@dataclass(frozen=True)
class Interleaving:
    """Interleaved lists of many sessions: `items[s, p]` is the item at position p (0-based) of
    session s, -1 for an empty slot; `team[s, p]` the team that contributed it (TEAM_A, TEAM_B,
    or NO_TEAM for an empty slot)."""

    items: IntArray
    team: TeamArray

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def k(self) -> int:
        return int(self.items.shape[1])


@dataclass(frozen=True)
class InterleavedList(Generic[T]):
    """One request's list: `items` to show, best first, and `teams[p]` ("A" or "B") that
    contributed `items[p]`; store both to credit the clicks later."""

    items: tuple[T, ...]
    teams: tuple[str, ...]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InterleavingError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise InterleavingError(f"k must be at least 1, got {k}")
    return int(k)


def _rankings(values: npt.ArrayLike, name: str) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise InterleavingError(f"{name} must be a 2-d array (sessions x ranks), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InterleavingError(f"{name} must hold integer item indices, got dtype {array.dtype}")
    ranked = array.astype(np.int64)
    if ranked.size and ranked.min() < -1:
        raise InterleavingError(f"{name} holds a negative item index other than -1 (the empty-slot marker)")
    # A duplicate would be offered twice by the same team; it is a caller's bug, not something to guess about.
    ordered = np.sort(ranked, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeated.any():
        session = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise InterleavingError(f"{name} repeats an item within one ranking (session {session})")
    return ranked


def team_draft_many(rankings_a: npt.ArrayLike, rankings_b: npt.ArrayLike, k: int, coins: npt.ArrayLike) -> Interleaving:
    """Team-draft interleave session s's rankings `rankings_a[s]` and `rankings_b[s]` into k slots.

    Rankings are (sessions x ranks) arrays of item indices, best first; -1 marks an empty slot
    (a ranking shorter than the width) and is never shown. The two arrays may have different
    widths but must have the same number of sessions. `coins` is (sessions x ≥ rounds_for(k))
    booleans, True when A picks first in that round (see the module docstring for the rule).
    Cost: O(k × sessions × width) numpy work, no Python loop over sessions.
    """
    k = _check_k(k)
    a = _rankings(rankings_a, "rankings_a")
    b = _rankings(rankings_b, "rankings_b")
    n = a.shape[0]
    if b.shape[0] != n:
        raise InterleavingError(f"rankings_a has {n} sessions but rankings_b has {b.shape[0]}")
    flips = np.asarray(coins)
    if flips.dtype != np.bool_ or flips.ndim != 2 or flips.shape[0] != n or flips.shape[1] < rounds_for(k):
        raise InterleavingError(
            f"coins must be a boolean array of shape ({n}, >= {rounds_for(k)}) for k = {k}, "
            f"got {flips.dtype} of shape {flips.shape}"
        )

    used_a = a < 0
    used_b = b < 0
    items = np.full((n, k), -1, dtype=np.int64)
    team = np.full((n, k), NO_TEAM, dtype=np.int8)
    count_a = np.zeros(n, dtype=np.int64)
    count_b = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    last_round = flips.shape[1] - 1
    for position in range(k):
        left_a = ~used_a.all(axis=1)
        left_b = ~used_b.all(axis=1)
        active = np.logical_or(left_a, left_b)
        if not active.any():
            break
        # The coin only matters when the teams are level; clamp the index for the rows where it does not.
        heads = flips[rows, np.minimum(count_a, last_round)]
        draft_a = (count_a < count_b) | ((count_a == count_b) & heads)
        pick_a = np.where(left_a & left_b, draft_a, left_a)
        best_a = a[rows, np.argmax(~used_a, axis=1)] if a.shape[1] else np.full(n, -1, dtype=np.int64)
        best_b = b[rows, np.argmax(~used_b, axis=1)] if b.shape[1] else np.full(n, -1, dtype=np.int64)
        chosen = np.where(active, np.where(pick_a, best_a, best_b), -1)
        items[:, position] = chosen
        team[:, position] = np.where(active, np.where(pick_a, TEAM_A, TEAM_B), NO_TEAM)
        count_a += active & pick_a
        count_b += active & ~pick_a
        # The item is now in the list: neither team may pick it again (this skips the duplicates).
        placed = active[:, None]
        used_a |= (a == chosen[:, None]) & placed
        used_b |= (b == chosen[:, None]) & placed
    return Interleaving(items=items, team=team)


def interleave(ranking_a: Sequence[T], ranking_b: Sequence[T], k: int, key: str) -> InterleavedList[T]:
    """One request's team-draft list of any hashable item ids (e.g. the serving API's item ids),
    reproducible from `key` (see `request_coins`)."""
    k = _check_k(k)
    codes: dict[T, int] = {}
    coded = [[codes.setdefault(item, len(codes)) for item in ranking] for ranking in (ranking_a, ranking_b)]
    width = max(len(coded[0]), len(coded[1]), 1)
    padded = np.full((2, width), -1, dtype=np.int64)
    for row, values in enumerate(coded):
        padded[row, : len(values)] = values
    result = team_draft_many(padded[:1], padded[1:], k, request_coins(key, k))
    item_of = list(codes)
    shown = result.items[0] >= 0
    return InterleavedList(
        items=tuple(item_of[int(code)] for code in result.items[0][shown]),
        teams=tuple("A" if team == TEAM_A else "B" for team in result.team[0][shown]),
    )
