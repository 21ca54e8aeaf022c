"""Training and evaluation runs: claimed once, progress to 100, artifacts with checksums, failures recorded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommenders import serving
from recommenders.artifacts import ArtifactError, load_model, sha256_of
from recommenders.models import Evaluation, TrainingRun, Variant
from recommenders.services.training import fingerprint, load_training_data, run_evaluation, run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_evaluation, queue_training
from tests.recommenders.factories import retail_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(tmp_path: Path):  # type: ignore[no-untyped-def]
    return retail_sample(tmp_path, rows=3000)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serving.clear_cache()


def test_training_data_matches_the_data_set(dataset) -> None:  # type: ignore[no-untyped-def]
    data = load_training_data(dataset)
    assert (data.n_users, data.n_items, len(data.user_index)) == (
        dataset.user_count,
        dataset.item_count,
        dataset.interaction_count,
    )
    assert "WHITE HANGING HEART T-LIGHT HOLDER" in data.item_text[data.item_ids.index("85123A")]
    assert fingerprint(data) == fingerprint(load_training_data(dataset))


def test_a_training_run_succeeds_once_and_records_its_artifact(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("ease", "ease", dataset.name, {"l2": 50.0}))
    run = queue_training(variant, send=False)

    run_training(run.pk)
    run_training(run.pk)  # a redelivered message: nothing happens twice

    run.refresh_from_db()
    variant.refresh_from_db()
    assert (run.status, run.progress, run.message, variant.status) == ("succeeded", 100, "trained", "trained")
    assert run.artifact_sha256 == sha256_of(Path(run.artifact_path))
    assert len(run.data_fingerprint) == 64
    assert TrainingRun.objects.count() == 1
    assert list(Path(run.artifact_path).parent.glob("*.part")) == []  # no temporary file left behind

    first = serving.recommend(variant, "17850", k=5)
    assert len(first) == 5
    assert serving.model_for(variant) is serving.model_for(variant)  # loaded once per process
    assert [r.item_id for r in serving.recommend("ease@1", "no-such-user", k=3)] == [
        r.item_id for r in serving.model_for(variant).recommend("no-such-user", 3)
    ]


def test_a_session_weighted_ease_variant_trains_on_the_stored_invoice_times(dataset) -> None:  # type: ignore[no-untyped-def]
    from recommenders.algorithms.ease import EaseRecommender

    params = {"l2": 50.0, "session_seconds": 3600.0}
    variant = register_variant(VariantSpec("ease-session", "ease", dataset.name, params))
    run = queue_training(variant, send=False)

    run_training(run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded"
    direct = EaseRecommender(params)
    direct.fit(load_training_data(dataset))
    plain = EaseRecommender({"l2": 50.0})
    plain.fit(load_training_data(dataset))
    served = serving.recommend(variant, "17850", k=10)
    assert served == direct.recommend("17850", k=10)
    assert [r.score for r in served] != [r.score for r in plain.recommend("17850", k=10)]  # the times changed it


def test_remembered_top_lists_equal_fresh_scoring_and_skip_queries(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("knn", "item_knn", dataset.name, {}))
    run = queue_training(variant, send=False)
    run_training(run.pk)
    run.refresh_from_db()
    model = serving.model_for_run(run)
    users = ["17850", "13047", "no-such-user"]

    first = {(user, k): serving.recommend_from_run(run, user, k) for user in users for k in (3, 10)}
    again = {(user, k): serving.recommend_from_run(run, user, k) for user in users for k in (3, 10)}

    fresh = {(user, k): model.recommend(user, k) for user in users for k in (3, 10)}
    assert first == again == fresh
    assert len(serving._top_lists) == 6  # one per (model, user, k), none for queries below
    assert serving.recommend_from_run(run, "17850", 5, "heart") == model.recommend("17850", 5, "heart")
    assert len(serving._top_lists) == 6
    serving.clear_cache()
    assert len(serving._top_lists) == 0


def test_a_changed_artifact_is_refused(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    run = queue_training(variant, send=False)
    run_training(run.pk)
    run.refresh_from_db()
    with open(run.artifact_path, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match="expected"):
        load_model(run.artifact_path, run.artifact_sha256)


def test_a_failing_run_records_the_error_and_its_traceback(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    dataset.interactions.all().delete()
    run = queue_training(variant, send=False)

    run_training(run.pk)

    run.refresh_from_db()
    variant.refresh_from_db()
    assert run.status == "failed"
    assert "has no interactions to train on" in run.error
    assert "Traceback (most recent call last)" in run.traceback
    assert variant.status == Variant.Status.FAILED


def test_evaluation_stores_comparable_metrics(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    evaluation = queue_evaluation(variant, k=5, send=False)
    run_evaluation(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded"
    assert evaluation.metrics["k"] == 5
    assert set(evaluation.metrics) >= {
        "precision",
        "recall",
        "ndcg",
        "map",
        "mrr",
        "hit_rate",
        "coverage",
        "novelty",
        "diversity",
        "gini",
    }
    assert 0 <= evaluation.metrics["precision"] <= 1


def test_train_and_evaluate_commands_inline_print_results(dataset) -> None:  # type: ignore[no-untyped-def]
    register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    out = io.StringIO()
    call_command("train", "pop", "--inline", stdout=out)
    assert "Trained pop@1 in" in out.getvalue()
    call_command("evaluate", "pop@1", "--inline", "--split", "leave_last_out", stdout=out)
    assert "ndcg" in out.getvalue()
    assert Evaluation.objects.get().split == "leave_last_out"
    with pytest.raises(CommandError, match="no variant 'ghost'"):
        call_command("train", "ghost", "--inline")
    with pytest.raises(CommandError, match=r"ratio 1\.5 must lie strictly between 0 and 1"):
        call_command("evaluate", "pop", "--inline", "--ratio", "1.5")


def test_held_out_interactions_are_never_trained_on(tmp_path: Path) -> None:
    from recommenders.importers.online_retail import parse_online_retail
    from recommenders.services.datasets import save_dataset

    retail_sample(tmp_path, rows=3000, name="source")  # writes the sample file
    parsed = parse_online_retail(tmp_path / "online_retail_sample.csv")
    dataset = save_dataset(parsed, "with-holdout", holdout_fraction=0.25)
    first, last = min(parsed.interactions.timestamp), max(parsed.interactions.timestamp)
    assert dataset.holdout_from == first + (last - first) * 0.75

    training = load_training_data(dataset)
    everything = load_training_data(dataset, include_holdout=True)
    later = sum(1 for when in parsed.interactions.timestamp if when >= dataset.holdout_from)
    assert len(everything.user_index) == dataset.interaction_count
    assert len(training.user_index) == dataset.interaction_count - later > 0
    assert training.timestamp.max() < dataset.holdout_from.timestamp()
