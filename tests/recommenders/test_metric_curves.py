"""Metric@k curves: at every k they equal what the evaluator measures at that k."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommenders import serving
from recommenders.algorithms.ease import EaseRecommender
from recommenders.evaluation import splits
from recommenders.evaluation.evaluator import evaluate
from recommenders.models import Evaluation
from recommenders.services.metric_curves import metric_curves
from recommenders.services.training import run_evaluation
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_evaluation
from tests.recommenders.factories import retail_sample


def test_curves_agree_with_the_evaluator_at_every_k() -> None:
    data = _small_data()
    train, test = splits.stratified_split(data, 0.7, 1)
    model = EaseRecommender({"l2": 10.0})
    model.fit(train)

    curves = metric_curves(model, train, test, depth=8)

    assert curves is not None
    assert [len(values) for values in curves.values()] == [8, 8, 8]
    for k in (1, 3, 8):
        expected = evaluate(model, train, test, k)
        assert curves["precision"][k - 1] == pytest.approx(expected.precision)
        assert curves["recall"][k - 1] == pytest.approx(expected.recall)
        assert curves["ndcg"][k - 1] == pytest.approx(expected.ndcg)


@pytest.mark.django_db
def test_an_evaluation_stores_curves_up_to_50(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serving.clear_cache()
    dataset = retail_sample(tmp_path, rows=3000)
    variant = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    evaluation = queue_evaluation(variant, k=10, send=False)

    run_evaluation(evaluation.pk)

    evaluation = Evaluation.objects.get(pk=evaluation.pk)
    at_k = evaluation.metrics["at_k"]
    assert sorted(at_k) == ["ndcg", "precision", "recall"]
    assert [len(values) for values in at_k.values()] == [50, 50, 50]
    assert at_k["ndcg"][9] == pytest.approx(evaluation.metrics["ndcg"])
    assert at_k["precision"][9] == pytest.approx(evaluation.metrics["precision"])
    assert at_k["recall"][9] == pytest.approx(evaluation.metrics["recall"])
    assert at_k["recall"] == sorted(at_k["recall"])  # recall never falls as the list grows


def _small_data():  # type: ignore[no-untyped-def]
    from recommenders.algorithms.base import TrainingData

    users, items = [], []
    for u in range(30):
        for j in range(12):
            if (u * 7 + j * 3) % 5 < 3:
                users.append(f"u{u}")
                items.append(f"i{(u + j) % 15}")
    return TrainingData.from_records(users, items, item_ids=[f"i{j}" for j in range(15)])
