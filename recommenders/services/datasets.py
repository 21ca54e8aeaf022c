"""Writing a parsed data set into the database, all or nothing.

PostgreSQL gets the rows through `COPY ... FROM STDIN` (the fastest path it has); other
databases through `bulk_create`. Everything happens in one transaction, so a failure at
any point leaves no trace of the import, and a replaced data set stays until its
replacement is complete.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from recommenders.importers.parsed import ParsedDataset
from recommenders.models import Dataset, Interaction, Item, UserAttribute

WriteProgress = Callable[[int, int], None]
"""Called with (rows written, rows to write)."""

BATCH = 50_000


class DatasetExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"A data set named {name!r} exists already; pass --replace to replace it.")
        self.name = name


def check_name_free(name: str, *, replace: bool) -> None:
    """Refuse early (before a long parse) when `name` is taken and `replace` is off."""
    if not replace and Dataset.objects.filter(name=name).exists():
        raise DatasetExists(name)


@transaction.atomic
def save_dataset(
    parsed: ParsedDataset,
    name: str,
    *,
    replace: bool = False,
    progress: WriteProgress | None = None,
    holdout_fraction: float | None = None,
) -> Dataset:
    """Store `parsed` as the data set `name`; with `replace`, an existing one of that name goes.

    `holdout_fraction` f in (0, 1) holds out the last f of the time span:
    holdout_from = t_min + (1 - f) * (t_max - t_min), as the temporal split cuts it.
    """
    existing = Dataset.objects.select_for_update().filter(name=name).first()
    if existing is not None:
        if not replace:
            raise DatasetExists(name)
        _delete_dataset_rows(existing)
    interactions = parsed.interactions
    timestamps = interactions.timestamp
    dataset = Dataset.objects.create(
        name=name,
        source_format=parsed.source_format,
        source_path=parsed.source_path[:500],
        item_count=len(parsed.items),
        user_count=len(set(interactions.user_id)),
        interaction_count=len(interactions),
        first_timestamp=min(timestamps) if timestamps else None,
        last_timestamp=max(timestamps) if timestamps else None,
        holdout_from=holdout_start(min(timestamps), max(timestamps), holdout_fraction)
        if timestamps and holdout_fraction
        else None,
        import_report=parsed.report,
    )
    total = len(parsed.items) + len(interactions)
    report = progress or (lambda done, total: None)
    _copy_items(dataset, parsed)
    report(len(parsed.items), total)
    item_pk = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "id"))
    _copy_interactions(dataset, parsed, item_pk, lambda done: report(len(parsed.items) + done, total))
    _copy_user_attributes(dataset, parsed)
    return dataset


def holdout_start(first: datetime, last: datetime, fraction: float) -> datetime:
    """The time from which the last `fraction` of [first, last] is held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must lie strictly between 0 and 1, got {fraction}")
    return first + (last - first) * (1 - fraction)


def delete_dataset(name: str) -> bool:
    """Delete the data set `name` with its items and interactions; False when there was none."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(name=name).first()
        if dataset is None:
            return False
        _delete_dataset_rows(dataset)
        return True


def _delete_dataset_rows(dataset: Dataset) -> None:
    # Delete interactions first in one statement: letting the cascade collect them through
    # items would load hundreds of thousands of rows into memory.
    Interaction.objects.filter(dataset=dataset).delete()
    UserAttribute.objects.filter(dataset=dataset).delete()
    Item.objects.filter(dataset=dataset).delete()
    dataset.delete()


def _copy_items(dataset: Dataset, parsed: ParsedDataset) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for item in parsed.items:
        price = "" if item.price is None else f"{item.price:.3f}"
        writer.writerow(
            (
                dataset.pk,
                item.external_id,
                item.title,
                item.description,
                item.category,
                price,
                json.dumps(item.attributes),
            )
        )
    _copy(
        buffer,
        Item._meta.db_table,
        ("dataset_id", "external_id", "title", "description", "category", "price", "attributes"),
        not_null=("external_id", "title", "description", "category"),
    )


INTERACTION_COLUMNS = ("dataset_id", "user_id", "item_id", "event_type", "value", "timestamp", "session_id")


def _interaction_rows(
    dataset: Dataset, parsed: ParsedDataset, item_pk: dict[str, int], start: int, stop: int,
    format_time: Callable[[datetime], Any],
) -> Iterator[tuple[Any, ...]]:  # fmt: skip
    """Rows start..stop as tuples in INTERACTION_COLUMNS order."""
    rows = parsed.interactions
    times: dict[datetime, Any] = {}  # many rows share a timestamp (an invoice's lines): format each once
    for i in range(start, stop):
        when = rows.timestamp[i]
        formatted = times.get(when)
        if formatted is None:
            formatted = times[when] = format_time(when)
        yield (dataset.pk, rows.user_id[i], item_pk[rows.item_id[i]], rows.event_type[i], rows.value[i],
               formatted, rows.session_id[i])  # fmt: skip


def _copy_interactions(
    dataset: Dataset, parsed: ParsedDataset, item_pk: dict[str, int], progress: Callable[[int], None]
) -> None:
    total = len(parsed.interactions)
    for start in range(0, total, BATCH):
        stop = min(start + BATCH, total)
        buffer = io.StringIO()
        csv.writer(buffer).writerows(_interaction_rows(dataset, parsed, item_pk, start, stop, datetime.isoformat))
        _copy(buffer, Interaction._meta.db_table, INTERACTION_COLUMNS, not_null=("user_id", "session_id"))
        progress(stop)


def _copy_user_attributes(dataset: Dataset, parsed: ParsedDataset) -> None:
    """The users' attributes ({name: {user id: value}}), one row per user and name."""
    if not any(parsed.user_attributes.values()):
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for name, values in parsed.user_attributes.items():
        writer.writerows((dataset.pk, user_id, name, value) for user_id, value in values.items())
    _copy(buffer, UserAttribute._meta.db_table, ("dataset_id", "user_id", "name", "value"),
          not_null=("user_id", "name", "value"))  # fmt: skip


def _copy(buffer: io.StringIO, table: str, columns: Iterable[str], not_null: Iterable[str]) -> None:
    """COPY CSV rows into `table`; an empty field is NULL except in the `not_null` (text) columns."""
    buffer.seek(0)
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({', '.join(not_null)}))"
    with connection.cursor() as cursor:
        raw: Any = cursor.cursor  # psycopg2's cursor: Django's wrapper does not expose copy_expert's types
        raw.copy_expert(sql, buffer)


def refresh_dataset_counts(dataset_id: int) -> dict[str, int]:
    """Recount users, items and interactions from the rows and store them; returns the counts.

    Counts are derived, never incremented, so running this twice (a retried task) is harmless.
    """
    interactions = Interaction.objects.filter(dataset_id=dataset_id)
    counts = {
        "users": interactions.values("user_id").distinct().count(),
        "items": Item.objects.filter(dataset_id=dataset_id).count(),
        "interactions": interactions.count(),
    }
    Dataset.objects.filter(pk=dataset_id).update(
        user_count=counts["users"], item_count=counts["items"], interaction_count=counts["interactions"]
    )
    return counts
