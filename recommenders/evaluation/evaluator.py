"""The one offline evaluator every variant goes through.

`evaluate(model, train, test, k)`: for each user with test interactions, rank the
catalogue with the fitted model (`score_users` in batches; `cold_start_scores` for users
the model does not know or who have no training history), remove the items the user has
in `train`, keep the top k (`top_k`: ties broken by lower item index), and compute every
metric of `metrics` on the (users x k) hit matrix.

`train` and `test` must share their id tuples (as the splits produce); the model may have
been fitted on other ids (e.g. a hybrid over variants): users and items are matched by id.
Test items the model does not know still count as relevant (they cannot be found).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommenders.algorithms.base import IntArray, Recommender, RecommenderError, TrainingData, top_k
from recommenders.evaluation import metrics


@dataclass(frozen=True)
class EvaluationResult:
    """Averages over `n_users` (users with test items); JSON-serialisable via `asdict`."""

    k: int
    n_users: int
    n_cold_start_users: int
    precision: float
    recall: float
    ndcg: float
    map: float
    map_at_k: float
    mrr: float
    hit_rate: float
    coverage: float
    novelty: float
    diversity: float | None
    gini: float
    seconds: float


def item_tfidf_vectors(data: TrainingData) -> sp.csr_matrix | None:
    """L2-normalised TF-IDF rows of the items' text and category, for intra-list diversity."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from recommenders.algorithms.content import item_documents

    documents = item_documents(data)
    if not any(documents):
        return None
    return sp.csr_matrix(TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(documents))


def evaluate(
    model: Recommender,
    train: TrainingData,
    test: TrainingData,
    k: int = 10,
    *,
    batch_size: int = 1024,
    item_vectors: sp.csr_matrix | None = None,
) -> EvaluationResult:
    """Rank, mask `train` items, cut at k and compute all metrics (see the module docstring).

    `item_vectors` (rows aligned with `train.item_ids`, L2-normalised) enables the
    diversity metric; without it `diversity` is None.
    """
    started = time.perf_counter()
    if train.user_ids != test.user_ids or train.item_ids != test.item_ids:
        raise RecommenderError("train and test must share user_ids and item_ids (use the splits module).")
    if k < 1:
        raise RecommenderError(f"k must be positive, got {k}.")
    n_items = train.n_items
    test_matrix = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0).astype(np.int64)
    n_relevant = np.diff(test_matrix.indptr)[users].astype(np.int64)
    seen = train.matrix(binary=True)

    model_users, model_items = _align(model, train)
    model_index = model_users[users]
    has_history = model_index >= 0
    has_history[has_history] = np.diff(model.seen.indptr)[model_index[has_history]] > 0
    cold_scores = _to_data_items(model.cold_start_scores()[None, :], model_items, n_items)[0]

    width = min(k, n_items)
    recommended = np.full((len(users), width), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        scores = np.repeat(cold_scores[None, :], len(users[batch]), axis=0)
        warm = np.flatnonzero(has_history[batch])
        if len(warm):
            scores[warm] = _to_data_items(model.score_users(model_index[batch][warm]), model_items, n_items)
        _mask(scores, seen[users[batch]])
        top = top_k(scores, width)
        valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
        recommended[batch] = np.where(valid, top, -1)

    relevant = test_matrix[users]
    hits = np.zeros(recommended.shape, dtype=bool)
    for start in range(0, len(users), batch_size):
        block = relevant[start : start + batch_size].toarray() > 0
        rec = recommended[start : start + batch_size]
        hits[start : start + batch_size] = np.take_along_axis(block, np.maximum(rec, 0), axis=1) & (rec >= 0)

    counts = metrics.recommendation_counts(recommended, n_items)
    train_users_per_item = np.diff(sp.csc_matrix(seen).indptr)
    popularity = np.maximum(train_users_per_item, 1) / max(int(np.count_nonzero(np.diff(seen.indptr))), 1)
    diversity = metrics.intra_list_diversity(recommended, item_vectors) if item_vectors is not None else None
    return EvaluationResult(
        k=k,
        n_users=len(users),
        n_cold_start_users=int((~has_history).sum()),
        precision=metrics.precision_at_k(hits, n_relevant, k),
        recall=metrics.recall_at_k(hits, n_relevant),
        ndcg=metrics.ndcg_at_k(hits, n_relevant, k),
        map=metrics.mean_average_precision(hits, n_relevant),
        map_at_k=metrics.map_at_k(hits, n_relevant, k),
        mrr=metrics.mrr(hits, n_relevant),
        hit_rate=metrics.hit_rate(hits, n_relevant),
        coverage=metrics.catalogue_coverage(counts),
        novelty=metrics.novelty(recommended, popularity.astype(np.float64)),
        diversity=diversity,
        gini=metrics.gini(counts),
        seconds=time.perf_counter() - started,
    )


def _align(model: Recommender, data: TrainingData) -> tuple[IntArray, IntArray | None]:
    """Model user index of every data user (-1 if unknown), and the model item index of every
    data item (-1 if unknown; None when the catalogues are identical)."""
    if model.user_ids == data.user_ids:
        users = np.arange(data.n_users, dtype=np.int64)
    else:
        position = {u: i for i, u in enumerate(model.user_ids)}
        users = np.fromiter((position.get(u, -1) for u in data.user_ids), dtype=np.int64, count=data.n_users)
    if model.item_ids == data.item_ids:
        return users, None
    position = {it: j for j, it in enumerate(model.item_ids)}
    items = np.fromiter((position.get(it, -1) for it in data.item_ids), dtype=np.int64, count=data.n_items)
    return users, items


def _to_data_items(scores: np.ndarray, model_items: IntArray | None, n_items: int) -> np.ndarray:
    """Re-index model-catalogue scores to the data catalogue; unknown items get -inf."""
    scores = np.asarray(scores, dtype=np.float32)
    if model_items is None:
        return scores
    out = np.full((scores.shape[0], n_items), -np.inf, dtype=np.float32)
    known = model_items >= 0
    out[:, known] = scores[:, model_items[known]]
    return out


def _mask(scores: np.ndarray, seen: sp.csr_matrix) -> None:
    """Set the seen cells of a (batch x items) score block to -inf, in place."""
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf
