"""Event ingestion: per-event errors, idempotency by event_id (also under concurrent batches)."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from serving.limits import MAX_BATCH
from serving.models import Event
from serving.services.events import BatchError, csv_rows, ingest
from tests.experiments.factories import draft_experiment, product_manager, trained_variants

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _event(n: int, **fields: object) -> dict[str, object]:
    return {"event_id": f"e{n}", "type": "click", "user_id": f"u{n % 7}", "item_id": "85123A",
            "timestamp": "2026-11-27T11:59:00+00:00", **fields}  # fmt: skip


@pytest.mark.django_db
def test_valid_events_are_stored_and_invalid_ones_reported_by_index() -> None:
    batch = [
        _event(1),
        _event(2, type="like"),
        _event(3, revenue=-5),
        _event(4, timestamp=(NOW + timedelta(hours=1)).isoformat()),
        _event(5, experiment="no-such-experiment"),
        _event(6, request_id="not-a-uuid"),
        _event(7, type="purchase", revenue="19.99"),
        {"type": "click"},
    ]
    result = ingest(batch, now=NOW)

    assert (result.received, result.stored, result.duplicates) == (8, 2, 0)
    assert [(e["index"], e["error"]) for e in result.errors] == [
        (1, "type must be one of add_to_cart, click, impression, purchase, got 'like'"),
        (2, "revenue must be a non-negative amount, got -5"),
        (3, "timestamp 2026-11-27T13:00:00+00:00 is in the future (more than 0:05:00 ahead of the server)"),
        (4, "unknown experiment 'no-such-experiment'"),
        (5, "request_id 'not-a-uuid' is not a UUID"),
        (7, "event_id is required"),
    ]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e1", "e7"]
    assert str(Event.objects.get(event_id="e7").revenue) == "19.99"


@pytest.mark.django_db
def test_a_repeated_event_is_accepted_but_stored_once() -> None:
    first = ingest([_event(1), _event(2), _event(2)], now=NOW)
    again = ingest([_event(1), _event(3)], now=NOW)
    assert (first.stored, first.duplicates) == (2, 1)
    assert (again.stored, again.duplicates) == (1, 1)
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_stored_ids_are_skipped_whether_the_probe_sees_them_or_not() -> None:
    ingest([_event(i) for i in range(1, 6)], now=NOW)  # e1 .. e5

    resent = ingest([_event(i) for i in range(1, 8)], now=NOW)  # e1 is probed: every id is looked up
    # e3 is neither first, middle (e12) nor last: the straight COPY fails and the batch is redone
    slipped = ingest([_event(10), _event(3), _event(11), _event(12), _event(13), _event(14)], now=NOW)

    assert (resent.stored, resent.duplicates) == (2, 5)
    assert (slipped.stored, slipped.duplicates) == (5, 1)
    assert sorted(Event.objects.values_list("event_id", flat=True)) == [
        "e1", "e10", "e11", "e12", "e13", "e14", "e2", "e3", "e4", "e5", "e6", "e7"
    ]  # fmt: skip


@pytest.mark.django_db
def test_oversized_batches_and_non_lists_are_refused_whole() -> None:
    with pytest.raises(BatchError, match="at most 10,000 events") as error:
        ingest([_event(i) for i in range(MAX_BATCH + 1)], now=NOW)
    assert error.value.status == 413
    with pytest.raises(BatchError, match="must be a JSON list"):
        ingest({"event_id": "x"}, now=NOW)
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_events_of_exposed_users_are_attributed_to_their_arm(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from experiments.services.lifecycle import transition
    from serving.models import Exposure

    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    trained_variants(tmp_path)
    pm = product_manager()
    experiment = transition(draft_experiment(pm), "start", pm)
    knn = experiment.arms.get(name="knn")
    Exposure.objects.create(experiment=experiment, arm=knn, user_id="u1", bucket=5, first_exposed_at=NOW)

    ingest([_event(1, experiment="recs-ab", user_id="u1"), _event(2, experiment="recs-ab", user_id="u9")], now=NOW)
    assert dict(Event.objects.values_list("event_id", "arm_id")) == {"e1": knn.pk, "e2": None}


@pytest.mark.django_db
def test_an_event_with_only_its_request_id_counts_for_the_requests_experiment_and_arm(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from analysis.models import ArmRollup
    from analysis.services.rollups import fold
    from experiments.services.lifecycle import transition
    from serving.services.serve import serve

    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    trained_variants(tmp_path)
    pm = product_manager()
    experiment = transition(draft_experiment(pm), "start", pm)
    answer = serve(experiment, "u1", 5)
    click = {"event_id": "c1", "type": "click", "user_id": "u1", "item_id": answer["items"][0]["item_id"],
             "request_id": answer["request_id"], "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
    result = ingest([click])
    assert (result.stored, result.errors) == (1, [])
    arm = experiment.arms.get(name=answer["arm"])
    assert Event.objects.filter(event_id="c1").values_list("experiment_id", "arm_id").get() == (experiment.pk, arm.pk)
    fold(experiment.pk, lag=timedelta(0))
    assert ArmRollup.objects.get(experiment=experiment, arm=arm).clicks == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_batches_store_each_event_once() -> None:
    batch = [_event(i) for i in range(2000)]
    results = []

    def send() -> None:
        try:
            results.append(ingest(batch, now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.stored for r in results) == 2000
    assert sum(r.duplicates for r in results) == 3 * 2000
    assert Event.objects.count() == 2000


def test_copy_text_is_what_csv_writer_writes_for_plain_and_quoted_rows() -> None:
    later = NOW + timedelta(seconds=1)
    request = uuid.UUID("12345678-1234-5678-1234-567812345678")
    rows = [
        ("e1", "click", "u1", "85123A", None, 3, 4, None, None, None, NOW, later),
        ("imp:1", "impression", "u2", "", request, 3, 4, 2, 0.25, None, NOW, NOW),
        ("a,b", "purchase", 'u"3', "i", None, None, None, None, None, Decimal("1.50"), later, later),
        ("e4", "click", "u\n4", "x\ry", None, 7, None, 1, 1e-07, Decimal("1E+3"), NOW, later),
        ("e5", "click", "u5", "i", None, None, None, None, None, None, NOW, NOW, 9),
        ("e,6", "click", "u6", "i", None, None, None, None, None, None, NOW, NOW, None),
    ]
    expected = io.StringIO()
    for row in rows:
        csv.writer(expected).writerow((*row[:10], row[10].isoformat(), row[11].isoformat(), *row[12:]))

    text = csv_rows(rows).getvalue()

    assert text == expected.getvalue()
    assert text.splitlines()[0] == "e1,click,u1,85123A,,3,4,,,,2026-11-27T12:00:00+00:00,2026-11-27T12:00:01+00:00"
