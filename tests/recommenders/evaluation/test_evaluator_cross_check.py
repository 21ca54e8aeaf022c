"""The vectorised evaluator agrees with a plain per-user loop over `recommend` on real data."""

from __future__ import annotations

import numpy as np
import pytest

from recommenders.algorithms.neighbourhood import ItemKnnRecommender
from recommenders.evaluation.evaluator import evaluate
from recommenders.evaluation.splits import stratified_split
from tests.recommenders.algorithms.shared_data import first_users, movielens


def test_vectorised_metrics_equal_a_per_user_loop_on_movielens() -> None:
    train, test = stratified_split(first_users(movielens(), 120), 0.75, seed=42)
    model = ItemKnnRecommender({"neighbours": 30})
    model.fit(train)
    k = 10

    precision, recall, ndcg, average_precision = [], [], [], []
    for user in np.unique(test.user_index):
        relevant = {test.item_ids[j] for j in test.item_index[test.user_index == user]}
        ranked = [r.item_id for r in model.recommend(test.user_ids[user], k=k)]
        hits = [item in relevant for item in ranked]
        precision.append(sum(hits) / k)
        recall.append(sum(hits) / len(relevant))
        dcg = sum(1 / np.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        ideal = sum(1 / np.log2(rank + 2) for rank in range(min(len(relevant), k)))
        ndcg.append(dcg / ideal)
        found = 0
        summed = 0.0
        for rank, hit in enumerate(hits, start=1):
            if hit:
                found += 1
                summed += found / rank
        average_precision.append(summed / len(relevant))

    result = evaluate(model, train, test, k)

    assert result.precision == pytest.approx(np.mean(precision))
    assert result.recall == pytest.approx(np.mean(recall))
    assert result.ndcg == pytest.approx(np.mean(ndcg))
    assert result.map == pytest.approx(np.mean(average_precision))
