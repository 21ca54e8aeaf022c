"""The exploration share inside a simulated day: the same randomised lists and propensities as serving (Django-free).

Live serving (``serving.services.exploration.recommend_with_exploration``) asks every arm for its
top k for the request's user, takes C = their union in the order (serving arm's list, then the other
arms' lists in arm order, each item kept at its first appearance), explores the request when
``is_explored(request id, e)``, shows ``exploration_order(C, k, request id)`` if so and the arm's top k
otherwise, and logs for each shown position the mixture marginal

    p(a, k) = (1 - e) 1[d_k = a] + e 1[a in C] / |C|

(``engine.offpolicy.exploration``). ``explore`` does exactly that for a day's sessions at once,
from the arms' lists as item indices, with the same functions, so a simulated request and a live
request with the same id, user lists and share show the same list with the same propensities.
C is built from the arms' top k, i.e. ``POOL_FACTOR`` = 1 (checked: a larger pool needs longer lists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.offpolicy.exploration import POOL_FACTOR, exploration_order, is_explored, mixture_propensities

from .config import SimulationError
from .preferences import BoolArray, FloatArray, IntArray

__all__ = ["Exploration", "ExploredDay", "explore"]

if POOL_FACTOR != 1:  # pragma: no cover - a guard for whoever changes the pool
    raise ImportError("the simulator builds the exploration pool from the arms' top k: it needs POOL_FACTOR = 1")


@dataclass(frozen=True)
class Exploration:
    """An experiment's exploration share for a simulated run.

    ``share``: e in [0, 1]; ``arms``: how many arms' lists form the pool (all of them, as serving does);
    ``request_ids(plan session indices)``: each session's request id as text, the input of the hashes
    (the platform passes the ids it stores, in the canonical UUID form serving hashes).
    """

    share: float
    arms: int
    request_ids: Callable[[IntArray], Sequence[str]]

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise SimulationError(f"the exploration share must lie in [0, 1], got {self.share}")
        if self.arms < 1:
            raise SimulationError(f"exploration needs at least one arm, got {self.arms}")


@dataclass(frozen=True)
class ExploredDay:
    """Per session (rows of the lists given to ``explore``): the shown list (-1: empty slot), each
    position's propensity (0 for an empty slot) and whether the session was explored."""

    shown: IntArray
    propensity: FloatArray
    explored: BoolArray


def explore(lists: Sequence[IntArray], arm: IntArray, request_ids: Sequence[str], share: float) -> ExploredDay:
    """Shown lists and propensities of sessions served with exploration share ``share``.

    ``lists[g]`` is arm g's (n, k) top-k item indices for the n sessions (-1: empty slot), ``arm[j]`` the
    serving arm of session j, ``request_ids[j]`` its request id.
    """
    n, k = lists[0].shape
    if len(arm) != n or len(request_ids) != n or any(a.shape != (n, k) for a in lists):
        raise SimulationError(f"explore needs (n, k) lists per arm, n arms and n request ids (n = {n})")
    stacked = np.stack(lists)  # (arms, n, k)
    own = stacked[arm, np.arange(n)]
    # Serving's order of C: the serving arm's list, then the others in arm order.
    others = [np.where((arm != g)[:, None], stacked[g], -1) for g in range(len(lists))]
    ordered = np.concatenate([own, *others], axis=1)
    # Keep each item at its first appearance only (a dict's setdefault in serving).
    repeated = (ordered[:, :, None] == ordered[:, None, :]) & np.tri(ordered.shape[1], k=-1, dtype=bool)[None]
    pool = np.where(repeated.any(axis=2), -1, ordered)
    explored = np.fromiter((is_explored(r, share) for r in request_ids), dtype=np.bool_, count=n)
    shown = own.copy()
    for j in np.flatnonzero(explored).tolist():
        candidates = [int(i) for i in pool[j] if i >= 0]
        order = exploration_order(candidates, k, request_ids[j])
        shown[j] = -1
        shown[j, : len(order)] = order
    propensity: FloatArray = mixture_propensities(own, pool, shown, share)
    return ExploredDay(shown=shown, propensity=propensity, explored=explored)
