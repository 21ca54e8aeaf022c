"""Serving with an exploration share: which requests get a random ordering, and what each impression logs.

An exposed request of a running experiment with ``exploration_percent`` = 100 e > 0 asks the arm's
model for its top M = 3k items (the candidate set C), draws "explored" from a hash of the request id
(probability e), and shows either a uniformly random ordering of C cut to k (explored) or the top k
(not explored). Every impression of such a request logs as its propensity the logging policy's
marginal probability of that item at that position,

    p(a, k) = (1 - e) 1[d_k = a] + e 1[a in C] / |C|     (d: the top k; see experiments.offpolicy.exploration)

which is what the position-wise off-policy estimators need. Requests without exploration in force
(e = 0, users outside the experiment, paused or stopped experiments) keep today's meaning: the
impression's propensity is the probability of the arm (``ServedRequest.arm_probability``).
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.offpolicy.exploration import POOL_FACTOR, exploration_order, is_explored, propensities
from recommenders.algorithms.base import Recommendation, Recommender


@dataclass(frozen=True)
class ServedList:
    """What one request shows: the list, each position's propensity (None: none in force) and the flag."""

    recommendations: list[Recommendation]
    propensities: list[float] | None
    explored: bool


def recommend_with_exploration(
    model: Recommender, user_id: str, k: int, query: str | None, request_id: str, share: float
) -> ServedList:
    """The arm's list for this request under exploration share ``share`` in [0, 1] (see the module docstring)."""
    if share <= 0:
        return ServedList(model.recommend(user_id, k, query), None, False)
    pool = model.recommend(user_id, POOL_FACTOR * k, query)
    top = pool[:k]
    explored = is_explored(request_id, share)
    shown = exploration_order(pool, k, request_id) if explored else top
    ids = [rec.item_id for rec in shown]
    return ServedList(shown, propensities([r.item_id for r in top], [r.item_id for r in pool], ids, share), explored)
