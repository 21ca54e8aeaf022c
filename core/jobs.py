"""The lifecycle of a background job (``core.models.BackgroundJob``), the same for every kind of job.

    queued --claim--> running --(the job's own success update)--> succeeded
                              --fail--> failed (the error and its traceback)
                              --requeue--> queued (a database error: the task retries itself)

A running job's worker beats its heart every ``heartbeat_seconds()`` from a thread (``heartbeat``),
whatever the job itself is doing: a TensorFlow fit can spend minutes between two progress reports.
When the worker dies (kill -9, out of memory, the machine lost), the heartbeat stops, and after
``stale_after()`` the job is presumed dead: ``claim`` lets the next delivery of its task take it over (the
redelivered message of an ``acks_late`` task, or the re-send of ``recover_stale``, run every minute
by the beat), and the job starts again. Every job is idempotent: a training writes a new artifact,
a simulation skips the days it has stored already, an estimate recomputes.

Queueing: ``enqueue`` sends the task after the transaction commits; when the broker does not
answer, the row is marked failed ("could not be queued: ...") and ``QueueUnavailable`` is raised,
which the API answers with 503 and the pages show, instead of a row "waiting for a worker" for ever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback as tracebacks
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.models import BackgroundJob

MESSAGE_LENGTH = 300


def heartbeat_seconds() -> float:
    """Seconds between two signs of life of a running job (setting JOB_HEARTBEAT_SECONDS, default 20)."""
    return float(settings.JOB_HEARTBEAT_SECONDS)


def stale_after() -> timedelta:
    """How long a running job may be silent before it is presumed dead (JOB_STALE_SECONDS, default 120:
    six missed heartbeats, so a busy database or a slow beat never takes a live job away)."""
    return timedelta(seconds=settings.JOB_STALE_SECONDS)


Job = TypeVar("Job", bound=BackgroundJob)
P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The broker did not take the job's task; the job is marked failed with the reason."""


def long_job_task(seconds: int, *, max_retries: int = 3) -> Callable[[Callable[P, R]], Task[P, R]]:
    """The Celery task decorator of a job that holds a worker for minutes: acknowledged after the work
    (a crash redelivers it; the body claims its row once), a database outage retried with backoff,
    every other failure recorded by the body, a hard limit of ``seconds`` and a soft one a minute earlier."""
    return shared_task(
        acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError,), retry_backoff=5,
        retry_backoff_max=300, max_retries=max_retries, soft_time_limit=seconds - 60, time_limit=seconds,
    )  # fmt: skip


def claim(model: type[Job], pk: int, message: str = "starting") -> bool:
    """Move the job to running if it is queued, or running but silent for longer than stale_after() (its worker
    died); False when another worker has it or it has finished. One conditional UPDATE: two workers
    delivered the same message cannot both claim it."""
    now = timezone.now()
    silent = now - stale_after()
    takeable = (
        Q(status="queued")
        | Q(status="running", heartbeat_at__lt=silent)
        | Q(status="running", heartbeat_at__isnull=True, started_at__lt=silent)
    )
    updated = model._default_manager.filter(pk=pk).filter(takeable).update(
        status="running", started_at=now, heartbeat_at=now, progress=0, message=message[:MESSAGE_LENGTH],
        error="", traceback="",
    )  # fmt: skip
    return updated == 1


def beat(model: type[Job], pk: int) -> None:
    """One sign of life of a running job."""
    model._default_manager.filter(pk=pk, status="running").update(heartbeat_at=timezone.now())


@contextlib.contextmanager
def heartbeat(model: type[Job], pk: int, every: float | None = None) -> Iterator[None]:
    """Beat the job's heart from a thread (with its own database connection) while the block runs."""
    every = heartbeat_seconds() if every is None else every
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.wait(every):
                close_old_connections()
                try:
                    beat(model, pk)
                except Exception:  # a database hiccup: the next beat tries again; staleness allows several misses
                    logger.warning("heartbeat of %s %s failed", model.__name__, pk, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


def fail(model: type[Job], pk: int, error: BaseException, **fields: Any) -> None:
    """Record a terminal failure with its traceback (call from the `except` block that caught it)."""
    model._default_manager.filter(pk=pk).update(
        status="failed", finished_at=timezone.now(), message=f"failed: {error}"[:MESSAGE_LENGTH],
        error=f"{type(error).__name__}: {error}", traceback=tracebacks.format_exc(), **fields,
    )  # fmt: skip


def requeue(model: type[Job], pk: int, message: str = "retrying after a database error") -> None:
    """Back to queued, for the task's own retry. When the database is still away this fails too, and the
    job is taken over once its heartbeat is stale."""
    with contextlib.suppress(OperationalError):
        model._default_manager.filter(pk=pk, status="running").update(status="queued", message=message[:MESSAGE_LENGTH])


def is_stale(job: BackgroundJob) -> bool:
    """Whether a running job's worker has stopped beating (so it may be cancelled or deleted as dead)."""
    if job.status != "running":
        return False
    last = job.heartbeat_at or job.started_at
    return last is None or timezone.now() - last > stale_after()


def enqueue(model: type[Job], pk: int, send: Callable[[int], Any]) -> None:
    """Send the job's task once the current transaction commits (`send(pk)`, e.g. `task.delay`). A broker
    that does not answer marks the job failed and raises QueueUnavailable."""

    def publish() -> None:
        try:
            send(pk)
        except Exception as error:  # kombu's OperationalError, a refused connection, a timeout...
            reason = f"could not be queued: the task broker did not answer ({type(error).__name__}: {error})"
            model._default_manager.filter(pk=pk, status="queued").update(
                status="failed", finished_at=timezone.now(), message=reason[:MESSAGE_LENGTH], error=reason,
            )  # fmt: skip
            raise QueueUnavailable(reason) from error

    transaction.on_commit(publish)


_KINDS: dict[str, tuple[type[BackgroundJob], Callable[[int], Any]]] = {}


def register(model: type[Job], send: Callable[[int], Any]) -> None:
    """Make `recover_stale` watch the jobs of `model`, re-sending them with `send(pk)` (the task's delay)."""
    _KINDS[model._meta.label] = (model, send)


def recover_stale() -> dict[str, list[int]]:
    """Put back every running job whose heartbeat stopped (its worker died) and re-send its task, so a live
    worker claims and restarts it. Returns {model label: job ids re-sent}. Idempotent: the conditional
    UPDATE moves each dead job once, and a duplicate delivery claims nothing."""
    silent = timezone.now() - stale_after()
    recovered: dict[str, list[int]] = {}
    for label, (model, send) in _KINDS.items():
        dead = model._default_manager.filter(status="running").filter(
            Q(heartbeat_at__lt=silent) | Q(heartbeat_at__isnull=True, started_at__lt=silent)
        )
        ids = []
        for pk in dead.values_list("pk", flat=True):
            # Back to queued first: the re-sent task claims it as any queued job, and the next run of this
            # function does not send it again while it waits for a free worker.
            if model._default_manager.filter(pk=pk, status="running").update(
                status="queued", message="its worker stopped: waiting for the next free worker to restart it"
            ):
                ids.append(pk)
                send(pk)
        if ids:
            logger.warning("recovered %d %s job(s) whose worker stopped: %s", len(ids), label, ids)
            recovered[label] = ids
    return recovered
