"""The data plane's tables: API tokens, answered requests, exposures and events.

Rows written by a simulation run carry its id (``simulation``, no database constraint), so a run can
be deleted without touching live traffic.
"""

from __future__ import annotations

import uuid

from django.db import models

from experiments.models import Arm, Experiment
from serving.limits import MAX_ID_LENGTH, MAX_QUERY_LENGTH, REVENUE_DECIMALS, REVENUE_DIGITS


class ApiToken(models.Model):
    """A client credential. Only the sha256 of the secret is stored; `prefix` identifies it in lists."""

    class Scope(models.TextChoices):
        SERVE = "serve", "Ask for recommendations"
        INGEST = "ingest", "Send events"
        # The simulator's (simulate --http): a recommendation request may name its simulation run.
        SIMULATE = "simulate", "Name the simulation run of a request"

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # The experiment keys the token may serve and write events for; empty: every experiment.
    experiments = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, experiment_key: str) -> bool:
        """Whether the token may serve and write events for this experiment."""
        return not self.experiments or experiment_key in self.experiments

    def bound_message(self, experiment_key: str) -> str:
        return (f"this token may not write traffic for experiment {experiment_key!r}: it is bound to "
                f"{', '.join(repr(key) for key in self.experiments)}")  # fmt: skip


class Exposure(models.Model):
    """The first time a user was served an arm of an experiment (one row per user and experiment)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="exposures")
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    bucket = models.PositiveSmallIntegerField()
    first_exposed_at = models.DateTimeField()
    simulation = models.ForeignKey(
        "simulation.SimulationRun",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "user_id"], name="exposure_once_per_user")]
        indexes = [models.Index(fields=["experiment", "arm"], name="exposure_experiment_arm")]

    def __str__(self) -> str:
        return f"{self.user_id} saw {self.arm_id} of {self.experiment_id}"


class ServedRequest(models.Model):
    """One answered recommendation request: who, which arm, and the probability of that arm."""

    request_id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="served_requests")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    exposed = models.BooleanField(help_text="False when the user is outside the experiment (served control)")
    arm_probability = models.FloatField()
    query = models.CharField(max_length=MAX_QUERY_LENGTH, blank=True)
    k = models.PositiveSmallIntegerField()
    served_at = models.DateTimeField()
    # The exploration share e in force (0: none) and whether this request drew the random ordering.
    # With e > 0 its impressions' propensities are the mixture marginals (engine.offpolicy.exploration).
    exploration_share = models.FloatField(default=0.0, db_default=0.0)
    explored = models.BooleanField(default=False, db_default=False)
    # The X-Request-ID of the HTTP request answered (core.request_context), to find its log lines; NULL for
    # answers outside an HTTP request (an in-process simulation) and for rows stored before it was recorded.
    http_request_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    simulation = models.ForeignKey(
        "simulation.SimulationRun",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        indexes = [models.Index(fields=["experiment", "served_at"], name="served_experiment_time")]

    def __str__(self) -> str:
        return str(self.request_id)


class Event(models.Model):
    """What a user did (impression, click, add to cart, purchase), sent by the shop or logged by serving.

    `event_id` is the client's idempotency key: a repeated event is accepted but stored once.
    """

    class Type(models.TextChoices):
        IMPRESSION = "impression", "Impression"
        CLICK = "click", "Click"
        ADD_TO_CART = "add_to_cart", "Add to cart"
        PURCHASE = "purchase", "Purchase"

    id = models.BigAutoField(primary_key=True)
    event_id = models.CharField(max_length=MAX_ID_LENGTH)
    type = models.CharField(max_length=20, choices=Type.choices)
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    item_id = models.CharField(max_length=MAX_ID_LENGTH, blank=True)
    request_id = models.UUIDField(null=True, blank=True)
    # Events are an append-only log written at tens of thousands of rows a second: no
    # single-column indexes on the foreign keys (the composite (experiment, id) below serves the
    # experiment's lookups; nothing queries events by arm) and no database-level foreign-key
    # checks (ingestion resolves the ids itself; deletes still cascade through the ORM).
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, null=True, blank=True, related_name="events",
        db_index=False, db_constraint=False,
    )  # fmt: skip
    arm = models.ForeignKey(
        Arm, on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False, db_constraint=False
    )
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    propensity = models.FloatField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=REVENUE_DIGITS, decimal_places=REVENUE_DECIMALS, null=True, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # Set on simulated traffic, so a run's events can be told apart and deleted.
    simulation = models.ForeignKey(
        "simulation.SimulationRun", on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        db_index=False, db_constraint=False,
    )  # fmt: skip

    class Meta:
        # A unique constraint rather than unique=True: PostgreSQL then gets only the unique index (the
        # idempotency key), not also the varchar_pattern_ops index Django adds for LIKE queries, which
        # nothing runs and every ingested event would pay to maintain.
        constraints = [models.UniqueConstraint(fields=["event_id"], name="event_id_once")]
        indexes = [
            # Rollups fold an experiment's events in id order from a watermark.
            models.Index(fields=["experiment", "id"], name="event_experiment_id"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
