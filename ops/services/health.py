"""Readiness: can this platform do its work now? Four checks, each with ok, detail and duration.

- database: PostgreSQL answers a query;
- broker: a fresh connection to CELERY_BROKER_URL answers within a second (ops.services.broker);
- worker: for each of READY_WORKER_QUEUES, a Celery worker consuming it beat its heart recently (its row in
  WorkerHeartbeat is younger than 3 x WORKER_HEARTBEAT_SECONDS; ops.worker writes it). Reading a row is
  cheaper than asking the workers over the broker (Celery's inspect ping waits for their replies);
- rollup_lag: no running experiment has an event older than READY_MAX_ROLLUP_LAG_SECONDS left unfolded
  (analysis.services.rollup_lag).

A load balancer may ask every second, from every web process: the result is kept for CACHE_SECONDS per
process, and one thread at a time runs the checks (the others wait for its result rather than repeat it).
When the database does not answer, the two checks that read it are reported failed without being run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from analysis.services.rollup_lag import rollup_lags
from ops.models import WorkerHeartbeat
from ops.services import broker

CACHE_SECONDS = 1.0
logger = logging.getLogger(__name__)
CHECKS = ("database", "broker", "worker", "rollup_lag")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    duration_ms: float


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]
    checked_at: float  # time.monotonic() of the checks

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def only(self, names: tuple[str, ...]) -> Readiness:
        """The same readiness restricted to the checks named (in CHECKS order)."""
        return Readiness(tuple(check for check in self.checks if check.name in names), self.checked_at)


def check_database() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, "PostgreSQL answered"


def check_broker() -> tuple[bool, str]:
    depths = broker.queue_depths()
    waiting = ", ".join(f"{name} {count:,}" for name, count in depths.items())
    return True, f"{broker.describe()} answered; messages waiting: {waiting}"


def heartbeat_stale_after() -> timedelta:
    """A worker whose last beat is older than this is presumed gone: three missed beats."""
    return timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)


def live_workers() -> list[WorkerHeartbeat]:
    return list(WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - heartbeat_stale_after()))


def check_worker() -> tuple[bool, str]:
    alive = live_workers()
    consumed = {queue for worker in alive for queue in worker.queues}
    missing = [queue for queue in settings.READY_WORKER_QUEUES if queue not in consumed]
    if not alive:
        return False, f"no live worker (none beat in the last {heartbeat_stale_after().seconds} s)"
    names = "; ".join(f"{worker.hostname} ({', '.join(worker.queues)})" for worker in alive)
    if missing:
        return False, f"no live worker consumes {', '.join(missing)}; live: {names}"
    return True, f"{len(alive)} live worker{'s' if len(alive) != 1 else ''}: {names}"


def check_rollup_lag() -> tuple[bool, str]:
    lags = rollup_lags()
    limit = settings.READY_MAX_ROLLUP_LAG_SECONDS
    if not lags:
        return True, "0 s behind (no running experiment)"
    key, worst = max(lags.items(), key=lambda item: item[1])
    if worst > limit:
        return False, f"{key} is {worst:,.0f} s behind (limit {limit:,} s): is beat running the fold?"
    return True, f"{worst:,.0f} s behind at most ({len(lags)} running experiment{'s' if len(lags) != 1 else ''})"


_FUNCTIONS: dict[str, Callable[[], tuple[bool, str]]] = {
    "database": check_database,
    "broker": check_broker,
    "worker": check_worker,
    "rollup_lag": check_rollup_lag,
}
_NEEDS_DATABASE = ("worker", "rollup_lag")


def _run(name: str) -> Check:
    started = time.perf_counter()
    try:
        ok, detail = _FUNCTIONS[name]()
    except Exception as error:  # any failure is the check's answer, with its reason
        ok, detail = False, f"{type(error).__name__}: {error}".strip()
    return Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 2))


def run_checks() -> Readiness:
    """Run every check now (no cache)."""
    results: list[Check] = []
    database_ok = True
    for name in CHECKS:
        if name in _NEEDS_DATABASE and not database_ok:
            results.append(Check(name, False, "not checked: the database does not answer", 0.0))
            continue
        result = _run(name)
        if name == "database":
            database_ok = result.ok
        results.append(result)
    return Readiness(tuple(results), time.monotonic())


_lock = threading.Lock()
_cached: Readiness | None = None


def readiness(max_age: float = CACHE_SECONDS) -> Readiness:
    """The checks' results, at most `max_age` seconds old (this process's last run, else a new run).

    A change of a check's outcome is logged (a warning when it fails, info when it passes again), once.
    """
    global _cached
    with _lock:
        if _cached is None or time.monotonic() - _cached.checked_at >= max_age:
            previous, _cached = _cached, run_checks()
            _log_changes(previous, _cached)
        return _cached


def _log_changes(previous: Readiness | None, current: Readiness) -> None:
    before = {check.name: check.ok for check in previous.checks} if previous else {}
    for check in current.checks:
        if not check.ok and before.get(check.name, True):
            logger.warning("readiness: %s failing: %s", check.name, check.detail)
        elif check.ok and before.get(check.name) is False:
            logger.info("readiness: %s passing again: %s", check.name, check.detail)


def forget() -> None:
    """Drop the kept result (tests, after changing what the checks see)."""
    global _cached
    with _lock:
        _cached = None
