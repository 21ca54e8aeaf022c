"""Every built-in algorithm (deep ones live in their own tests) honours the shared interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommenders.algorithms import registry
from recommenders.algorithms.base import NotFittedError, ParameterError, Recommender, TrainingData, top_k
from recommenders.evaluation.splits import stratified_split
from tests.recommenders.algorithms.conftest import FAST_PARAMS

# Test name -> (registry name, parameters): every algorithm, plus options that change how
# one trains (EASE's session-weighted Gram reads the timestamps).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {name: (name, params) for name, params in FAST_PARAMS.items()} | {
    "ease_session": ("ease", {"l2": 100.0, "session_seconds": 3600.0}),
}
ALGORITHMS = sorted(VARIANTS)


def make(name: str) -> Recommender:
    algorithm, params = VARIANTS[name]
    return registry.get(algorithm)(params)


def seen_items(data: TrainingData, user_id: str) -> set[str]:
    user = data.user_ids.index(user_id)
    return {data.item_ids[j] for j in data.item_index[data.user_index == user]}


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("data_fixture", ["ml_slice", "retail_slice"])
def test_fits_and_recommends_unseen_catalogue_items(
    name: str, data_fixture: str, request: pytest.FixtureRequest
) -> None:
    data: TrainingData = request.getfixturevalue(data_fixture)
    model = make(name)

    model.fit(data)
    user = data.user_ids[3]
    recommendations = model.recommend(user, k=10)

    items = [r.item_id for r in recommendations]
    assert len(items) == 10
    assert len(set(items)) == 10
    assert set(items) <= set(data.item_ids)
    assert not set(items) & seen_items(data, user)
    scores = [r.score for r in recommendations]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_unknown_and_historyless_users_get_the_cold_start_fallback(name: str, ml_slice: TrainingData) -> None:
    # A split leaves some users with no training rows while keeping them in the id tuples.
    train = ml_slice.take(ml_slice.user_index != 0)
    model = make(name)
    model.fit(train)
    expected = [train.item_ids[j] for j in top_k(model.cold_start_scores()[None, :], 5)[0]]

    unknown = [r.item_id for r in model.recommend("no-such-user", k=5)]
    historyless = [r.item_id for r in model.recommend(train.user_ids[0], k=5)]

    assert unknown == expected
    assert historyless == expected


@pytest.mark.parametrize("name", ALGORITHMS)
def test_save_load_round_trip_gives_identical_recommendations(
    name: str, ml_slice: TrainingData, tmp_path: Path
) -> None:
    model = make(name)
    model.fit(ml_slice)
    path = tmp_path / "model.pickle"

    model.save(path)
    loaded = Recommender.load(path)

    for user in (ml_slice.user_ids[0], ml_slice.user_ids[42], "cold-start-user"):
        assert loaded.recommend(user, k=10) == model.recommend(user, k=10)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_scores_have_one_float32_row_per_user(name: str, ml_slice: TrainingData) -> None:
    model = make(name)
    model.fit(ml_slice)

    scores = model.score_users(np.array([0, 1, 2]))

    assert scores.shape == (3, ml_slice.n_items)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", ALGORITHMS)
def test_unknown_parameter_is_rejected_with_its_name(name: str) -> None:
    with pytest.raises(ParameterError) as error:
        registry.get(VARIANTS[name][0])({"no_such_parameter": 1})
    assert error.value.field == "no_such_parameter"


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("popularity", "half_life_days", "a week"),
        ("content_tfidf", "query_weight", "high"),
        ("content_tfidf", "sublinear_tf", 1),
        ("item_knn", "neighbours", 2.5),
        ("ease", "l2", "big"),
        ("ease", "session_seconds", "an hour"),
        ("als", "factors", "64"),
        ("bpr", "learning_rate", True),
        ("hybrid", "learn_weights", "yes"),
    ],
)
def test_wrong_type_is_rejected_with_the_field_name(name: str, field: str, value: object) -> None:
    with pytest.raises(ParameterError) as error:
        registry.get(name)({field: value})
    assert error.value.field == field


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("popularity", "half_life_days", -1.0),
        ("content_tfidf", "query_weight", 1.5),
        ("item_knn", "neighbours", 0),
        ("ease", "l2", 0.0),
        ("ease", "session_seconds", -1.0),
        ("als", "factors", 0),
        ("als", "alpha", -1.0),
        ("als", "num_threads", -2),
        ("bpr", "iterations", 0),
        ("bpr", "learning_rate", 0.0),
    ],
)
def test_out_of_range_value_is_rejected_with_the_field_name(name: str, field: str, value: object) -> None:
    with pytest.raises(ParameterError) as error:
        registry.get(name)({field: value})
    assert error.value.field == field


def test_unknown_algorithm_lists_the_known_names() -> None:
    with pytest.raises(registry.UnknownAlgorithm) as error:
        registry.get("magic")
    for known in ("popularity", "content_tfidf", "item_knn", "ease", "als", "bpr", "hybrid", "deep_mlp", "two_tower"):
        assert known in str(error.value)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_recommend_before_fit_raises_not_fitted(name: str) -> None:
    with pytest.raises(NotFittedError):
        make(name).recommend("u1")


@pytest.mark.parametrize("name", ["ease", "item_knn", "als"])
def test_collaborative_models_beat_popularity_on_held_out_movielens(name: str, ml_slice: TrainingData) -> None:
    from recommenders.evaluation.evaluator import evaluate

    train, test = stratified_split(ml_slice, 0.75, seed=42)
    popularity = registry.get("popularity")()
    popularity.fit(train)
    model = make(name)
    model.fit(train)

    assert evaluate(model, train, test).ndcg > evaluate(popularity, train, test).ndcg
