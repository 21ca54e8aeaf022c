"""Event ingestion: validate a batch event by event, store the valid ones once each.

`event_id` is the client's idempotency key. A repeated event (in the same batch, an earlier
one, or a concurrent one) is accepted and counted as a duplicate, never stored twice: the
unique index on event_id decides, through INSERT ... ON CONFLICT DO NOTHING, so two
batches racing with the same events cannot both store them.

Each event is attributed to an arm when it can be: through its request_id (the served
request's arm) or else through the user's exposure in the named experiment.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import IO, Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import metrics
from experiments.models import Experiment
from serving.limits import FUTURE_TOLERANCE, MAX_BATCH, MAX_ID_LENGTH, MAX_POSITION, MAX_REVENUE, MAX_UTC_OFFSET
from serving.models import ApiToken, Event, Exposure, ServedRequest


def impression_event_id(request_id: object, position: int) -> str:
    """The event id of the impression a served answer logs at `position` (1-based): "imp:<request id>:<position>".
    Serving writes it, so a shop's copy is a duplicate; the interleaving fold probes it to credit clicks."""
    return f"imp:{request_id}:{position}"


EVENT_TYPES = frozenset(Event.Type.values)
_ALLOWED_KEYS = frozenset(
    {"event_id", "type", "user_id", "item_id", "request_id", "experiment", "revenue", "timestamp", "position"}
)


class EventRow(NamedTuple):
    """One row of the events table, as ingestion and the serving log write it (COPY or INSERT)."""

    event_id: str
    type: str
    user_id: str
    item_id: str
    request_id: uuid.UUID | None
    experiment_id: int | None
    arm_id: int | None
    position: int | None
    propensity: float | None
    revenue: Decimal | None
    timestamp: datetime
    received_at: datetime


COLUMNS: tuple[str, ...] = EventRow._fields


class BatchError(Exception):
    """The whole batch is refused (not a list, too many events); `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IngestResult:
    received: int
    stored: int
    duplicates: int
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Row:
    event_id: str
    type: str
    user_id: str
    item_id: str
    request_id: uuid.UUID | None
    experiment_key: str | None
    position: int | None
    propensity: float | None
    revenue: Decimal | None
    timestamp: datetime


def ingest(events: Any, *, now: datetime | None = None, token: ApiToken | None = None) -> IngestResult:
    """Validate and store a batch; invalid events are reported by index and reason, the rest stored.

    With a token bound to experiments, an event naming another experiment is refused, and an event
    with only a request id counts for its request's experiment only when the token may write there.
    """
    if not isinstance(events, list):
        metrics.EVENTS_REFUSED.inc("batch")
        raise BatchError('the body must be a JSON list of events, or {"events": [...]}')
    if len(events) > MAX_BATCH:
        metrics.EVENTS_REFUSED.inc("batch", amount=len(events))
        raise BatchError(f"a batch holds at most {MAX_BATCH:,} events; this one has {len(events):,}", status=413)
    now = now or timezone.now()
    rows: list[_Row] = []
    errors: list[dict[str, Any]] = []
    times: dict[str, datetime] = {}  # batches repeat timestamps; parsing and checking one costs ~1 us
    for index, raw in enumerate(events):
        try:
            rows.append(_parse(raw, now, times))
        except ValueError as error:
            errors.append({"index": index, "event_id": raw.get("event_id") if isinstance(raw, dict) else None,
                           "error": str(error)})  # fmt: skip
    refused = Counter({"invalid": len(errors)})
    experiments, drafts = _experiments({row.experiment_key for row in rows if row.experiment_key})
    kept: list[_Row] = []
    for index, row in zip(_valid_indices(len(events), errors), rows, strict=True):
        if token is not None and row.experiment_key and not token.allows(row.experiment_key):
            errors.append({"index": index, "event_id": row.event_id, "error": token.bound_message(row.experiment_key)})
        elif row.experiment_key in drafts:
            errors.append({"index": index, "event_id": row.event_id,
                           "error": f"experiment {row.experiment_key!r} is a draft: it accepts no traffic until it "
                           "is started"})  # fmt: skip
            refused["draft_experiment"] += 1
        elif row.experiment_key and row.experiment_key not in experiments:
            errors.append(
                {"index": index, "event_id": row.event_id, "error": f"unknown experiment {row.experiment_key!r}"}
            )
            refused["unknown_experiment"] += 1
        else:
            kept.append(row)
    errors.sort(key=lambda e: e["index"])
    allowed = None if token is None or not token.experiments else set(token.experiments)
    stored = store(kept, experiments, received_at=now, allowed=allowed)
    _count(kept, stored, refused)
    return IngestResult(received=len(events), stored=stored, duplicates=len(kept) - stored, errors=errors)


_EXPERIMENT_KEY = attrgetter("experiment_key")


def _count(kept: Sequence[_Row], stored: int, refused: Counter[str]) -> None:
    """Add a batch to the ingestion metrics (core.metrics), in process memory: about 30 ns an event (a batch
    names an experiment or two; list.count runs in C)."""
    keys = list(map(_EXPERIMENT_KEY, kept))
    named = set(keys)
    counts = Counter(keys) if len(named) > 4 else {key: keys.count(key) for key in named}
    for key, count in counts.items():
        metrics.EVENTS_INGESTED.inc(key or "", amount=count)
    if len(kept) > stored:
        metrics.EVENTS_DUPLICATE.inc(amount=len(kept) - stored)
    for reason, count in refused.items():
        if count:
            metrics.EVENTS_REFUSED.inc(reason, amount=count)


def store(
    rows: Sequence[_Row], experiments: Mapping[str, int], *, received_at: datetime, allowed: set[str] | None = None
) -> int:
    """Insert the rows, skipping event_ids already stored; returns how many were new.

    `allowed`: the experiment keys a bound token may write for (None: all); an event with only a
    request id is counted for the request's experiment only when it is one of them.
    """
    if not rows:
        return 0
    served = _served_requests({r.request_id for r in rows if r.request_id}, allowed)
    wanted = {(experiments[r.experiment_key], r.user_id) for r in rows if r.experiment_key and not r.request_id}
    arm_of_user: dict[tuple[int, str], int] = {}
    if wanted:
        # Raw SQL with array parameters: the ORM's IN (...) costs ~10 us per value to build.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT experiment_id, user_id, arm_id FROM {Exposure._meta.db_table} "
                "WHERE experiment_id = ANY(%s) AND user_id = ANY(%s)",
                [list({e for e, _ in wanted}), list({u for _, u in wanted})],
            )
            for experiment_id, user_id, arm_id in cursor.fetchall():
                arm_of_user[(experiment_id, user_id)] = arm_id
    values = []
    for r in rows:
        experiment_id = experiments.get(r.experiment_key) if r.experiment_key else None
        arm_id = None
        if r.request_id in served:
            # The request names its experiment and arm: an event sent with only the request id is counted too.
            request_experiment, request_arm = served[r.request_id]
            if experiment_id is None or experiment_id == request_experiment:  # never another experiment's arm
                experiment_id, arm_id = request_experiment, request_arm
        if arm_id is None and experiment_id is not None:
            arm_id = arm_of_user.get((experiment_id, r.user_id))
        values.append(EventRow(r.event_id, r.type, r.user_id, r.item_id, r.request_id, experiment_id, arm_id,
                               r.position, r.propensity, r.revenue, r.timestamp, received_at))  # fmt: skip
    return _copy_new_events(values)


def _copy_new_events(values: Sequence[tuple[Any, ...]]) -> int:
    """Store the rows whose event_id is new; returns how many were stored.

    The first occurrence of each id is COPYed straight into the table: about a third less
    database work than COPY into staging + INSERT ... ON CONFLICT. Looking up every id first
    costs about as much as the COPY's own unique-index checks, so only three ids (first,
    middle, last) are probed: a batch sent again by a client (retrying after a timeout) is
    caught there, and then every id is looked up and only the new rows are copied. Should a
    stored id slip past the probe (an overlap elsewhere in the batch, or a concurrent batch
    with the same ids, whose commit the COPY waits for), the COPY fails on the unique index,
    is rolled back, and the rows are stored through `insert_events`, whose ON CONFLICT skips
    the stored ones: each id is still stored once and counted as a duplicate.
    """
    table = Event._meta.db_table
    seen: set[str] = set()
    fresh = []
    for row in values:
        if row[0] not in seen:
            seen.add(row[0])
            fresh.append(row)
    probe = list({fresh[0][0], fresh[len(fresh) // 2][0], fresh[-1][0]})
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE event_id = ANY(%s) LIMIT 1", [probe])
        if cursor.fetchone() is not None:
            cursor.execute(f"SELECT event_id FROM {table} WHERE event_id = ANY(%s)", [[row[0] for row in fresh]])
            stored = {event_id for (event_id,) in cursor.fetchall()}
            fresh = [row for row in fresh if row[0] not in stored]
    if not fresh:
        return 0
    try:
        copy_events(csv_rows(fresh), known_new=True)
    except IntegrityError:
        return insert_events(fresh)
    return len(fresh)


def _served_requests(request_ids: set[uuid.UUID], allowed: set[str] | None) -> dict[uuid.UUID, tuple[int, int]]:
    """(experiment id, arm id) of each served request (requests not found, or of experiments not in
    `allowed` when given, are left out)."""
    if not request_ids:
        return {}
    # One array parameter: the ORM's IN (...) costs ~10 us per value to build, 10 ms for a batch of clicks.
    sql = f"SELECT r.request_id, r.experiment_id, r.arm_id FROM {ServedRequest._meta.db_table} r"
    params: list[Any] = [[str(request_id) for request_id in request_ids]]
    if allowed is not None:  # a token bound to experiments: only theirs
        sql += f" JOIN {Experiment._meta.db_table} x ON x.id = r.experiment_id"
        params.append(sorted(allowed))
    sql += " WHERE r.request_id = ANY(%s::uuid[])" + (" AND x.key = ANY(%s)" if allowed is not None else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {uuid.UUID(str(request_id)): (experiment_id, arm_id) for request_id, experiment_id, arm_id in cursor}


def insert_events(values: Sequence[tuple[Any, ...]], *, simulation_id: int | None = None) -> int:
    """Store rows (in COLUMNS order) whose event_id is new; returns the number of rows inserted.

    As CSV through `copy_events`.
    """
    if not values:
        return 0
    columns_used: tuple[str, ...] = COLUMNS
    if simulation_id is not None:  # simulated traffic: every row points to its run
        columns_used = (*COLUMNS, "simulation_id")
        values = [(*row, simulation_id) for row in values]
    return copy_events(csv_rows(values), columns_used)


def copy_events(buffer: IO[str], columns: Sequence[str] = COLUMNS, *, known_new: bool = False) -> int:
    """Store CSV rows (in `columns` order, a subset of COLUMNS + simulation_id) whose
    event_id is new; returns the number inserted.

    COPY the rows into a per-connection temporary staging table, then one INSERT ... SELECT ...
    ON CONFLICT (event_id) DO NOTHING moves the new ones over (COPY parses rows several times
    faster than a multi-row INSERT). Callers that build CSV text themselves (the simulator, in
    bulk with numpy) skip the per-row tuples of `insert_events`.

    `known_new`: the caller guarantees no event_id is stored yet (ids derived from a key only it
    uses, checked beforehand), so the rows are copied straight into the table, without the
    staging table and the conflict check (about twice as fast); a duplicate then raises
    IntegrityError rather than being skipped.
    """
    table = Event._meta.db_table
    names = ", ".join(columns)
    options = "FORMAT csv, FORCE_NOT_NULL (event_id, type, user_id, item_id)"
    if known_new:
        with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
            cursor.cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH ({options})", buffer)  # type: ignore[attr-defined]
            return int(cursor.cursor.rowcount)  # type: ignore[attr-defined]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(  # all the columns either path fills, once per database connection
            "CREATE TEMP TABLE IF NOT EXISTS event_staging ON COMMIT DELETE ROWS "
            f"AS SELECT {', '.join(COLUMNS)}, simulation_id FROM {table} WITH NO DATA"
        )
        cursor.cursor.copy_expert(f"COPY event_staging ({names}) FROM STDIN WITH ({options})", buffer)  # type: ignore[attr-defined]
        cursor.execute(
            f"WITH stored AS (INSERT INTO {table} ({names}) SELECT {names} FROM event_staging "
            "ON CONFLICT (event_id) DO NOTHING RETURNING 1) SELECT count(*) FROM stored"
        )
        return int(cursor.fetchone()[0])


_CSV_SPECIAL = re.compile(r'[,"\r\n]')  # the characters that make csv.writer quote a field


def csv_rows(values: Sequence[tuple[Any, ...]]) -> io.StringIO:
    """Rows in COLUMNS order (+ simulation_id) as CSV for COPY; None is an empty field, that is NULL.

    The text is exactly what `csv.writer` writes (QUOTE_MINIMAL, CRLF line ends): a row whose
    four text columns hold none of `,` `"` CR LF (the usual case) is formatted directly, about
    three times faster than `writerow`; any other row goes through `writerow`.
    """
    buffer = io.StringIO()
    write, write_row = buffer.write, csv.writer(buffer).writerow
    special = _CSV_SPECIAL.search
    times: dict[datetime, str] = {}  # str(datetime) is slow and batches repeat timestamps
    for row in values:
        event_id, kind, user_id, item_id, request_id, experiment_id, arm_id, position, propensity, revenue = row[:10]
        when, received = row[10], row[11]
        stamp = times.get(when) or times.setdefault(when, when.isoformat())
        received_at = times.get(received) or times.setdefault(received, received.isoformat())
        if special(f"{event_id}{kind}{user_id}{item_id}") is not None:
            write_row((*row[:10], stamp, received_at, *row[12:]))
            continue
        write(
            f"{event_id},{kind},{user_id},{item_id},{'' if request_id is None else request_id},"
            f"{'' if experiment_id is None else experiment_id},{'' if arm_id is None else arm_id},"
            f"{'' if position is None else position},{'' if propensity is None else propensity},"
            f"{'' if revenue is None else revenue},{stamp},{received_at}"
        )
        for extra in row[12:]:
            write(f",{'' if extra is None else extra}")
        write("\r\n")
    buffer.seek(0)
    return buffer


def _experiments(keys: set[str]) -> tuple[dict[str, int], set[str]]:
    """The ids of the experiments named `keys` that take traffic, and the keys of those that are drafts."""
    if not keys:
        return {}, set()
    found = Experiment.objects.filter(key__in=keys).values_list("key", "id", "status")
    drafts = {key for key, _, status in found if status == Experiment.Status.DRAFT}
    return {key: pk for key, pk, _ in found if key not in drafts}, drafts


def _valid_indices(total: int, errors: list[dict[str, Any]]) -> list[int]:
    bad = {e["index"] for e in errors}
    return [i for i in range(total) if i not in bad]


def _parse(raw: Any, now: datetime, times: dict[str, datetime]) -> _Row:
    """One event, checked field by field in a fixed order (so the reason given is the first problem).

    Each field has a fast test for its usual form (text of 1 to MAX_ID_LENGTH characters, no value); any other
    form goes through the full check, which decides and words the refusal. `times` remembers the
    timestamps of this batch already accepted (they are checked against the same `now`).
    """
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    if not raw.keys() <= _ALLOWED_KEYS:
        raise ValueError(f"unknown field(s) {', '.join(sorted(raw.keys() - _ALLOWED_KEYS))}")
    get = raw.get
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID_LENGTH or not _storable(event_id):
        event_id = _required_text(raw, "event_id")
    kind = get("type")
    if type(kind) is not str or kind not in EVENT_TYPES:  # a list or object is unhashable: not a set lookup
        raise ValueError(f"type must be one of {', '.join(sorted(EVENT_TYPES))}, got {kind!r}")
    user_id = get("user_id")
    if type(user_id) is not str or not 0 < len(user_id) <= MAX_ID_LENGTH or not _storable(user_id):
        user_id = _required_text(raw, "user_id")
    request_id = None
    if get("request_id") is not None:
        try:
            request_id = uuid.UUID(str(raw["request_id"]))
        except ValueError:
            raise ValueError(f"request_id {raw['request_id']!r} is not a UUID") from None
    position = get("position")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION
    ):
        raise ValueError(f"position must be a whole number from 1 to {MAX_POSITION}, got {position!r}")
    revenue = None if get("revenue") is None else _revenue(raw["revenue"])
    item_id = get("item_id")
    if type(item_id) is not str or not 0 < len(item_id) <= MAX_ID_LENGTH or not _storable(item_id):
        item_id = _text(raw, "item_id") or ""
    experiment = get("experiment")
    if experiment is not None and (
        type(experiment) is not str or not 0 < len(experiment) <= MAX_ID_LENGTH or not _storable(experiment)
    ):
        experiment = _text(raw, "experiment")
    stamp = get("timestamp")
    when = times.get(stamp) if isinstance(stamp, str) else None
    if when is None:
        when = _timestamp(stamp, now)
        times[str(stamp)] = when
    return _Row(event_id, kind, user_id, item_id, request_id, experiment, position, None, revenue, when)


def _revenue(value: Any) -> Decimal:
    try:
        revenue = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"revenue {value!r} is not a number") from None
    if not revenue.is_finite() or revenue < 0:
        raise ValueError(f"revenue must be a non-negative amount, got {value!r}")
    if revenue >= MAX_REVENUE:
        raise ValueError(f"revenue {value!r} is implausibly large")
    return revenue


def _required_text(raw: Mapping[str, Any], name: str) -> str:
    text = _text(raw, name)
    if text is None:
        raise ValueError(f"{name} is required")
    return text


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in text:
        raise ValueError(f"{name} contains a NUL character (\\u0000), which text columns cannot store")
    if not _storable(text):
        raise ValueError(f"{name} contains a lone surrogate (an unpaired \\ud800-\\udfff escape): not valid Unicode")
    return text


def _storable(text: str) -> bool:
    """Whether PostgreSQL can store `text`: no NUL character and valid UTF-8 (no lone surrogate). One such
    event must be refused on its own, not fail the COPY of its whole batch (and every retry of it)."""
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _timestamp(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise ValueError("timestamp is required, as ISO 8601 text such as 2026-11-27T10:15:00Z")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not ISO 8601 (e.g. 2026-11-27T10:15:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
        # PostgreSQL stores offsets within +-15:59 only; a farther one failed the COPY of the whole batch
        raise ValueError(f"timestamp {value!r} has a UTC offset beyond +-15:59")
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {value!r} is out of range") from None
    if when > now + FUTURE_TOLERANCE:
        raise ValueError(f"timestamp {value} is in the future (more than {FUTURE_TOLERANCE} ahead of the server)")
    return when
