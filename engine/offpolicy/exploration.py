"""The exploration share of a running experiment: a randomised ranking with known propensities (Django-free).

For a share e of an exposed user's requests (decided by a hash of the request id, so the same
request id is always explored or not), the served list is a uniformly random ordering of a
candidate set C, truncated to the k shown slots; the platform takes C = the union of the
experiment's arms' top M = ``POOL_FACTOR`` x k items for the user, so every arm's own ranking lies
inside C. Every other request gets the serving arm's deterministic ranking d = (d_1, ..., d_k).
The logging policy is the mixture of the two, so the marginal probability that it shows item a
at position k (1-based, k <= |C|) for this request is

    p(a, k) = (1 - e) * 1[d_k = a]  +  e * 1[a in C] / |C|

(a uniform permutation of C puts each member at each position with probability 1/|C|). That is
the propensity the position-wise estimators need (``slates``: p_i = the logging policy's marginal
probability of the logged item at the logged position), and it is the same formula whether this
particular request was explored or not: both come from the same mixture policy. A target can
only be evaluated where p > 0, i.e. on items inside C (with the platform's C, every arm's own list).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_EXPLORATION_PERCENT",
    "POOL_FACTOR",
    "exploration_order",
    "is_explored",
    "mixture_propensities",
    "propensities",
]

MAX_EXPLORATION_PERCENT = 20.0
"""The largest exploration share an experiment may set: explored lists are random, so they cost CTR."""
POOL_FACTOR = 1
"""M = POOL_FACTOR x k items per arm go into C. With M = k, C holds exactly the arms' own top-k lists (up to
arms x k items): the smallest pool that still contains every arm's ranking, hence the largest propensities
(on the simulator, M = 3k tripled |C| and left a third of the seeds' intervals missing the truth)."""

T = TypeVar("T")


def _unit_interval(text: str) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of blake2b(text): reproducible across processes."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_explored(request_id: str, share: float) -> bool:
    """True for a share ``share`` in [0, 1] of request ids: u(request id) < share, u uniform (blake2b)."""
    return share > 0 and _unit_interval(f"explore:{request_id}") < share


def exploration_order(candidates: Sequence[T], k: int, request_id: str) -> list[T]:
    """The first k of a uniformly random permutation of ``candidates``, seeded by the request id."""
    order = list(candidates)
    random.Random(f"order:{request_id}").shuffle(order)
    return order[:k]


def propensities(deterministic: Sequence[T], candidates: Sequence[T], shown: Sequence[T], share: float) -> list[float]:
    """p(shown_k, k) = (1 - e) 1[d_k = shown_k] + e 1[shown_k in C] / |C| for each shown position k."""
    members = set(candidates)
    explore = share / len(members) if members else 0.0
    return [
        (1.0 - share) * (k < len(deterministic) and deterministic[k] == item) + (explore if item in members else 0.0)
        for k, item in enumerate(shown)
    ]


def mixture_propensities(
    deterministic: npt.ArrayLike, pool: npt.ArrayLike, shown: npt.ArrayLike, share: float
) -> npt.NDArray[np.float64]:
    """``propensities`` for many requests at once: (n, k) deterministic lists, (n, M) pools and (n, k)
    shown lists of item indices, -1 for an empty slot (its propensity is 0). Each pool's size is its
    number of non-negative entries."""
    det = np.asarray(deterministic, dtype=np.int64)
    candidates = np.asarray(pool, dtype=np.int64)
    lists = np.asarray(shown, dtype=np.int64)
    sizes = (candidates >= 0).sum(axis=1, keepdims=True)
    in_pool = (lists[:, :, None] == candidates[:, None, :]).any(axis=2) & (lists >= 0)
    same = (lists == det[:, : lists.shape[1]]) & (lists >= 0)
    explore = np.where(sizes > 0, share / np.maximum(sizes, 1), 0.0)
    result: npt.NDArray[np.float64] = (1.0 - share) * same + explore * in_pool
    return result
