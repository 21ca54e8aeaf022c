"""Celery entry points of the alerts: the evaluation the beat runs every minute, and each delivery.

`queue_deliveries` sends one delivery task per (new alert, channel) after the transaction commits; a
delivery is retried with exponential backoff while the channel fails transiently (ops.services.notify).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from celery import shared_task
from django.db import OperationalError, transaction

from experiments.models import Experiment
from ops.models import Alert
from ops.services import notify
from ops.services.alerts import EvaluationReport, evaluate


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60, expires=55)
def evaluate_alerts_task() -> dict[str, list[int] | list[str]]:
    """Evaluate the alert rules once (the beat's every-minute run) and queue the new alerts' deliveries."""
    report = run_evaluation()
    return {"opened": report.opened, "resolved": report.resolved, "paused": report.paused}


@shared_task(
    bind=True, acks_late=True, autoretry_for=(notify.TransientDeliveryError, OperationalError), retry_backoff=10,
    retry_backoff_max=600, retry_jitter=True, max_retries=6, soft_time_limit=30, time_limit=40,
)  # fmt: skip
def deliver_alert_task(self: object, alert_id: int, channel_id: int) -> str:
    """Send one alert to one channel (ops.services.notify.deliver); retried with backoff on transient failures."""
    delivery = notify.deliver(alert_id, channel_id)
    return "already sent" if delivery is None else delivery.status


def queue_deliveries(alert_ids: Iterable[int]) -> int:
    """Queue, after the commit, a delivery of each alert to each of its channels; the number queued."""
    queued = 0
    for alert in Alert.objects.filter(pk__in=list(alert_ids)).select_related("experiment"):
        for channel in notify.channels_for(alert):
            transaction.on_commit(partial(deliver_alert_task.delay, alert.pk, channel.pk))
            queued += 1
    return queued


def run_evaluation(experiments: Iterable[Experiment] | None = None) -> EvaluationReport:
    """Evaluate (all running experiments, or these) and queue the deliveries of the alerts it opened."""
    report = evaluate(experiments=experiments)
    queue_deliveries(report.opened)
    return report


def evaluate_imported(experiment_id: int) -> EvaluationReport:
    """The import hook (settings.EVENTS_IMPORTED_HOOKS): evaluate a freshly imported experiment once."""
    return run_evaluation([Experiment.objects.select_related("owner").get(pk=experiment_id)])
