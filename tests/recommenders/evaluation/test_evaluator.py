from __future__ import annotations

import json
from dataclasses import asdict
from typing import ClassVar

import numpy as np
import pytest

from recommenders.algorithms.base import FitReport, FloatArray, IntArray, ProgressCallback, Recommender, TrainingData
from recommenders.algorithms.popularity import PopularityRecommender
from recommenders.evaluation.evaluator import evaluate, item_tfidf_vectors

D2, D3, D4, D6 = (1 / np.log2(r + 1) for r in (2, 3, 4, 6))
IDEAL_2 = 1 + D2  # ideal DCG with two relevant items


class FixedScores(Recommender):
    """Scores from a fixed table by user id; no training."""

    name = "test_fixed_scores"
    table: ClassVar[dict[str, list[float]]] = {
        "U0": [9, 5, 5, 1, 3, 0],  # items 1 and 2 tie: item 1 must come first
        "U1": [0, 0, 0, 0, 0, 0],  # all tie: index order
        "U2": [1, 2, 3, 4, 5, 6],
    }

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        return FitReport()

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        return np.asarray([self.table[self.user_ids[u]] for u in users], dtype=np.float32)


def split() -> tuple[TrainingData, TrainingData]:
    """Items i0..i5; train and test share the id tuples (as the splits module makes them).

    train: U0 i0, U1 i1, U2 i5. test: U0 i2 i3, U1 i0, U3 i5 i4. U3 has no training rows
    (cold start); U2 has no test rows (not evaluated).
    """
    full = TrainingData.from_records(
        ["U0", "U1", "U2", "U0", "U0", "U1", "U3", "U3"],
        ["i0", "i1", "i5", "i2", "i3", "i0", "i5", "i4"],
        item_ids=[f"i{j}" for j in range(6)],
    )
    in_train = np.array([True, True, True, False, False, False, False, False])
    return full.take(in_train), full.take(~in_train)


@pytest.fixture
def model() -> FixedScores:
    train, _ = split()
    fixed = FixedScores()
    fixed.fit(train)
    return fixed


def test_hand_computed_metrics_at_3_with_ties_cold_start_and_a_user_without_test_items(model: FixedScores) -> None:
    train, test = split()

    result = evaluate(model, train, test, k=3)

    # U0: seen i0; ranking i1, i2 (tie, lower index first), i4; relevant {i2, i3}: hit at rank 2.
    # U1: seen i1; ranking i0, i2, i3; relevant {i0}: hit at rank 1.
    # U3: cold start, popularity of train (i0, i1, i5 once each): i0, i1, i5; relevant {i4, i5}: rank 3.
    # U2 has no test items and is not evaluated.
    assert result.n_users == 3
    assert result.n_cold_start_users == 1
    assert result.precision == pytest.approx((1 / 3 + 1 / 3 + 1 / 3) / 3)
    assert result.recall == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert result.ndcg == pytest.approx((D2 / IDEAL_2 + 1 + D3 / IDEAL_2) / 3)
    assert result.map == pytest.approx(((1 / 2) / 2 + 1 + (1 / 3) / 2) / 3)
    assert result.map_at_k == pytest.approx(result.map)
    assert result.mrr == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert result.hit_rate == 1.0
    # Lists i1 i2 i4 | i0 i2 i3 | i0 i1 i5 cover all 6 items with counts 2 2 2 1 1 1.
    assert result.coverage == 1.0
    assert result.gini == pytest.approx(9 / 54)
    # Three training users; every recommended item was used by one of them or none (clipped to 1).
    assert result.novelty == pytest.approx(np.log2(3))
    assert result.diversity is None


def test_k_larger_than_the_catalogue_keeps_every_unseen_item_and_divides_precision_by_k(model: FixedScores) -> None:
    train, test = split()

    result = evaluate(model, train, test, k=10)

    # U0: i1 i2 i4 i3 i5 (i0 seen) -> hits at ranks 2 and 4; U1: i0 first; U3: i0 i1 i5 i2 i3 i4 -> ranks 3, 6.
    assert result.precision == pytest.approx((2 / 10 + 1 / 10 + 2 / 10) / 3)
    assert result.recall == 1.0
    assert result.ndcg == pytest.approx(((D2 + D4) / IDEAL_2 + 1 + (D3 + D6) / IDEAL_2) / 3)
    assert result.map == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1 + (1 / 3 + 2 / 6) / 2) / 3)


def test_result_is_json_serialisable_and_times_itself(model: FixedScores) -> None:
    train, test = split()

    result = evaluate(model, train, test, k=3)

    assert json.loads(json.dumps(asdict(result)))["k"] == 3
    assert result.seconds > 0


def test_train_and_test_must_share_id_tuples(model: FixedScores) -> None:
    train, _ = split()
    other = TrainingData.from_records(["X"], ["i0"])
    with pytest.raises(Exception, match="share user_ids and item_ids"):
        evaluate(model, train, other)


def test_diversity_uses_item_text_vectors() -> None:
    data = TrainingData.from_records(
        ["a", "b", "b", "c"],
        ["x", "x", "y", "z"],
        item_text={"x": "red apple", "y": "red apple", "z": "steel saw"},
    )
    train, test = data.take(np.array([0, 1])), data.take(np.array([2, 3]))
    model = PopularityRecommender()
    model.fit(train)

    result = evaluate(model, train, test, k=2, item_vectors=item_tfidf_vectors(train))

    # b saw x: list y, z (orthogonal texts) -> 1; c: x, y (identical texts) -> 0.
    assert result.diversity == pytest.approx(0.5)


def test_a_model_fitted_on_other_id_orders_is_matched_by_id() -> None:
    train, test = split()
    reordered = TrainingData.from_records(
        [train.user_ids[u] for u in train.user_index],
        [train.item_ids[j] for j in train.item_index],
        item_ids=list(reversed(train.item_ids)),
    )
    same, other = PopularityRecommender(), PopularityRecommender()
    same.fit(train)
    other.fit(reordered)

    # Scores are re-indexed to the data catalogue before ranking, so even ties break the same way.
    assert asdict(evaluate(other, train, test, k=6)) | {"seconds": 0} == asdict(evaluate(same, train, test, k=6)) | {
        "seconds": 0
    }
