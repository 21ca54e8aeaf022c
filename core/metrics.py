"""The platform's counters and histograms, cheap enough for the serving and ingestion paths.

Several web processes answer requests, so the numbers are added up at scrape time from prometheus_client's
multiprocess files: one memory-mapped file per process and metric type in ``PROMETHEUS_MULTIPROC_DIR``
(the settings point it at ``var/prometheus``; the web server's start clears it: ``ops`` documents how).
Writing those files takes a lock and costs about 8 µs per labelled update, a few per cent of a request the
lean path answers in a few hundred µs. So the hot paths count in a dictionary of their process (well under
a microsecond) and a daemon thread adds what was counted to the files every FLUSH_SECONDS, at exit too;
the /metrics view flushes its own process first. A process killed without a graceful exit (SIGKILL, out of
memory) loses at most its last FLUSH_SECONDS of counts.

Every metric the platform counts is defined here, once; ``ops`` exposes them at /metrics together with the
gauges it reads from the database and the broker at scrape time.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FLUSH_SECONDS = 1.0
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_metrics: list[_Metric] = []
_started = False  # whether this process's flusher runs (reset in a forked child, which has no thread)


class _Metric:
    """A metric counted in process memory and added to prometheus_client's metric of the same name by `flush`."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self._pending: dict[tuple[str, ...], Any] = {}
        self._prometheus: Any = None
        _metrics.append(self)

    def _take(self) -> dict[tuple[str, ...], Any]:
        # Called with _lock held.
        pending, self._pending = self._pending, {}
        return pending

    def _child(self, labels: tuple[str, ...]) -> Any:
        if self._prometheus is None:
            self._prometheus = self._create()
        return self._prometheus.labels(*labels) if labels else self._prometheus

    def _create(self) -> Any:
        raise NotImplementedError

    def _add(self, batch: dict[tuple[str, ...], Any]) -> None:
        raise NotImplementedError


def _registry() -> Any:
    """Where prometheus_client registers a metric: nowhere in multiprocess mode (the files are the registry),
    else the default registry, so a process without the folder still shows its own numbers."""
    from prometheus_client import REGISTRY

    return None if os.environ.get(MULTIPROCESS_ENV) else REGISTRY


class Counter(_Metric):
    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add `amount` to the series of `labels` (one value per label name, in order)."""
        with _lock:
            if not _started:
                _start()
            pending = self._pending
            pending[labels] = pending.get(labels, 0.0) + amount

    def _create(self) -> Any:
        from prometheus_client import Counter as PrometheusCounter

        return PrometheusCounter(self.name, self.documentation, self.labels, registry=_registry())

    def _add(self, batch: dict[tuple[str, ...], Any]) -> None:
        for labels, amount in batch.items():
            self._child(labels).inc(amount)


class Histogram(_Metric):
    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labels)
        self.bounds = tuple(float(bound) for bound in buckets)  # the +Inf bucket is implicit, as in prometheus_client

    def observe(self, value: float, *labels: str) -> None:
        """Count `value` in its bucket (the first upper bound >= value, as Prometheus's `le`) and in the sum."""
        slot = bisect_left(self.bounds, value)
        with _lock:
            if not _started:
                _start()
            entry = self._pending.get(labels)
            if entry is None:
                entry = self._pending[labels] = [0] * (len(self.bounds) + 1) + [0.0]
            entry[slot] += 1
            entry[-1] += value

    def _create(self) -> Any:
        from prometheus_client import Histogram as PrometheusHistogram

        return PrometheusHistogram(
            self.name, self.documentation, self.labels, buckets=self.bounds, registry=_registry()
        )

    def _add(self, batch: dict[tuple[str, ...], Any]) -> None:
        # prometheus_client observes one value at a time; a batch adds its bucket counts and sum to the
        # child's values directly (the same values `observe` increments: one per bucket, +Inf last, and the sum).
        for labels, entry in batch.items():
            child = self._child(labels)
            for slot, count in enumerate(entry[:-1]):
                if count:
                    child._buckets[slot].inc(count)
            child._sum.inc(entry[-1])


def flush() -> None:
    """Add what this process counted since the last flush to the shared metrics (in the calling thread)."""
    with _lock:
        batches = [(metric, metric._take()) for metric in _metrics]
    for metric, batch in batches:
        if batch:
            try:
                metric._add(batch)
            except Exception:  # a full disk or a removed folder must not take a request down; the counts are lost
                logger.exception("could not store the metric %s", metric.name)


def _start() -> None:
    # Called with _lock held, at the first count of a process (or the first after a fork).
    global _started
    _started = True
    threading.Thread(target=_run, name="metrics-flusher", daemon=True).start()
    atexit.register(flush)
    # granian's workers are multiprocessing children, which end with os._exit (no atexit) after these finalizers.
    multiprocessing.util.Finalize(None, flush, exitpriority=10)


def _forked() -> None:
    # In a forked child: the parent's flusher thread is not here, and what the parent had not flushed yet is
    # the parent's to flush, so the copies are dropped. (A fork while another thread held the lock leaves it
    # held in the child: a new one.)
    global _lock, _started
    _lock = threading.Lock()
    _started = False
    for metric in _metrics:
        metric._pending = {}


os.register_at_fork(after_in_child=_forked)


def _run() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def clear_directory(path: Path) -> int:
    """Create the multiprocess folder, or empty it of the files of a previous run; returns the number removed.

    Run before the web server starts its processes, never while they run: their counters would go backwards.
    """
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def http_method(method: str) -> str:
    """The method as a label value: one of HTTP_METHODS, else "other" (clients choose it: bounded cardinality)."""
    return method if method in HTTP_METHODS else "other"


# The definitions. Label values are bounded: views are URL names, experiments and arms are the platform's own.
HTTP_REQUESTS = Counter(
    "abplatform_http_requests_total",
    "HTTP requests answered, by view (URL name), method and status code; the lean path's included.",
    ("view", "method", "status"),
)
HTTP_DURATION = Histogram(
    "abplatform_http_request_duration_seconds",
    "Time to answer an HTTP request (until the answer is handed to the server), by view and method.",
    ("view", "method"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RECOMMENDATIONS_SERVED = Counter(
    "abplatform_recommendations_served_total",
    "Recommendation lists served, by experiment and arm (arm 'interleaved' for interleaved lists).",
    ("experiment", "arm"),
)
EVENTS_INGESTED = Counter(
    "abplatform_events_ingested_total",
    "Valid events taken by ingestion, by experiment ('' when none is named); duplicates included.",
    ("experiment",),
)
EVENTS_DUPLICATE = Counter(
    "abplatform_events_duplicate_total",
    "Ingested events whose event_id was stored already (not stored again).",
    (),
)
EVENTS_REFUSED = Counter(
    "abplatform_events_refused_total",
    "Events refused by ingestion, by reason: invalid, unknown_experiment, draft_experiment, or batch "
    "(the whole batch refused: not a list, or more than 10,000 events).",
    ("reason",),
)
