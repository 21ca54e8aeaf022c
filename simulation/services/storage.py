"""Storing one simulated day in bulk: its served requests, first exposures and events.

The rows are built column by column with numpy from the day's arrays (no model instances, no
per-outcome branching), then written with COPY (exposures through a staging table and one
INSERT ... ON CONFLICT DO NOTHING, events through `events.copy_events`).

Ids are deterministic: a served request's id is the run's uuid5 prefix (20 hex digits)
followed by the plan session index (12 hex digits), and an event's id is
"<request id>:<position>:<i|c|a|p>". A day is one transaction, and a day whose first request
is already stored is skipped, so a task retried after a database error (it starts again from
day 0) stores nothing twice, and requests and events are COPYed straight into their
tables (no staging, no conflict checks: the slowest part of storing). The same seed gives the
same rows up to the run's id.

Times: the session's timestamp for the request, the exposure and the impression; the click,
add-to-cart and purchase follow 20, 60 and 120 s later (within the session's first minutes).
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import numpy.typing as npt
from django.db import connection, connections, transaction
from django.utils import timezone

from engine.simulation import DayBatch
from serving.models import Exposure, ServedRequest
from serving.services.events import COLUMNS, copy_events

_NAMESPACE = uuid.UUID("6f0c1a52-3d55-4e0e-9a55-5f1b1d7a2c11")
# (event_id suffix, type, seconds after the session's start) per event kind, in write order.
_KINDS = (("i", "impression", 0), ("c", "click", 20), ("a", "add_to_cart", 60), ("p", "purchase", 120))
_SERVED_COLUMNS = ("request_id", "experiment_id", "arm_id", "user_id", "exposed", "arm_probability", "query", "k",
                   "served_at", "simulation_id", "exploration_share", "explored")  # fmt: skip
_EXPOSURE_COLUMNS = ("experiment_id", "arm_id", "user_id", "bucket", "first_exposed_at", "simulation_id")

StrArray = npt.NDArray[np.object_]
logger = logging.getLogger(__name__)


def _csv_field(text: str) -> str:
    """`text` as one CSV field (quoted only when it must be)."""
    if any(c in text for c in ',"\n\r') or text != text.strip() or text == "":
        return '"' + text.replace('"', '""') + '"'
    return text


def _utc_text(seconds: npt.NDArray[np.int64]) -> StrArray:
    """ISO 8601 UTC text of Unix times, vectorised."""
    return np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]")), "+00:00").astype(object)


@dataclass(frozen=True)
class RunWriter:
    """What stays fixed over a run's days: its ids, the users' and items' stored ids, the arms."""

    simulation_id: int
    experiment_id: int
    arm_pks: tuple[int, ...]
    arm_probability: tuple[float, ...]
    k: int
    users: StrArray  # per (replicated) user index: "sim<run>:<shopper id>", "sim<run>.<replica>:<shopper id>"
    items: StrArray  # external item id per data item index
    users_csv: StrArray  # the same as CSV fields (quoted where needed), built once per run
    items_csv: StrArray
    request_head: str
    exploration_share: float = 0.0  # the experiment's share e; its days carry per-position propensities

    @classmethod
    def build(
        cls,
        simulation_id: int,
        experiment_id: int,
        arm_pks: Sequence[int],
        arm_probability: Sequence[float],
        k: int,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        exploration_share: float = 0.0,
        replicas: int = 1,
    ) -> RunWriter:
        """`user_ids`: the data's user ids. With `replicas` (the run's population_scale), user index
        u + r x n (replica r of data user u, `Shoppers.replicated`) is stored as "sim<run>.<r>:<u's id>"
        for r >= 1: the part after the first ":" is always the real shopper's id, whose history CUPED
        and the off-policy estimates look up."""
        prefixes = [f"sim{simulation_id}:"] + [f"sim{simulation_id}.{r}:" for r in range(1, replicas)]
        users = [prefix + u for prefix in prefixes for u in user_ids]
        return cls(
            simulation_id=simulation_id,
            experiment_id=experiment_id,
            arm_pks=tuple(arm_pks),
            arm_probability=tuple(arm_probability),
            k=k,
            users=np.array(users, dtype=object),
            items=np.array(list(item_ids), dtype=object),
            users_csv=np.array([_csv_field(u) for u in users], dtype=object),
            items_csv=np.array([_csv_field(i) for i in item_ids], dtype=object),
            request_head=uuid.uuid5(_NAMESPACE, f"simulation:{simulation_id}").hex[:20],
            exploration_share=exploration_share,
        )

    def request_ids(self, sessions: npt.NDArray[np.int64]) -> StrArray:
        """32 hex digits per plan session index: the run's prefix, then the index."""
        head = self.request_head
        return np.array([f"{head}{s:012x}" for s in sessions.tolist()], dtype=object)

    def request_texts(self, sessions: npt.NDArray[np.int64]) -> list[str]:
        """The same ids in the canonical UUID text (8-4-4-4-12) that serving hashes to decide exploration."""
        return [str(uuid.UUID(h)) for h in self.request_ids(sessions).tolist()]

    def store(self, batch: DayBatch) -> int:
        """Write the day's rows in one transaction; returns the number of new events.

        A day whose first served request is already stored was written whole by an earlier attempt
        (one transaction per day) and is skipped, so the rows can be copied straight in.
        """
        sessions, outcome = batch.sessions, batch.outcomes
        in_experiment = np.flatnonzero(batch.arm >= 0)
        if not len(in_experiment):
            return 0
        requests = np.full(len(sessions), None, dtype=object)
        requests[in_experiment] = self.request_ids(batch.session_offset + in_experiment)
        if ServedRequest.objects.filter(request_id=uuid.UUID(requests[in_experiment[0]])).exists():
            return 0
        # First session of each user this day (sessions are in time order): their exposure.
        _, first = np.unique(sessions.user[in_experiment], return_index=True)
        exposed = in_experiment[np.sort(first)]

        local = outcome.session - batch.session_offset
        masks = (np.ones(len(outcome), dtype=bool), outcome.clicked, outcome.carted, outcome.purchased)
        picks = [np.flatnonzero(m) for m in masks]
        kind = np.repeat(np.arange(len(_KINDS)), [len(p) for p in picks])
        impression = np.concatenate(picks)
        session = local[impression]
        delay = np.array([d for _, _, d in _KINDS], dtype=np.int64)[kind]
        # Each event carries its impression's propensity: the arm's probability, or with exploration the
        # mixture policy's probability of that item at that position (as serving logs it).
        if batch.propensity is None:
            propensity = np.asarray(self.arm_probability, dtype=np.float64)[outcome.arm[impression]]
        else:
            propensity = batch.propensity[session, outcome.position[impression] - 1]
        events = _Events(
            request=requests[session],
            user=sessions.user[session],
            item=outcome.item[impression],
            arm=outcome.arm[impression],
            position=outcome.position[impression],
            kind=kind,
            revenue=np.where(kind == 3, outcome.revenue[impression], np.nan),
            timestamp=sessions.timestamp[session] + delay,
            propensity=propensity,
        )
        with transaction.atomic():
            self._copy_served(batch, in_experiment, requests)
            self._copy_exposures(batch, exposed)
            return copy_events(self._event_csv(events), (*COLUMNS, "simulation_id"), known_new=True)

    def _copy_served(self, batch: DayBatch, rows: npt.NDArray[np.int64], requests: StrArray) -> None:
        buffer = io.StringIO()
        write = csv.writer(buffer).writerow
        times = _utc_text(batch.sessions.timestamp[rows])
        share = self.exploration_share if batch.explored is not None else 0.0
        for j, when in zip(rows.tolist(), times.tolist(), strict=True):
            arm = int(batch.arm[j])
            user = self.users[batch.sessions.user[j]]
            query = batch.sessions.query[j] or ""
            explored = "t" if batch.explored is not None and batch.explored[j] else "f"
            write((requests[j], self.experiment_id, self.arm_pks[arm], user, "t", self.arm_probability[arm], query,
                   self.k, when, self.simulation_id, share, explored))  # fmt: skip
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(  # type: ignore[attr-defined]
                f"COPY {ServedRequest._meta.db_table} ({', '.join(_SERVED_COLUMNS)}) FROM STDIN "
                "WITH (FORMAT csv, FORCE_NOT_NULL (query))",
                buffer,
            )

    def _copy_exposures(self, batch: DayBatch, rows: npt.NDArray[np.int64]) -> None:
        buffer = io.StringIO()
        users = self.users_csv[batch.sessions.user[rows]]
        arms = batch.arm[rows].tolist()
        times = _utc_text(batch.sessions.timestamp[rows]).tolist()
        buffer.writelines(
            f"{self.experiment_id},{self.arm_pks[a]},{u},0,{t},{self.simulation_id}\n"
            for u, a, t in zip(users.tolist(), arms, times, strict=True)
        )
        _copy_new(Exposure._meta.db_table, _EXPOSURE_COLUMNS, buffer, "experiment_id, user_id")

    def _event_csv(self, events: _Events) -> io.StringIO:
        """One CSV line per event in COLUMNS + simulation_id order, built from column lists."""
        kinds = [f"{suffix},{name}" for suffix, name, _ in _KINDS]
        arm_text = [f"{self.experiment_id},{pk}" for pk in self.arm_pks]
        tail = f"{timezone.now().isoformat()},{self.simulation_id}\n"
        items = self.items_csv[events.item].tolist()
        users = self.users_csv[events.user].tolist()
        revenue = ["" if np.isnan(r) else f"{r:.2f}" for r in events.revenue.tolist()]
        buffer = io.StringIO()
        buffer.writelines(
            f"{r}:{p}:{kinds[t]},{u},{i},{r},{arm_text[a]},{p},{q!r},{v},{w},{tail}"
            for r, p, t, u, i, a, q, v, w in zip(
                events.request.tolist(), events.position.tolist(), events.kind.tolist(), users, items,
                events.arm.tolist(), events.propensity.tolist(), revenue, _utc_text(events.timestamp).tolist(),
                strict=True,
            )
        )  # fmt: skip
        buffer.seek(0)
        return buffer


@dataclass(frozen=True)
class _Events:
    """One entry per event, parallel arrays; `kind` indexes _KINDS, `revenue` is NaN but for purchases."""

    request: StrArray
    user: npt.NDArray[np.int64]  # data user index
    item: npt.NDArray[np.int64]  # data item index
    arm: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    revenue: npt.NDArray[np.float64]
    timestamp: npt.NDArray[np.int64]
    propensity: npt.NDArray[np.float64]  # the impression's logged propensity, repeated on its later events


def _copy_new(table: str, columns: Sequence[str], buffer: io.StringIO, conflict: str) -> None:
    """COPY CSV rows into a temporary copy of `table`, then insert those not conflicting on `conflict`."""
    names = ", ".join(columns)
    staging = f"{table}_staging"
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "
            f"AS SELECT {names} FROM {table} WITH NO DATA"
        )
        cursor.cursor.copy_expert(f"COPY {staging} ({names}) FROM STDIN WITH (FORMAT csv)", buffer)  # type: ignore[attr-defined]
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({conflict}) DO NOTHING"
        )


class DayQueue:
    """Stores each day on a second database connection while the caller simulates the next one.

    PostgreSQL does the COPY in its own server process, so on two cores storing day d overlaps
    drawing and formatting day d + 1 (the two were about equal halves of a run). At most one day
    is in flight: `put` first waits for the previous one, which bounds memory and surfaces a
    storage error (re-raised in the caller) one day late at most. Inside an open transaction
    (tests, callers holding a transaction) a second connection would not see the caller's
    uncommitted rows, so days are then stored in the caller's connection, one after the other.
    """

    def __init__(self, store: Callable[[DayBatch], int]) -> None:
        self._store = store
        overlap = not connection.in_atomic_block
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulation-store") if overlap else None
        self._pending: Future[int] | None = None

    def put(self, batch: DayBatch) -> None:
        if self._pool is None:
            self._store(batch)
            return
        self.wait()
        self._pending = self._pool.submit(self._store, batch)

    def wait(self) -> None:
        """Block until the day in flight is stored; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> DayQueue:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._pool is None:
            return
        try:
            if kind is None:
                self.wait()
            elif self._pending is not None:
                # The caller failed: let the day in flight finish (no write after the run is marked
                # failed) and keep the caller's error; a storage error as well is logged, not lost.
                failure = self._pending.exception()
                if failure is not None:
                    logger.error("storing a simulated day failed too", exc_info=failure)
        finally:
            self._pool.submit(connections.close_all).result()  # the thread's own connection
            self._pool.shutdown()
