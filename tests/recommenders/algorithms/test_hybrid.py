from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recommenders.algorithms.base import ParameterError, RecommenderError, TrainingData
from recommenders.algorithms.content import TfidfContentRecommender
from recommenders.algorithms.ease import EaseRecommender
from recommenders.algorithms.hybrid import HybridRecommender, normalise_rows, simplex_grid
from recommenders.algorithms.popularity import PopularityRecommender
from tests.recommenders.algorithms.conftest import toy_data


def ids(recommendations: list[Any]) -> list[str]:
    return [r.item_id for r in recommendations]


def test_simplex_grid_lists_every_weight_vector_summing_to_one() -> None:
    grid = {tuple(float(w) for w in point) for point in simplex_grid(3, 0.5)}

    assert grid == {(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)}


def test_minmax_normalisation_uses_the_unseen_items_range() -> None:
    scores = np.array([[1.0, 3.0, 5.0, 9.0], [2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    seen = np.array([[False, False, False, True], [False, False, False, False]])

    normalised = normalise_rows(scores, seen, "minmax")

    np.testing.assert_allclose(normalised, [[0.0, 0.5, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])


def test_zscore_normalisation_uses_the_unseen_items_moments() -> None:
    scores = np.array([[1.0, 3.0, 5.0, 9.0]], dtype=np.float32)
    seen = np.array([[False, False, False, True]])

    normalised = normalise_rows(scores, seen, "zscore")

    std = np.sqrt(8 / 3)  # population std of 1, 3, 5
    np.testing.assert_allclose(normalised, [[-2 / std, 0.0, 2 / std, 6 / std]], rtol=1e-6)


@pytest.mark.parametrize(
    ("components", "field"),
    [
        ([], "components"),
        ("ease", "components"),
        ([{"algorithm": "nope"}], "components[0].algorithm"),
        ([{"algorithm": "hybrid"}], "components[0].algorithm"),
        ([{"algorithm": "ease", "params": {"l2": -1.0}}], "components[0].params.l2"),
        ([{"algorithm": "ease", "params": {"lambda": 1.0}}], "components[0].params.lambda"),
        ([{"algorithm": "ease"}, {"algorithm": "als", "weight": -1}], "components[1].weight"),
        ([{"algorithm": "ease", "colour": "red"}], "components[0].colour"),
        ([{"algorithm": "ease", "weight": 0}], "components"),
    ],
)
def test_bad_components_name_the_offending_field(components: Any, field: str) -> None:
    with pytest.raises(ParameterError) as error:
        HybridRecommender({"components": components})
    assert error.value.field == field


def test_weights_blend_normalised_component_scores() -> None:
    data = toy_data()
    hybrid = HybridRecommender(
        {"components": [{"algorithm": "ease", "weight": 3.0}, {"algorithm": "popularity", "weight": 1.0}]}
    )
    hybrid.fit(data)
    ease, popularity = EaseRecommender(), PopularityRecommender()
    ease.fit(data)
    popularity.fit(data)

    users = np.arange(data.n_users)
    seen = data.matrix().toarray() > 0
    expected = 3.0 * normalise_rows(ease.score_users(users), seen, "minmax") + normalise_rows(
        popularity.score_users(users), seen, "minmax"
    )
    np.testing.assert_allclose(hybrid.score_users(users), expected, rtol=1e-6)


def test_from_fitted_with_all_weight_on_one_model_ranks_like_it() -> None:
    data = toy_data()
    ease, popularity = EaseRecommender(), PopularityRecommender()
    ease.fit(data)
    popularity.fit(data)

    hybrid = HybridRecommender.from_fitted([(ease, 1.0), (popularity, 0.0)])

    assert hybrid.params.components == [
        {"algorithm": "ease", "weight": 1.0},
        {"algorithm": "popularity", "weight": 0.0},
    ]
    for user in data.user_ids:
        assert ids(hybrid.recommend(user, k=3)) == ids(ease.recommend(user, k=3))


def test_from_fitted_matches_components_trained_on_different_ids() -> None:
    data = toy_data()
    extra = TrainingData.from_records(
        users=["u9", "u9", "u9"], items=["kiwi", "kiwi", "apple"], item_ids=["apple", "kiwi"]
    )
    full, small = PopularityRecommender(), PopularityRecommender()
    full.fit(data)
    small.fit(extra)

    hybrid = HybridRecommender.from_fitted([(full, 0.4), (small, 0.6)])

    assert hybrid.item_ids == ("apple", "pear", "plum", "hammer", "saw", "kiwi")
    assert hybrid.user_ids == ("u1", "u2", "u3", "u4", "u9")
    # u9 saw apple and kiwi in the small model's data: both are excluded for u9.
    assert not {"apple", "kiwi"} & set(ids(hybrid.recommend("u9", k=6)))
    # Normalised: full gives apple, pear, hammer 1 and kiwi (unknown to it) 0; small gives
    # kiwi 1 and everything else 0. Blend: kiwi 0.6, then apple/pear/hammer 0.4 (lower index first).
    assert ids(hybrid.recommend("stranger", k=3)) == ["kiwi", "apple", "pear"]


def test_from_fitted_refuses_unfitted_models() -> None:
    with pytest.raises(RecommenderError, match="must be fitted first"):
        HybridRecommender.from_fitted([(EaseRecommender(), 1.0)])


def test_query_goes_to_the_components_that_support_it() -> None:
    data = toy_data()
    content, popularity = TfidfContentRecommender({"query_weight": 1.0}), PopularityRecommender()
    content.fit(data)
    popularity.fit(data)

    with_content = HybridRecommender.from_fitted([(content, 0.8), (popularity, 0.2)])
    without = HybridRecommender.from_fitted([(popularity, 1.0)])

    assert with_content.supports_query is True
    assert without.supports_query is False
    assert ids(with_content.recommend("stranger", k=2, query="steel saw")) == ["saw", "hammer"]
    assert ids(with_content.recommend("u1", k=1, query="steel saw")) == ["saw"]


def test_learn_weights_prefers_the_useful_component_and_refits_on_everything(ml_slice: TrainingData) -> None:
    hybrid = HybridRecommender(
        {
            "components": [
                {"algorithm": "ease", "params": {"l2": 100.0}},
                {"algorithm": "content_tfidf"},
            ],
            "learn_weights": True,
            "grid_step": 0.25,
        }
    )

    report = hybrid.fit(ml_slice)

    weights = report.notes["weights"]
    assert weights[0] > weights[1]
    assert report.notes["grid_points"] == 5
    assert 0.0 < report.notes["validation_ndcg_at_10"] <= 1.0
    assert all(c.seen.nnz == ml_slice.matrix().nnz for c in hybrid.components)


def test_fixed_weight_fit_reports_progress_from_the_start_to_done() -> None:
    seen: list[float] = []
    hybrid = HybridRecommender({"components": [{"algorithm": "ease"}, {"algorithm": "popularity"}]})

    hybrid.fit(toy_data(), lambda fraction, _: seen.append(fraction))

    assert seen[0] < 0.5
    assert seen[-1] == 1.0
    assert seen == sorted(seen)


def test_params_schema_lists_the_components_and_options() -> None:
    schema = HybridRecommender.params_schema()

    assert schema["components"] == {"type": "list", "default": []}
    assert schema["normalisation"] == {"type": "str", "default": "minmax"}
    assert schema["learn_weights"] == {"type": "bool", "default": False}
