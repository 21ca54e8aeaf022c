"""Hand-computed behaviour of popularity, content, item-kNN and EASE on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from recommenders.algorithms.base import RecommenderError, TrainingData
from recommenders.algorithms.content import TfidfContentRecommender
from recommenders.algorithms.ease import EaseRecommender, session_gram
from recommenders.algorithms.neighbourhood import ItemKnnRecommender
from recommenders.algorithms.popularity import PopularityRecommender
from tests.recommenders.algorithms.conftest import toy_data

DAY = 86_400


def ids(recommendations: list) -> list[str]:  # type: ignore[type-arg]
    return [r.item_id for r in recommendations]


def test_popularity_counts_interactions_and_scales_by_the_maximum() -> None:
    model = PopularityRecommender()
    model.fit(toy_data())

    # apple, pear, plum, hammer, saw were used 2, 2, 1, 2, 1 times.
    np.testing.assert_allclose(model.cold_start_scores(), [1.0, 1.0, 0.5, 1.0, 0.5])
    assert ids(model.recommend("u4", k=3)) == ["apple", "pear", "plum"]


def test_popularity_half_life_halves_the_weight_per_half_life_of_age() -> None:
    data = TrainingData.from_records(
        users=["a", "b", "c"], items=["new", "old", "old"], timestamps=[10 * DAY, 9 * DAY, 8 * DAY]
    )
    model = PopularityRecommender({"half_life_days": 1.0})
    model.fit(data)

    # new: 1; old: 0.5 + 0.25 = 0.75, then divided by the maximum (1).
    np.testing.assert_allclose(model.cold_start_scores(), [1.0, 0.75])


def test_content_profile_recommends_items_like_the_history() -> None:
    model = TfidfContentRecommender()
    model.fit(toy_data())

    assert ids(model.recommend("u1", k=1)) == ["plum"]
    assert ids(model.recommend("u4", k=1)) == ["saw"]


def test_content_cold_start_with_a_query_is_pure_query_ranking() -> None:
    model = TfidfContentRecommender()
    model.fit(toy_data())

    assert ids(model.recommend("stranger", k=2, query="steel saw")) == ["saw", "hammer"]
    assert ids(model.recommend("stranger", k=1, query="green")) == ["pear"]


def test_content_query_weight_blends_query_and_profile() -> None:
    only_profile = TfidfContentRecommender({"query_weight": 0.0})
    only_query = TfidfContentRecommender({"query_weight": 1.0})
    only_profile.fit(toy_data())
    only_query.fit(toy_data())

    assert ids(only_profile.recommend("u1", k=1, query="steel saw")) == ["plum"]
    assert ids(only_query.recommend("u1", k=1, query="steel saw")) == ["saw"]


def test_content_needs_some_item_text() -> None:
    data = TrainingData.from_records(users=["a"], items=["x"])
    with pytest.raises(RecommenderError, match="needs item text"):
        TfidfContentRecommender().fit(data)


def test_item_knn_sums_cosine_similarities_to_the_history() -> None:
    model = ItemKnnRecommender({"neighbours": 4})
    model.fit(toy_data())

    scores = model.score_users(np.array([0, 3]))  # u1 (apple, pear), u4 (hammer)

    # cos(plum, apple) = cos(plum, pear) = 1/√2; cos(saw, hammer) = 1/√2; no cross-block overlap.
    np.testing.assert_allclose(scores[0], [1.0, 1.0, np.sqrt(2), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [0.0, 0.0, 0.0, 0.0, 1 / np.sqrt(2)], rtol=1e-6)


def test_item_knn_keeps_only_the_top_neighbours() -> None:
    model = ItemKnnRecommender({"neighbours": 1})
    model.fit(toy_data())

    # plum's single neighbour is apple or pear (tie), so u1 scores plum 1/√2, not √2.
    assert model.score_users(np.array([0]))[0, 2] == pytest.approx(1 / np.sqrt(2))


def test_ease_matches_the_closed_form() -> None:
    data = toy_data()
    model = EaseRecommender({"l2": 0.5})
    model.fit(data)

    x = data.matrix().toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 0.5 * np.eye(data.n_items))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.score_users(np.arange(4)), x @ b, rtol=1e-5, atol=1e-6)


def session_data() -> TrainingData:
    """u1 takes a, b, c at 0, 100, 300 s; u2 takes a at 0 and c twice (50 s and 150 s: mean 100 s)."""
    return TrainingData.from_records(
        users=["u1", "u1", "u1", "u2", "u2", "u2"],
        items=["a", "b", "c", "a", "c", "c"],
        timestamps=[0, 100, 300, 0, 50, 150],
        item_ids=["a", "b", "c", "d"],
    )


def test_session_gram_weights_each_co_occurrence_by_the_time_between_the_two_interactions() -> None:
    data = session_data()
    e = np.exp

    gram = session_gram(data, data.matrix(binary=True), 100.0)

    # a-c: u1 took them 300 s apart, u2 100 s apart (c at its mean time); d: nobody.
    expected = np.array(
        [
            [2.0, e(-1.0), e(-3.0) + e(-1.0), 0.0],
            [e(-1.0), 1.0, e(-2.0), 0.0],
            [e(-3.0) + e(-1.0), e(-2.0), 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(gram, expected, rtol=1e-12)


def test_session_gram_multiplies_the_kernel_by_the_summed_values() -> None:
    data = session_data()

    gram = session_gram(data, data.matrix(binary=False), 100.0)

    # u2's two c interactions have value 1 each: x_u2c = 2.
    assert gram[2, 2] == pytest.approx(1.0 + 4.0)
    assert gram[0, 2] == pytest.approx(np.exp(-3.0) + 2.0 * np.exp(-1.0))


def test_session_ease_is_the_closed_form_on_the_session_gram() -> None:
    data = session_data()
    model = EaseRecommender({"l2": 0.5, "session_seconds": 100.0})
    model.fit(data)

    p = np.linalg.inv(session_gram(data, data.matrix(binary=True), 100.0) + 0.5 * np.eye(data.n_items))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    x = data.matrix().toarray().astype(np.float64)
    np.testing.assert_allclose(model.score_users(np.arange(2)), x @ b, rtol=1e-5, atol=1e-6)


def test_session_ease_equals_plain_ease_when_every_interaction_has_the_same_time() -> None:
    data = toy_data()  # every timestamp is 0: the kernel is 1 and the Gram is XᵀX
    plain = EaseRecommender({"l2": 0.5})
    session = EaseRecommender({"l2": 0.5, "session_seconds": 60.0})
    plain.fit(data)
    session.fit(data)

    np.testing.assert_array_equal(session.score_users(np.arange(4)), plain.score_users(np.arange(4)))


def test_ease_refuses_catalogues_above_max_items() -> None:
    with pytest.raises(RecommenderError, match="exceed max_items=3"):
        EaseRecommender({"max_items": 3}).fit(toy_data())
