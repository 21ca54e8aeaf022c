"""Serving with an exploration share: which requests get a random ordering, and what each impression logs.

An exposed request of a running experiment with ``exploration_percent`` = 100 e > 0 asks every arm's
model for its top M = k items (``POOL_FACTOR`` x k); their union is the candidate set C (so every arm's ranking has
positive probability for every user, whichever arm the user is in: the logs can evaluate each arm,
and any candidate whose lists fall inside C). It draws "explored" from a hash of the request id
(probability e) and shows either a uniformly random ordering of C cut to k (explored) or the
serving arm's top k (not explored). Scoring every arm costs an exploring experiment about one
model call per arm per request. Every impression of such a request logs as its propensity the logging policy's
marginal probability of that item at that position,

    p(a, k) = (1 - e) 1[d_k = a] + e 1[a in C] / |C|     (d: the top k; see engine.offpolicy.exploration)

which is what the position-wise off-policy estimators need. Requests without exploration in force
(e = 0, users outside the experiment, paused or stopped experiments) keep today's meaning: the
impression's propensity is the probability of the arm (``ServedRequest.arm_probability``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.offpolicy.exploration import POOL_FACTOR, exploration_order, is_explored, propensities
from recommenders.algorithms.base import Recommendation, Recommender


@dataclass(frozen=True)
class ServedList:
    """What one request shows: the list, each position's propensity (None: none in force) and the flag."""

    recommendations: list[Recommendation]
    propensities: list[float] | None
    explored: bool


def recommend_with_exploration(
    models: Sequence[Recommender], arm: int, user_id: str, k: int, query: str | None, request_id: str, share: float
) -> ServedList:
    """Arm ``arm``'s list for this request under exploration share ``share`` in [0, 1] (see the module docstring).

    ``models`` are all the experiment's arms' models, in arm order (C is the union of their top M).
    """
    if share <= 0:
        return ServedList(models[arm].recommend(user_id, k, query), None, False)
    own = models[arm].recommend(user_id, POOL_FACTOR * k, query)
    others = [m.recommend(user_id, POOL_FACTOR * k, query) for i, m in enumerate(models) if i != arm]
    union = {rec.item_id: rec for rec in own}  # the serving arm's items first, with its scores
    for ranking in others:
        for rec in ranking:
            union.setdefault(rec.item_id, rec)
    pool = list(union.values())
    top = own[:k]
    explored = is_explored(request_id, share)
    shown = exploration_order(pool, k, request_id) if explored else top
    ids = [rec.item_id for rec in shown]
    return ServedList(shown, propensities([r.item_id for r in top], [r.item_id for r in pool], ids, share), explored)
