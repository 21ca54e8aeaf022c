"""A per-process buffer of serving logs, stored in batches by a background thread.

The lean HTTP path (serving/lean.py) answers a recommendation request without waiting
for the database: `LogBuffer.add` queues the served request, the exposure and the
impressions, and a daemon thread stores everything queued every FLUSH_SECONDS (50 ms, counted
from the start of one flush to the start of the next; sooner once FLUSH_ROWS answers wait)
with COPY, in one transaction per flush, with an asynchronous commit. Flushes run one at a
time. At worker exit the buffer is closed (gunicorn.conf.py's `worker_exit` hook, an atexit
handler, and a multiprocessing exit finalizer for granian's worker processes, which granian
ends on SIGTERM or SIGINT through its own handlers): closing waits for the batch being stored,
stores the rest, and answers made after it are stored before they are sent. A graceful stop
loses nothing.

Durability trade-off, accepted for serving logs only (event ingestion still answers after
its rows are committed): no answer is sent while an older answer of the same process has
waited more than MAX_AGE_SECONDS (100 ms) unstored; `add` then stores (or waits for) the
flush first. So a worker killed without a graceful exit (SIGKILL, OOM, power loss) loses
at most the answers it acknowledged in the last ~100 ms (and never more than MAX_PENDING),
plus, as before, the last fraction of a second of commits a PostgreSQL crash may drop.
bench/serving_durability.py measures it against a real server (granian, 2 workers x 2
threads, SIGKILL to the whole process group mid-load, 5 runs on a shared 2-core machine):
the oldest lost answer was 30 ms old at the kill (15-41 ms) at 400 requests/s, and 81 ms
(25-109 ms) at saturation, about 1,500 answers/s (docs/benchmarks.md has the figures).
While a slow flush holds it back, the process answers nothing: the bound costs latency only
when the database falls behind. A batch the database refuses (e.g. its experiment was
deleted meanwhile) is retried answer by answer, and only the answers still refused are
dropped, with an error in the log.

First exposures stay first per user: exposures go through a staging table into
`INSERT ... ON CONFLICT (experiment_id, user_id) DO NOTHING`, ordered by time, so within a
batch and across batches of one process the earliest exposure wins. Between processes, a
batch flushed later can hold an exposure up to MAX_AGE_SECONDS older than the stored one; the
arm is the same either way (bucketing is sticky), only first_exposed_at may be that late.
A click sent before its request's log is flushed is stored without arm attribution if
neither the request nor the exposure has landed yet: shops send clicks seconds later.
"""

from __future__ import annotations

import atexit
import csv
import io
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import close_old_connections, connection, transaction

from serving.models import Exposure, ServedRequest
from serving.services.config import EXPOSURE_COLUMNS, SERVED_COLUMNS, ServingLog
from serving.services.events import copy_events, csv_rows
from serving.services.serve import write_log

FLUSH_SECONDS = 0.05  # the flusher stores what is queued this often (measured from the start of each flush)
MAX_AGE_SECONDS = 0.1  # no answer is acknowledged while an older one than this is still unstored
FLUSH_ROWS = 2_000  # answers waiting that wake the flusher early
MAX_PENDING = 50_000  # beyond this (database down or too slow) answers are logged synchronously

logger = logging.getLogger(__name__)


class LogBuffer:
    """Collects ServingLog entries and stores them in batches from a background thread.

    Safe across fork: a process that did not start the thread (e.g. a gunicorn worker forked
    from a preloading master) drops the parent's queue copy and starts its own thread.
    Flushes run one at a time (a flush waits for the one in progress), so the flush at exit also
    waits for the batch the thread is storing; after it (`close`), answers are stored synchronously.
    """

    def __init__(
        self,
        flush_seconds: float = FLUSH_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flush_seconds = flush_seconds
        self.max_age = max_age
        self._clock = clock
        self._pending: list[ServingLog] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # held while a batch is stored: one flush at a time
        self._wake = threading.Event()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        # When the oldest unstored answer was queued: of the pending ones, and of the batch being stored.
        self._pending_since: float | None = None
        self._storing_since: float | None = None

    def add(self, entry: ServingLog) -> None:
        """Queue one answer's log, or store it now: when too many are waiting, when the oldest answer not yet
        stored is older than `max_age` (the request then waits for the flush, bounding what a crash loses),
        and after `close`."""
        now, overdue = self._clock(), False
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            backlog = len(self._pending)
            synchronous = self._closed or backlog >= MAX_PENDING
            if not synchronous:
                self._pending.append(entry)
                if self._pending_since is None:
                    self._pending_since = now
                oldest = self._pending_since if self._storing_since is None else self._storing_since
                overdue = now - oldest > self.max_age
        if synchronous:
            write_log(entry)  # back-pressure: the request waits for the database, as it did without the buffer
        elif overdue:
            self.flush()  # waits for a flush in progress, then stores the rest, this answer included
        elif backlog + 1 >= FLUSH_ROWS:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Store everything queued so far (in the calling thread, after any flush in progress); returns the
        number of answers stored."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
                self._storing_since, self._pending_since = self._pending_since, None
            if not batch:
                return 0
            try:
                store_batch(batch)
            except Exception:
                logger.exception("storing %d buffered serving logs failed; retrying them one by one", len(batch))
                _store_one_by_one(batch)
            finally:
                with self._lock:
                    self._storing_since = None
            return len(batch)

    def stop(self) -> None:
        """Store what is queued and end the flusher thread (closing its database connection); `add` restarts it."""
        with self._lock:
            thread, self._pid, self._stopping = self._thread, None, True
        if thread is not None and thread.is_alive():
            self._wake.set()
            thread.join()
        self.flush()

    def close(self) -> None:
        """At process exit: store what is queued (after the batch being stored) and store later answers
        synchronously, so that an answer made while the process ends is stored before it is sent."""
        with self._lock:
            self._closed = True
        self.flush()

    def _start(self) -> None:
        # Called with the lock held, in a process that has no flusher yet.
        self._pending = []
        self._pending_since = self._storing_since = None
        self._pid = os.getpid()
        self._stopping = self._closed = False
        self._thread = threading.Thread(target=self._run, name="serving-log-flusher", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        # A worker that is a multiprocessing child (granian's) ends with os._exit, which skips atexit but
        # runs multiprocessing's exit finalizers first: close there too (a no-op when atexit already did).
        multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    def _run(self) -> None:
        try:
            next_flush = self._clock() + self.flush_seconds
            while not self._stopping:
                # Every flush_seconds from the start of the previous flush, not from its end: a slow flush
                # does not stretch the period.
                self._wake.wait(max(0.0, next_flush - self._clock()))
                self._wake.clear()
                next_flush = self._clock() + self.flush_seconds
                # The thread has its own database connection: drop it when broken or past CONN_MAX_AGE.
                close_old_connections()
                try:
                    self.flush()
                except Exception:  # never let the flusher die; the error is logged by flush or here
                    logger.exception("the serving log flusher failed")
        finally:
            connection.close()


def store_batch(batch: Sequence[ServingLog]) -> None:
    """Store many answers' logs in one transaction: COPY the served requests, exposures and impressions.

    Served requests and impressions go straight into their tables; exposures through a
    staging table and ON CONFLICT, since a user's later answers must not replace the first.
    """
    exposures = [entry.exposure for entry in batch if entry.exposure is not None]
    impressions = [row for entry in batch for row in entry.impressions]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        raw: Any = cursor.cursor
        raw.copy_expert(
            f"COPY {ServedRequest._meta.db_table} ({SERVED_COLUMNS}) FROM STDIN "
            "WITH (FORMAT csv, FORCE_NOT_NULL (user_id, query))",
            _csv([entry.served for entry in batch]),
        )
        if exposures:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS exposure_staging ON COMMIT DELETE ROWS "
                f"AS SELECT {EXPOSURE_COLUMNS} FROM {Exposure._meta.db_table} WITH NO DATA"
            )
            raw.copy_expert(
                f"COPY exposure_staging ({EXPOSURE_COLUMNS}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (user_id))",
                _csv(exposures),
            )
            # Earliest first, so that the first exposure of a user in the batch is the one kept.
            cursor.execute(
                f"INSERT INTO {Exposure._meta.db_table} ({EXPOSURE_COLUMNS}) SELECT {EXPOSURE_COLUMNS} "
                "FROM exposure_staging ORDER BY first_exposed_at ON CONFLICT (experiment_id, user_id) DO NOTHING"
            )
        if impressions:
            # Straight into the table: impression ids embed the request's fresh uuid4, so they are new.
            # Should one exist after all (a shop sent it before this flush), the batch fails on the
            # unique index and is redone answer by answer through write_log, which skips it.
            copy_events(csv_rows(impressions), known_new=True)


def _store_one_by_one(batch: Sequence[ServingLog]) -> None:
    for entry in batch:
        try:
            write_log(entry)
        except Exception:
            logger.exception("dropping the serving log of request %s", entry.served.request_id)


def _csv(rows: Sequence[tuple[Any, ...]]) -> io.StringIO:
    """CSV text for COPY: None is an empty (NULL) field, the last column is a datetime (ISO 8601)."""
    buffer = io.StringIO()
    write = csv.writer(buffer).writerow
    for row in rows:
        when: datetime = row[-1]
        write((*row[:-1], when.isoformat()))
    buffer.seek(0)
    return buffer


buffer = LogBuffer()
