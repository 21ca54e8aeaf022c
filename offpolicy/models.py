"""Off-policy estimates: a candidate variant's predicted online CTR from an experiment's logs."""

from __future__ import annotations

from django.db import models

from core.models import BackgroundJob
from experiments.models import Experiment
from recommenders.models import TrainingRun, Variant


class OffPolicyEstimate(BackgroundJob):
    """A candidate variant's predicted online CTR from an experiment's logged impressions.

    The candidate is the variant's training run (its frozen model ranks each logged request);
    the log source is an experiment: platform traffic served with an exploration share, or an
    imported log with propensities. ``result`` holds IPS, SNIPS and DR with their bootstrap
    intervals, the effective sample size, per-position IPS and the coverage of the logs (see
    offpolicy.services.estimates); ``warnings`` and ``method`` are shown as they are.
    """

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="+")
    training_run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="offpolicy_estimates")
    config = models.JSONField(default=dict, blank=True)
    n = models.BigIntegerField(null=True, blank=True, help_text="logged impressions used")
    requests = models.BigIntegerField(null=True, blank=True, help_text="logged requests they belong to")
    effective_sample_size = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    method = models.TextField(blank=True)

    class Meta(BackgroundJob.Meta):
        constraints = [models.CheckConstraint(condition=models.Q(progress__lte=100), name="offpolicy_progress_le_100")]

    def __str__(self) -> str:
        return f"off-policy estimate {self.pk} of {self.variant_id} on {self.experiment_id} ({self.status})"
