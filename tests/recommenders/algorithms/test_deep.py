"""Tests of the deep recommenders (deep_mlp, two_tower).

Training tests are marked `tensorflow` and kept tiny (hundreds of interactions, a few
epochs, small layers) so the whole file runs in well under a minute on a shared CPU.
Models trained on the toy problem are built once per module and shared by the tests that
only read them.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from recommenders.algorithms import registry
from recommenders.algorithms.base import ParameterError, Recommender, TrainingData
from recommenders.algorithms.deep import MlpRecommender, TwoTowerRecommender
from recommenders.algorithms.deep_inputs import MlpParams, TwoTowerParams, item_text_features, sample_negatives
from tests.recommenders.algorithms.deep_data import REPO_ROOT, ml100k_slice, online_retail_slice, toy_two_groups

# Small networks and short training for tests; the defaults are checked separately.
TINY: dict[type[Recommender], dict[str, Any]] = {
    MlpRecommender: {"embedding_dim": 8, "hidden_units": 16, "hidden_layer_count": 2, "batch_size": 32},
    TwoTowerRecommender: {"embedding_dim": 8, "tower_units": 16, "output_dim": 8, "batch_size": 32},
}
MODELS = [MlpRecommender, TwoTowerRecommender]


def tiny(cls: type[Recommender], **overrides: Any) -> Recommender:
    return cls({**TINY[cls], **overrides})


@pytest.fixture(scope="module")
def toy() -> TrainingData:
    return toy_two_groups()


@pytest.fixture(scope="module", params=MODELS, ids=lambda c: c.name)
def toy_model(request: pytest.FixtureRequest, toy: TrainingData) -> tuple[Recommender, list[tuple[float, str]], Any]:
    """A model fitted on the toy problem, the progress calls it made, and its FitReport."""
    calls: list[tuple[float, str]] = []
    model = tiny(request.param, epochs=8, learning_rate=0.01)
    report = model.fit(toy, lambda fraction, message: calls.append((fraction, message)))
    return model, calls, report


# ---- no TensorFlow needed ------------------------------------------------------------------
def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = "import sys, recommenders.algorithms.deep; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_registry_names_point_at_the_deep_classes() -> None:
    assert registry.get("deep_mlp") is MlpRecommender
    assert registry.get("two_tower") is TwoTowerRecommender


def test_mlp_defaults_are_the_specified_network() -> None:
    p = cast(MlpParams, MlpRecommender().params)
    assert (p.hidden_units, p.hidden_layer_count, p.learning_rate, p.batch_size, p.epochs, p.negatives) == (
        200,
        3,
        0.001,
        64,
        10,
        4,
    )
    assert p == MlpParams()


def test_params_accept_json_numbers() -> None:
    params = TwoTowerRecommender.parse_params({"epochs": 3.0, "validation_fraction": 0, "tower_layer_count": 0})
    assert params == TwoTowerParams(epochs=3, validation_fraction=0.0, tower_layer_count=0)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"batch_size": -1}, "batch_size"),
        ({"negatives": 0}, "negatives"),
        ({"embedding_dim": 2.5}, "embedding_dim"),
        ({"validation_fraction": 0.5}, "validation_fraction"),
        ({"seed": -3}, "seed"),
        ({"no_such_param": 1}, "no_such_param"),
    ],
)
def test_bad_params_raise_parameter_error_naming_the_field(
    cls: type[Recommender], raw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        cls(raw)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("cls", "raw", "field"),
    [
        (MlpRecommender, {"hidden_units": 0}, "hidden_units"),
        (MlpRecommender, {"hidden_layer_count": 0}, "hidden_layer_count"),
        (TwoTowerRecommender, {"tower_layer_count": -1}, "tower_layer_count"),
        (TwoTowerRecommender, {"output_dim": 0}, "output_dim"),
        (TwoTowerRecommender, {"text_features": -1}, "text_features"),
    ],
)
def test_bad_architecture_params_name_the_field(cls: type[Recommender], raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        cls(raw)
    assert caught.value.field == field


def test_negative_sampler_draws_only_unseen_items_uniformly() -> None:
    data = TrainingData.from_records(["a", "a", "a", "b"], ["0", "1", "2", "0"], item_ids=[str(i) for i in range(6)])
    seen = data.matrix()
    users = np.array([0] * 3000 + [1] * 3000)
    neg_users, neg_items = sample_negatives(seen, users, 2, np.random.default_rng(0))
    assert len(neg_items) == 12000
    assert not seen[neg_users, neg_items].any()
    counts_a = np.bincount(neg_items[neg_users == 0], minlength=6)
    assert counts_a[:3].tolist() == [0, 0, 0]
    assert np.all(np.abs(counts_a[3:] / 6000 - 1 / 3) < 0.03)  # ~0.6 % standard error per cell


def test_negative_sampler_drops_draws_for_a_user_who_has_seen_everything() -> None:
    data = TrainingData.from_records(["a", "a", "b"], ["0", "1", "0"])
    neg_users, neg_items = sample_negatives(data.matrix(), np.array([0, 1]), 3, np.random.default_rng(0))
    assert neg_users.tolist() == [1, 1, 1]
    assert neg_items.tolist() == [1, 1, 1]


# ---- training ------------------------------------------------------------------------------
@pytest.mark.tensorflow
def test_loss_has_one_entry_per_epoch_and_decreases_on_a_learnable_problem(toy_model: Any) -> None:
    _, calls, report = toy_model
    loss = report.history["loss"]
    assert len(loss) == 8
    assert loss[-1] < 0.8 * loss[0]
    assert [fraction for fraction, _ in calls] == pytest.approx([(e + 1) / 8 for e in range(8)])
    assert calls[2][1] == f"epoch 3/8 loss {loss[2]:.4f}"


@pytest.mark.tensorflow
def test_toy_model_ranks_its_groups_unseen_items_above_the_other_group(toy_model: Any, toy: TrainingData) -> None:
    model, _, _ = toy_model
    scores = model.score_users(np.arange(toy.n_users))
    group_a = np.array([item.startswith("a") for item in toy.item_ids])
    is_a_user = np.array([int(u[1:]) < 20 for u in toy.user_ids])
    own = np.where(is_a_user[:, None], group_a[None, :], ~group_a[None, :])
    unseen_own = np.where(own & (toy.matrix().toarray() == 0), scores, np.nan)
    other = np.where(~own, scores, np.nan)
    # Every user's best unseen own-group item beats the median other-group item.
    assert np.all(np.nanmax(unseen_own, axis=1) > np.nanmedian(other, axis=1))


@pytest.mark.tensorflow
def test_recommendations_exclude_seen_items(toy_model: Any, toy: TrainingData) -> None:
    model, _, _ = toy_model
    for user in ("u0", "u25"):
        seen = {toy.item_ids[j] for j in toy.matrix()[toy.user_ids.index(user)].indices}
        recommended = [r.item_id for r in model.recommend(user, k=20)]
        assert len(recommended) == 20 - len(seen)
        assert not seen & set(recommended)


@pytest.mark.tensorflow
def test_cold_start_user_gets_the_popularity_fallback(toy_model: Any) -> None:
    model, _, _ = toy_model
    recommended = model.recommend("nobody", k=5)
    expected = np.argsort(-model.popularity, kind="stable")[:5]
    assert [r.item_id for r in recommended] == [model.item_ids[j] for j in expected]


@pytest.mark.tensorflow
def test_a_listed_user_without_interactions_also_gets_the_fallback(toy: TrainingData) -> None:
    # TrainingData may list users with no interactions; their embeddings never train.
    data = dataclasses.replace(toy, user_ids=(*toy.user_ids, "ghost"))
    model = tiny(TwoTowerRecommender, epochs=1)
    model.fit(data)
    expected = np.argsort(-model.popularity, kind="stable")[:5]
    assert [r.item_id for r in model.recommend("ghost", k=5)] == [model.item_ids[j] for j in expected]
    assert model.recommend("u0", k=5) != model.recommend("ghost", k=5)


@pytest.mark.tensorflow
def test_save_and_load_give_identical_scores_and_the_same_keras_model(toy_model: Any, tmp_path: Path) -> None:
    model, _, _ = toy_model
    path = tmp_path / "model.pkl"
    model.save(path)
    loaded = Recommender.load(path)
    assert isinstance(loaded, MlpRecommender | TwoTowerRecommender)
    users = np.arange(len(model.user_ids))
    np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
    assert [r.item_id for r in loaded.recommend("u3", k=5)] == [r.item_id for r in model.recommend("u3", k=5)]
    # The Keras model, rebuilt lazily from the pickled weights, agrees with numpy scoring.
    keras_model = loaded.keras_model()
    n_items = len(model.item_ids)
    pairs = {"user": np.repeat(users[:4], n_items), "item": np.tile(np.arange(n_items), 4)}
    keras_out = np.asarray(keras_model(pairs), dtype=np.float64).reshape(4, n_items)
    if isinstance(model, MlpRecommender):  # sigmoid output; numpy scores are its logits
        keras_out = np.log(keras_out / (1 - keras_out))
    np.testing.assert_allclose(keras_out, loaded.score_users(users[:4]), atol=1e-4)


@pytest.mark.tensorflow
def test_a_loaded_model_recommends_without_importing_tensorflow(toy_model: Any, tmp_path: Path) -> None:
    model, _, _ = toy_model
    path = tmp_path / "model.pkl"
    model.save(path)
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from recommenders.algorithms.base import Recommender
        model = Recommender.load(Path({str(path)!r}))
        print(",".join(r.item_id for r in model.recommend("u3", k=3)))
        assert "tensorflow" not in sys.modules, "tensorflow imported"
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ",".join(r.item_id for r in model.recommend("u3", k=3))


@pytest.mark.tensorflow
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_fits_and_recommends_on_an_online_retail_slice(cls: type[Recommender]) -> None:
    data = online_retail_slice(600)
    model = tiny(cls, epochs=2)
    report = model.fit(data)
    assert len(report.history["loss"]) == 2
    customer = data.user_ids[0]
    recommended = model.recommend(customer, k=10)
    seen = {data.item_ids[j] for j in data.matrix()[0].indices}
    assert len(recommended) == 10
    assert not seen & {r.item_id for r in recommended}
    assert all(np.isfinite(r.score) for r in recommended)


@pytest.mark.tensorflow
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_fits_and_recommends_on_a_movielens_slice(cls: type[Recommender]) -> None:
    data = ml100k_slice(600)
    model = tiny(cls, epochs=2, validation_fraction=0.1)
    report = model.fit(data)
    assert len(report.history["loss"]) == 2
    assert len(report.history["val_loss"]) == 2
    assert report.notes["validation_rows"] > 0
    scores = model.score_users(np.arange(data.n_users))
    assert scores.shape == (data.n_users, data.n_items)
    assert scores.dtype == np.float32
    assert len(model.recommend(data.user_ids[0], k=10)) == 10


def test_item_text_features_are_unit_rows_and_zero_without_text() -> None:
    texts = ("red heart mug", "blue heart mug", "", "red lantern", "white metal lantern")
    features = item_text_features(texts, 8, seed=0)
    assert features.shape == (5, 8)
    norms = np.linalg.norm(features, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3, 4]], 1.0, rtol=1e-5)
    assert norms[2] == 0.0
    # Items sharing words are closer than items sharing none.
    assert features[0] @ features[1] > features[0] @ features[4]


@pytest.mark.tensorflow
def test_two_tower_with_text_features_trains_pickles_and_matches_keras(tmp_path: Path) -> None:
    data = online_retail_slice(600)
    model = TwoTowerRecommender({**TINY[TwoTowerRecommender], "epochs": 1, "text_features": 8})
    assert model.fit(data).notes["text_features"] == 8
    assert model._weights["item_text"][0].shape == (data.n_items, 8)
    model.save(tmp_path / "m.pkl")
    loaded = Recommender.load(tmp_path / "m.pkl")
    assert isinstance(loaded, TwoTowerRecommender)
    users = np.arange(3)
    np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
    pairs = {"user": np.repeat(users, data.n_items), "item": np.tile(np.arange(data.n_items), 3)}
    keras_out = np.asarray(loaded.keras_model()(pairs)).reshape(3, data.n_items)
    np.testing.assert_allclose(keras_out, loaded.score_users(users), atol=1e-4)


@pytest.mark.tensorflow
def test_without_item_text_the_two_tower_trains_on_ids_and_says_so(toy_model: Any) -> None:
    model, _, report = toy_model
    if isinstance(model, TwoTowerRecommender):  # the toy data have no item text
        assert (report.notes["text_features"], report.notes["text_features_off"]) == (0, "no item text")
        assert "item_text" not in model._weights
    else:  # the MLP never uses text
        assert "text_features" not in report.notes


@pytest.mark.tensorflow
def test_the_same_seed_repeats_training_closely(toy: TrainingData) -> None:
    first = tiny(TwoTowerRecommender, epochs=1).fit(toy).history["loss"]
    second = tiny(TwoTowerRecommender, epochs=1).fit(toy).history["loss"]
    # Not bit-exactness: multithreaded CPU kernels may differ in the last bits.
    np.testing.assert_allclose(first, second, rtol=1e-3)
