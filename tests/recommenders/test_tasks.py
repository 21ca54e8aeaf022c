"""Dataset tasks: the body directly, and one round trip through a real worker process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from abplatform.celery import app
from recommenders.models import Dataset, Interaction, Item
from recommenders.tasks import refresh_dataset_counts_task
from tests.celery_worker import worker_process


def _small_dataset() -> Dataset:
    dataset = Dataset.objects.create(name="tiny", source_format="csv", user_count=99)
    mug, tea = Item.objects.bulk_create(
        [Item(dataset=dataset, external_id="mug"), Item(dataset=dataset, external_id="tea")]
    )
    when = datetime(2011, 1, 1, tzinfo=UTC)
    Interaction.objects.bulk_create(
        Interaction(dataset=dataset, user_id=user, item=item, event_type="purchase", timestamp=when)
        for user, item in (("ann", mug), ("ann", tea), ("bob", tea))
    )
    return dataset


@pytest.mark.django_db
def test_refresh_counts_recounts_from_the_rows() -> None:
    dataset = _small_dataset()
    assert refresh_dataset_counts_task(dataset.pk) == {"users": 2, "items": 2, "interactions": 3}
    dataset.refresh_from_db()
    assert (dataset.user_count, dataset.item_count, dataset.interaction_count) == (2, 2, 3)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_task_round_trip_through_a_real_worker_process() -> None:
    assert app.conf.task_always_eager is False
    dataset = _small_dataset()
    with worker_process() as queue:
        result = refresh_dataset_counts_task.apply_async((dataset.pk,), queue=queue)
        assert result.get(timeout=60) == {"users": 2, "items": 2, "interactions": 3}
    assert result.status == "SUCCESS"
    dataset.refresh_from_db()
    assert dataset.user_count == 2
