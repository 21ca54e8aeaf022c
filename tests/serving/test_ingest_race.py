"""A batch whose direct COPY collides with a concurrent writer is redone and still stores each event once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from serving.models import Event
from serving.services.events import IngestResult, ingest

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _event(event_id: str) -> dict[str, object]:
    return {"event_id": event_id, "type": "click", "user_id": "u1", "timestamp": "2026-11-27T11:59:00+00:00"}


@pytest.mark.django_db(transaction=True)
def test_a_batch_colliding_with_an_uncommitted_writer_stores_only_its_new_events() -> None:
    other = connections.create_connection("default")  # a second session, as another worker's
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:  # holds e1 uncommitted: the batch's lookup cannot see it yet
            cursor.execute(
                f"INSERT INTO {Event._meta.db_table} (event_id, type, user_id, item_id, timestamp, received_at) "
                "VALUES ('e1', 'click', 'u0', '', %s, %s)",
                [NOW, NOW],
            )
        results: list[IngestResult] = []

        def send() -> None:
            try:
                results.append(ingest([_event("e1"), _event("e2")], now=NOW))
            finally:
                connection.close()

        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(0.5)  # the batch's COPY now waits on e1's unique-index entry
        other.commit()
        thread.join(timeout=30)
    finally:
        other.close()

    assert [(r.stored, r.duplicates) for r in results] == [(1, 1)]
    assert dict(Event.objects.values_list("event_id", "user_id")) == {"e1": "u0", "e2": "u1"}
