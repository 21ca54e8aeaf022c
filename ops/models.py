"""The workers' heartbeat: one row per live Celery worker, refreshed by the worker itself (ops.worker)."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """A Celery worker's last sign of life and the queues it consumes; deleted when it stops gracefully."""

    hostname = models.CharField(max_length=255, primary_key=True)
    queues = models.JSONField(default=list)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%H:%M:%S}"
