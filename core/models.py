"""The abstract background job that training runs, evaluations, simulation runs and off-policy estimates share."""

from __future__ import annotations

from django.db import models


class BackgroundJob(models.Model):
    """A row a Celery worker moves through its lifecycle (``core.jobs``): queued, running (with a
    heartbeat), then succeeded or failed (with the error and its traceback), and its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="last sign of life of the worker running it (every HEARTBEAT seconds)"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    requested_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-queued_at"]

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
