"""Operations: the workers' heartbeat (refreshed by the worker itself, ops.worker); alerts, channels, deliveries."""

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


class NotificationChannel(models.Model):
    """Where alerts go: a webhook (plain JSON or a Slack-compatible body) or e-mail addresses (Django's mail
    backend). A channel without an experiment receives every alert; one with an experiment only that
    experiment's. `min_severity` drops the alerts below it."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        EMAIL = "email", "E-mail"

    class Format(models.TextChoices):
        JSON = "json", "Plain JSON"
        SLACK = "slack", "Slack-compatible"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    experiment = models.ForeignKey(
        "experiments.Experiment", on_delete=models.CASCADE, null=True, blank=True, related_name="alert_channels",
        help_text="empty: every experiment's alerts (and those of no experiment)",
    )  # fmt: skip
    url = models.URLField(max_length=500, blank=True, help_text="webhook: where the alert is POSTed")
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.JSON)
    emails = models.JSONField(default=list, blank=True, help_text="email: the recipients' addresses")
    min_severity = models.CharField(max_length=20, default="warning", help_text="warning or critical")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="webhook") | ~models.Q(url=""), name="webhook_channel_has_url"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Alert(models.Model):
    """A rule's finding (ops.services.alerts): open while its condition holds, resolved when it clears or by
    hand. At most one unresolved alert per (experiment, rule): the partial unique constraints below."""

    class Severity(models.TextChoices):
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    experiment = models.ForeignKey(
        "experiments.Experiment", on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    rule = models.CharField(max_length=30)
    severity = models.CharField(max_length=20, choices=Severity.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "rule"], condition=~models.Q(status="resolved"), name="one_unresolved_alert"
            ),
            # NULL experiments are distinct in a unique index: the platform-wide alerts get their own.
            models.UniqueConstraint(
                fields=["rule"], condition=~models.Q(status="resolved") & models.Q(experiment__isnull=True),
                name="one_unresolved_platform_alert",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["status", "experiment"], name="alert_status_experiment")]

    def __str__(self) -> str:
        return f"{self.rule} ({self.status})"


class AlertDelivery(models.Model):
    """One attempt to send an alert to a channel, with what came back."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alert", "channel", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel", "attempt"], name="one_delivery_per_attempt"),
            # A sent delivery ends the retries: at most one per alert and channel.
            models.UniqueConstraint(
                fields=["alert", "channel"], condition=models.Q(status="sent"), name="one_sent_delivery"
            ),
        ]

    def __str__(self) -> str:
        return f"alert {self.alert_id} to channel {self.channel_id}, attempt {self.attempt}: {self.status}"


class AlertEvaluation(models.Model):
    """A single row: when the rules last ran. Evaluations lock it, so two never overlap, and the failed-job
    rule looks at the jobs that failed since."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"alerts evaluated at {self.evaluated_at}"
