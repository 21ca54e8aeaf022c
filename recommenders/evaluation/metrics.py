"""Ranking metrics at k over a hit matrix, vectorised with numpy.

Inputs shared by the accuracy metrics:

* `hits`: bool (n_users, k); hits[u, r] is True when the item at rank r + 1 of user u's
  list is relevant (a slot beyond the end of a short list is False);
* `n_relevant`: int (n_users,), the number of relevant (test) items of each user.

Users with `n_relevant == 0` are excluded from every average (they have nothing to find).
Definitions follow Microsoft Recommenders' `python_evaluation` (binary relevance):

* precision@k = |hits| / k  (k is the requested k, also when a list is shorter);
* recall@k    = |hits| / n_rel;
* NDCG@k      = Σ_r hit_r / log2(r + 1)  ÷  Σ_{r=1}^{min(n_rel, k)} 1 / log2(r + 1);
* MAP         = Σ_{r: hit_r} (hits in the first r) / r  ÷  n_rel — their `map`, which is what
  their benchmark table reports as MAP (older releases called it `map_at_k`);
* MAP@k       = the same sum ÷ min(n_rel, k) — their current `map_at_k`;
* MRR         = 1 / rank of the first hit (0 without a hit);
* hit rate    = share of users with at least one hit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

BoolMatrix = npt.NDArray[np.bool_]
IntVector = npt.NDArray[np.int64]
FloatVector = npt.NDArray[np.float64]


def _rank_discounts(k: int) -> FloatVector:
    return np.asarray(1.0 / np.log2(np.arange(2, k + 2)), dtype=np.float64)


def _evaluated(hits: BoolMatrix, n_relevant: IntVector) -> tuple[BoolMatrix, FloatVector]:
    keep = n_relevant > 0
    return hits[keep], n_relevant[keep].astype(np.float64)


def _mean(values: FloatVector) -> float:
    return float(values.mean()) if len(values) else 0.0


def precision_at_k(hits: BoolMatrix, n_relevant: IntVector, k: int) -> float:
    h, _ = _evaluated(hits, n_relevant)
    return _mean(h.sum(axis=1) / k)


def recall_at_k(hits: BoolMatrix, n_relevant: IntVector) -> float:
    h, n = _evaluated(hits, n_relevant)
    return _mean(h.sum(axis=1) / n)


def ndcg_at_k(hits: BoolMatrix, n_relevant: IntVector, k: int) -> float:
    h, n = _evaluated(hits, n_relevant)
    discounts = _rank_discounts(k)
    dcg = (h[:, :k] * discounts[: h.shape[1]]).sum(axis=1)
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(n, k).astype(np.int64)]
    return _mean(dcg / ideal)


def _precision_sums(h: BoolMatrix) -> FloatVector:
    """Σ over hit ranks r of (hits in the first r) / r, per user."""
    ranks = np.arange(1, h.shape[1] + 1)
    return np.asarray((np.cumsum(h, axis=1) / ranks * h).sum(axis=1), dtype=np.float64)


def mean_average_precision(hits: BoolMatrix, n_relevant: IntVector) -> float:
    h, n = _evaluated(hits, n_relevant)
    return _mean(_precision_sums(h) / n)


def map_at_k(hits: BoolMatrix, n_relevant: IntVector, k: int) -> float:
    h, n = _evaluated(hits, n_relevant)
    return _mean(_precision_sums(h) / np.minimum(n, k))


def mrr(hits: BoolMatrix, n_relevant: IntVector) -> float:
    h, _ = _evaluated(hits, n_relevant)
    found = h.any(axis=1)
    reciprocal = np.zeros(len(h), dtype=np.float64)
    reciprocal[found] = 1.0 / (np.argmax(h[found], axis=1) + 1)
    return _mean(reciprocal)


def hit_rate(hits: BoolMatrix, n_relevant: IntVector) -> float:
    h, _ = _evaluated(hits, n_relevant)
    return _mean(np.asarray(h.any(axis=1), dtype=np.float64))


# ---- beyond accuracy: inputs are the recommended item indices, -1 marking empty slots ----


def recommendation_counts(recommended: IntVector | npt.NDArray[Any], n_items: int) -> IntVector:
    """How many lists each catalogue item appears in."""
    valid = recommended[recommended >= 0]
    return np.bincount(valid, minlength=n_items).astype(np.int64)


def catalogue_coverage(counts: IntVector) -> float:
    """Share of the catalogue recommended to at least one user."""
    return float(np.count_nonzero(counts) / len(counts)) if len(counts) else 0.0


def novelty(recommended: npt.NDArray[np.int64], item_popularity: FloatVector) -> float:
    """Mean self-information -log2 p_i over every recommended slot.

    p_i is the share of training users who interacted with item i; an item nobody
    interacted with counts as seen by one user (so its novelty stays finite).
    """
    valid = recommended[recommended >= 0]
    if len(valid) == 0:
        return 0.0
    return float(np.mean(-np.log2(item_popularity[valid])))


def intra_list_diversity(recommended: npt.NDArray[np.int64], item_vectors: sp.csr_matrix) -> float:
    """Mean over users of 1 - (mean pairwise cosine similarity of the list's item vectors).

    `item_vectors` rows must be L2-normalised (e.g. TF-IDF); an item without text has a zero
    vector, i.e. similarity 0 to everything. Uses Σ_{i<j} cos(i, j) = (‖Σ_i v_i‖² - Σ_i ‖v_i‖²) / 2,
    so no pairwise loop is needed. Lists with fewer than 2 items are skipped.
    """
    n_users, k = recommended.shape
    valid = recommended >= 0
    lengths = valid.sum(axis=1)
    rows = np.repeat(np.arange(n_users), k)[valid.ravel()]
    indicator = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, recommended[valid])),
        shape=(n_users, item_vectors.shape[0]),
    )
    summed = indicator @ item_vectors
    squared_norm_of_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    item_norms = np.asarray(item_vectors.multiply(item_vectors).sum(axis=1)).ravel()
    sum_of_squared_norms = np.asarray(indicator @ item_norms).ravel()
    pairs = lengths * (lengths - 1) / 2
    usable = pairs > 0
    if not usable.any():
        return 0.0
    mean_similarity = (squared_norm_of_sum[usable] - sum_of_squared_norms[usable]) / 2 / pairs[usable]
    return float(np.mean(1.0 - mean_similarity))


def gini(counts: IntVector) -> float:
    """Gini coefficient of the recommendation counts over the whole catalogue.

    G = Σ_i (2i - n - 1) c_(i) / (n Σ c), with c_(1) ≤ … ≤ c_(n): 0 when every item is
    recommended equally often, (n - 1)/n when one item gets every slot.
    """
    n = len(counts)
    total = counts.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * np.sort(counts)).sum() / (n * total))
