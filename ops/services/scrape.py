"""What /metrics answers: the counted metrics of every web process, and gauges read at scrape time.

Counted (core.metrics, added up over the processes from prometheus_client's multiprocess files): requests by
view and status with their latency, served recommendations, ingested, duplicate and refused events.

Read at scrape time, by this process, from the database and the broker:

- ``abplatform_rollup_lag_seconds{experiment}``: seconds since the oldest unfolded event of each running
  experiment (analysis.services.rollup_lag);
- ``abplatform_queue_depth{queue}``: messages waiting in the Celery queues `default` and `training`;
- ``abplatform_workers_alive{queue}``: Celery workers consuming the queue whose heartbeat is recent;
- ``abplatform_jobs{kind,status}``: background jobs queued or running now; ``abplatform_jobs_finished_total
  {kind,status}``: jobs that succeeded, failed (or were cancelled); ``abplatform_job_duration_seconds
  {kind,status}``: how long the finished ones ran (started to finished), as a histogram. Kinds: training,
  evaluation, simulation, estimate. Deleting job rows lowers these (Prometheus reads it as a counter reset);
- ``abplatform_alerts_open{rule,severity}``: the alerts not resolved yet (open or acknowledged), per rule of
  ops.services.alert_rules and severity (0 for each rule and severity without one);
- ``abplatform_dependency_up{dependency}``: 1 when the database (resp. the broker) answered this scrape, 0
  when it did not and its gauges are left out.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import Model
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from analysis.services.rollup_lag import rollup_lags
from core import metrics
from offpolicy.models import OffPolicyEstimate
from ops.models import Alert
from ops.services import broker
from ops.services.alert_rules import RULES
from ops.services.health import live_workers
from recommenders.models import Evaluation, TrainingRun
from simulation.models import SimulationRun

logger = logging.getLogger(__name__)

JOB_KINDS: dict[str, type[Model]] = {
    "training": TrainingRun,
    "evaluation": Evaluation,
    "simulation": SimulationRun,
    "estimate": OffPolicyEstimate,
}
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)


def _job_rows(table: str) -> list[tuple[Any, ...]]:
    """Per status: jobs, jobs with a duration, the sum of durations, and the count of durations <= each bucket."""
    seconds = "EXTRACT(EPOCH FROM (finished_at - started_at))"
    timed = "started_at IS NOT NULL AND finished_at IS NOT NULL"
    buckets = ", ".join(f"count(*) FILTER (WHERE {timed} AND {seconds} <= {bound})" for bound in JOB_BUCKETS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, count(*), count(*) FILTER (WHERE {timed}), "
            f"COALESCE(sum({seconds}) FILTER (WHERE {timed}), 0), {buckets} FROM {table} GROUP BY status"
        )
        return list(cursor.fetchall())


def database_metrics() -> list[Metric]:
    lag = GaugeMetricFamily(
        "abplatform_rollup_lag_seconds",
        "Seconds since the oldest event the rollups have not folded yet, per running experiment (0: none).",
        labels=["experiment"],
    )
    for key, seconds in rollup_lags().items():
        lag.add_metric([key], seconds)
    alive = GaugeMetricFamily(
        "abplatform_workers_alive", "Celery workers consuming the queue with a recent heartbeat.", labels=["queue"]
    )
    workers = live_workers()
    for queue in broker.queue_names():
        alive.add_metric([queue], sum(queue in worker.queues for worker in workers))
    active = GaugeMetricFamily("abplatform_jobs", "Background jobs queued or running now.", labels=["kind", "status"])
    finished = CounterMetricFamily(
        "abplatform_jobs_finished", "Background jobs finished, by final status.", labels=["kind", "status"]
    )
    durations = HistogramMetricFamily(
        "abplatform_job_duration_seconds",
        "How long finished background jobs ran (from start to finish).",
        labels=["kind", "status"],
    )
    for kind, model in JOB_KINDS.items():
        rows = {row[0]: row for row in _job_rows(model._meta.db_table)}
        for status in ACTIVE:
            active.add_metric([kind, status], rows[status][1] if status in rows else 0)
        for status in FINISHED:
            if status == "cancelled" and kind != "simulation":
                continue
            row = rows.get(status)
            finished.add_metric([kind, status], row[1] if row else 0)
            counts = list(row[4:]) if row else [0] * len(JOB_BUCKETS)
            buckets = [(str(bound), count) for bound, count in zip(JOB_BUCKETS, counts, strict=True)]
            buckets.append(("+Inf", row[2] if row else 0))
            durations.add_metric([kind, status], buckets, float(row[3]) if row else 0.0)
    alerts = GaugeMetricFamily(
        "abplatform_alerts_open", "Alerts not resolved yet (open or acknowledged).", labels=["rule", "severity"]
    )
    open_alerts = Counter(
        Alert.objects.exclude(status=Alert.Status.RESOLVED).values_list("rule", "severity").iterator()
    )
    for rule in RULES:
        for severity in Alert.Severity.values:
            alerts.add_metric([rule, severity], open_alerts[(rule, severity)])
    return [lag, alive, active, finished, durations, alerts]


def broker_metrics() -> list[Metric]:
    depth = GaugeMetricFamily("abplatform_queue_depth", "Messages waiting in the Celery queue.", labels=["queue"])
    for queue, count in broker.queue_depths().items():
        depth.add_metric([queue], count)
    return [depth]


class ScrapeTimeCollector:
    """The gauges read from the database and the broker when /metrics is asked (module docstring)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "abplatform_dependency_up",
            "1 when the dependency answered this scrape (its gauges are then present), else 0.",
            labels=["dependency"],
        )
        for name, read in (("database", database_metrics), ("broker", broker_metrics)):
            try:
                families = read()
            except Exception:
                logger.warning("metrics: the %s did not answer", name, exc_info=True)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def exposition() -> bytes:
    """The Prometheus text format of everything /metrics shows."""
    metrics.flush()  # this process's own counts, not yet in the shared files
    counted = CollectorRegistry()
    if os.environ.get(metrics.MULTIPROCESS_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
        body = generate_latest(counted)
    else:  # a process without the folder (not the platform's settings): its own counts only
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    read = CollectorRegistry()
    read.register(ScrapeTimeCollector())
    return body + generate_latest(read)
