"""Simulation runs: simulated traffic driven through an experiment's live assignment."""

from __future__ import annotations

from django.db import models

from core.models import BackgroundJob
from experiments.models import Experiment


class SimulationRun(BackgroundJob):
    """Simulated traffic for an experiment: real shoppers of the arms' data set, their held-out
    purchases as what they want, driven through the experiment's assignment and trained models.

    Simulated users are stored as "sim<run id>:<shopper id>", and every served request,
    exposure and event of the run points to it, so a run can be deleted without touching
    live traffic.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # BackgroundJob's statuses plus "cancelled": a run stopped on request keeps the days it stored.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="simulations")
    config = models.JSONField(default=dict)
    sessions = models.BigIntegerField(default=0)
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    purchases = models.BigIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)

    class Meta(BackgroundJob.Meta):
        pass

    FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    def __str__(self) -> str:
        return f"simulation {self.pk} of {self.experiment.key} ({self.status})"

    @property
    def user_prefix(self) -> str:
        return f"sim{self.pk}:"
