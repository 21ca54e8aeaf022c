"""Precision, recall and NDCG at every cut-off k = 1…depth, for the comparison page's curves.

The evaluator (`recommenders.evaluation.evaluator.evaluate`) returns averages at one k and
keeps its hit matrix to itself, so this module ranks the test users once more, `depth`
deep, and applies the evaluator's public metric functions to each prefix of that hit
matrix. The ranking follows the evaluator's rules: users without training history get
the model's cold-start scores, items seen in `train` are removed, ties go to the lower
item index (`top_k`).

It only handles a model fitted on `train` itself (same user and item ids), which is how
`run_evaluation` fits; anything else returns None rather than guessing an alignment.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recommenders.algorithms.base import Recommender, TrainingData, top_k
from recommenders.evaluation import metrics

CURVE_DEPTH = 50
CURVE_METRICS = ("precision", "recall", "ndcg")
# Scoring every test user a second time doubles the ranking cost; a fixed sample bounds it
# for the slow scorers (deep models) while covering the demo data sets completely.
MAX_CURVE_USERS = 5000
_BATCH = 1024


def metric_curves(
    model: Recommender, train: TrainingData, test: TrainingData, depth: int = CURVE_DEPTH, *, seed: int = 42
) -> dict[str, list[float]] | None:
    """{"precision": [p@1, …, p@depth], "recall": […], "ndcg": […]}; None when the model's ids differ."""
    if model.user_ids != train.user_ids or model.item_ids != train.item_ids:
        return None
    hits, n_relevant = _hit_matrix(model, train, test, depth, seed)
    curves: dict[str, list[float]] = {name: [] for name in CURVE_METRICS}
    for k in range(1, depth + 1):
        prefix = hits[:, :k]
        curves["precision"].append(metrics.precision_at_k(prefix, n_relevant, k))
        curves["recall"].append(metrics.recall_at_k(prefix, n_relevant))
        curves["ndcg"].append(metrics.ndcg_at_k(prefix, n_relevant, k))
    return curves


def _hit_matrix(
    model: Recommender, train: TrainingData, test: TrainingData, depth: int, seed: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """(users x depth) hits of the test users' top-`depth` lists, and their numbers of test items."""
    test_matrix = test.matrix(binary=True)
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0).astype(np.int64)
    if len(users) > MAX_CURVE_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, MAX_CURVE_USERS, replace=False))
    n_relevant = np.diff(test_matrix.indptr)[users].astype(np.int64)
    seen = train.matrix(binary=True)
    trained = np.diff(model.seen.indptr) > 0
    cold = np.asarray(model.cold_start_scores(), dtype=np.float32)
    width = min(depth, train.n_items)
    # Columns beyond a short catalogue stay False: precision@k still divides by k.
    hits = np.zeros((len(users), depth), dtype=bool)
    for start in range(0, len(users), _BATCH):
        batch = users[start : start + _BATCH]
        scores = np.repeat(cold[None, :], len(batch), axis=0)
        warm = np.flatnonzero(trained[batch])
        if len(warm):
            scores[warm] = model.score_users(batch[warm])
        block = seen[batch]
        scores[np.repeat(np.arange(len(batch)), np.diff(block.indptr)), block.indices] = -np.inf
        top = top_k(scores, width)
        valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
        relevant = test_matrix[batch].toarray() > 0
        hits[start : start + len(batch), :width] = np.take_along_axis(relevant, top, axis=1) & valid
    return hits, n_relevant
