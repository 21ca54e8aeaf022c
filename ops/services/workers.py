"""The workers' heartbeat rows (ops.models.WorkerHeartbeat), written by the workers (ops.worker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from ops.models import WorkerHeartbeat

FORGET_AFTER = timedelta(days=1)  # rows of workers gone without a goodbye (kill -9) are deleted after this


def record_beat(hostname: str, queues: Sequence[str], pid: int, started_at: datetime) -> None:
    """Insert or refresh the worker's row (one statement), and delete rows silent for a day."""
    now = timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(hostname=hostname, queues=sorted(queues), pid=pid, started_at=started_at, beat_at=now)],
        update_conflicts=True,
        unique_fields=["hostname"],
        update_fields=["queues", "pid", "started_at", "beat_at"],
    )
    WorkerHeartbeat.objects.filter(beat_at__lt=now - FORGET_AFTER).delete()


def forget(hostname: str) -> None:
    """A worker stopping gracefully removes its row: readiness sees it gone at once."""
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()
