"""Experiments between trained recommender variants, their audit log, traffic and events."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from core.models import BackgroundJob
from recommenders.models import TrainingRun, Variant


class Experiment(models.Model):
    """An A/B test between arms (trained variant versions) on one surface.

    Lifecycle: draft -> running <-> paused -> stopped -> concluded -> archived (a draft may
    also be archived). Only drafts are freely editable; see experiments.services.lifecycle.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"
        CONCLUDED = "concluded", "Concluded"
        ARCHIVED = "archived", "Archived"

    class Surface(models.TextChoices):
        RECOMMENDATIONS = "recommendations", "Recommendations"
        SEARCH = "search", "Search"

    class Metric(models.TextChoices):
        CTR = "ctr", "Click-through rate (clicks per impression)"
        CONVERSION = "conversion_rate", "Conversion rate (purchasers per exposed user)"
        ADD_TO_CART = "add_to_cart_rate", "Add-to-cart rate (users adding per exposed user)"
        REVENUE_PER_USER = "revenue_per_user", "Revenue per exposed user"
        CLICKS_PER_USER = "clicks_per_user", "Clicks per exposed user"

    class Design(models.TextChoices):
        AB = "ab", "A/B test (fixed traffic split)"
        INTERLEAVING = "interleaving", "Interleaving of two rankers (one blended list per request)"
        BANDIT = "bandit", "Bandit allocation (weights adapt by Thompson sampling)"

    class Source(models.TextChoices):
        PLATFORM = "platform", "Served by the platform"
        IMPORTED = "imported", "Imported traffic log of an experiment run elsewhere"

    class AnalysisMethod(models.TextChoices):
        SEQUENTIAL = "sequential", "Sequential (always valid: safe to look at any time)"
        FIXED_HORIZON = "fixed_horizon", "Fixed horizon (decide once the plan's sample size is reached)"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PLATFORM)
    design = models.CharField(max_length=20, choices=Design.choices, default=Design.AB)
    hypothesis = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="experiments")
    surface = models.CharField(max_length=20, choices=Surface.choices, default=Surface.RECOMMENDATIONS)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    traffic_percent = models.FloatField(default=100.0, help_text="share of eligible users who enter, 0-100")
    exploration_percent = models.FloatField(
        default=0.0, db_default=0.0,
        help_text="share of exposed requests shown a random ordering of the arm's top items (0-20), for off-policy",
    )  # fmt: skip
    salt = models.CharField(max_length=100)
    layer = models.SlugField(max_length=100, blank=True, help_text="experiments in one layer never share a user")
    layer_share_percent = models.FloatField(default=100.0, help_text="share of the layer this experiment reserves")
    layer_start = models.PositiveIntegerField(null=True, blank=True)
    layer_end = models.PositiveIntegerField(null=True, blank=True)
    primary_metric = models.CharField(max_length=30, choices=Metric.choices, default=Metric.CTR)
    secondary_metrics = models.JSONField(default=list, blank=True)
    guardrail_metrics = models.JSONField(default=list, blank=True)
    baseline_rate = models.FloatField(null=True, blank=True)
    minimum_detectable_effect = models.FloatField(null=True, blank=True, help_text="relative, e.g. 0.05 for +5%")
    expected_daily_users = models.PositiveIntegerField(null=True, blank=True)
    alpha = models.FloatField(default=0.05)
    power = models.FloatField(default=0.8)
    # Chosen at design time and never switched by the lifecycle (stopping early must not change the test).
    analysis_method = models.CharField(
        max_length=20, choices=AnalysisMethod.choices, default=AnalysisMethod.SEQUENTIAL,
        db_default=AnalysisMethod.SEQUENTIAL,
    )  # fmt: skip
    guardrail_tolerance = models.FloatField(
        default=0.0, db_default=0.0,
        help_text="relative harm a guardrail metric may show before it counts as breached, e.g. 0.02 for -2 %",
    )  # fmt: skip
    # Bandit design only (experiments.services.bandit): Thompson-sampling allocation settings.
    bandit_min_share = models.FloatField(default=0.05, help_text="every arm gets at least this share of new users")
    bandit_burn_in_trials = models.PositiveIntegerField(
        default=1_000, help_text="equal weights until every arm has this many trials"
    )
    bandit_burn_in_periods = models.PositiveIntegerField(
        default=1, help_text="equal weights for at least this many update periods"
    )
    bandit_update_minutes = models.PositiveIntegerField(default=1_440, help_text="minutes between weight updates")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    concluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_experiment", "Can start, pause, stop and conclude experiments"),
            ("record_decision", "Can record a decision on an experiment"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(traffic_percent__gte=0, traffic_percent__lte=100), name="experiment_traffic_0_100"
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def control(self) -> Arm | None:
        return self.arms.filter(is_control=True).first()


class Arm(models.Model):
    """One arm: a variant version, its allocation weight, and (once started) the frozen training run.

    Arms of an imported experiment have no variant: their traffic was served elsewhere.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.SlugField(max_length=50)
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="arms", null=True, blank=True)
    weight = models.FloatField(default=1.0)
    is_control = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)
    training_run = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="arm_unique_name"),
            models.UniqueConstraint(fields=["experiment"], condition=models.Q(is_control=True), name="arm_one_control"),
            models.CheckConstraint(condition=models.Q(weight__gte=0), name="arm_weight_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.name}"


class ExperimentChange(models.Model):
    """The audit log: who changed what on an experiment, and when (values before and after)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="changes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=50)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "at", "id"]

    def __str__(self) -> str:
        return f"{self.experiment.key} {self.action} by {self.user}"


class Decision(models.Model):
    """A reviewer's recorded decision on an experiment."""

    class Outcome(models.TextChoices):
        SHIP = "ship", "Ship the treatment"
        KEEP_CONTROL = "keep_control", "Keep the control"
        ITERATE = "iterate", "Iterate and rerun"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    winning_arm = models.ForeignKey(Arm, on_delete=models.SET_NULL, null=True, blank=True)
    rationale = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "-at"]

    def __str__(self) -> str:
        return f"{self.experiment.key}: {self.outcome}"


class VerdictOverride(models.Model):
    """A product manager's decision to read a fixed-horizon experiment's verdict before its plan's sample
    size is reached, with the reason; the results and the report show it beside the verdict."""

    experiment = models.OneToOneField(Experiment, on_delete=models.CASCADE, related_name="verdict_override")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    reason = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.experiment.key}: early verdict by {self.user}"


class ApiToken(models.Model):
    """A client credential. Only the sha256 of the secret is stored; `prefix` identifies it in lists."""

    class Scope(models.TextChoices):
        SERVE = "serve", "Ask for recommendations"
        INGEST = "ingest", "Send events"

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Exposure(models.Model):
    """The first time a user was served an arm of an experiment (one row per user and experiment)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="exposures")
    user_id = models.CharField(max_length=100)
    bucket = models.PositiveSmallIntegerField()
    first_exposed_at = models.DateTimeField()
    simulation = models.ForeignKey(
        "SimulationRun", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_constraint=False
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
    user_id = models.CharField(max_length=100)
    exposed = models.BooleanField(help_text="False when the user is outside the experiment (served control)")
    arm_probability = models.FloatField()
    query = models.CharField(max_length=500, blank=True)
    k = models.PositiveSmallIntegerField()
    served_at = models.DateTimeField()
    # The exploration share e in force (0: none) and whether this request drew the random ordering.
    # With e > 0 its impressions' propensities are the mixture marginals (engine.offpolicy.exploration).
    exploration_share = models.FloatField(default=0.0, db_default=0.0)
    explored = models.BooleanField(default=False, db_default=False)
    simulation = models.ForeignKey(
        "SimulationRun", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_constraint=False
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
    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=20, choices=Type.choices)
    user_id = models.CharField(max_length=100)
    item_id = models.CharField(max_length=100, blank=True)
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
    revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # Set on simulated traffic, so a run's events can be told apart and deleted.
    simulation = models.ForeignKey(
        "SimulationRun", on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        db_index=False, db_constraint=False,
    )  # fmt: skip

    class Meta:
        indexes = [
            # Rollups fold an experiment's events in id order from a watermark.
            models.Index(fields=["experiment", "id"], name="event_experiment_id"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


# ---- rollups (see experiments.services.rollups for how they are folded) -----------------


class RollupState(models.Model):
    """How far an experiment's rollups have folded: the last event id and exposure id counted."""

    experiment = models.OneToOneField(Experiment, on_delete=models.CASCADE, primary_key=True, related_name="+")
    event_watermark = models.BigIntegerField(default=0)
    exposure_watermark = models.BigIntegerField(default=0)
    folded_events = models.BigIntegerField(default=0, help_text="events attributed to an arm")
    unattributed_events = models.BigIntegerField(default=0, help_text="events of users with no exposure")
    folded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.experiment_id} folded to event {self.event_watermark}"


class EventCounts(models.Model):
    """Event totals: impressions, clicks, add-to-carts, purchases and revenue."""

    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    add_to_carts = models.BigIntegerField(default=0)
    purchases = models.BigIntegerField(default=0)
    revenue = models.DecimalField(max_digits=18, decimal_places=2, default=0)

    class Meta:
        abstract = True


class UserStatistics(EventCounts):
    """EventCounts plus the per-user sufficient statistics summed over users: sums of squares,
    the clicks x impressions cross product (delta-method CTR), and how many users clicked,
    added to cart and purchased at least once."""

    impressions_sq = models.BigIntegerField(default=0)
    clicks_sq = models.BigIntegerField(default=0)
    clicks_x_impressions = models.BigIntegerField(default=0)
    revenue_sq = models.DecimalField(max_digits=32, decimal_places=4, default=0)
    clickers = models.BigIntegerField(default=0)
    adders = models.BigIntegerField(default=0)
    purchasers = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class DailyRollup(UserStatistics):
    """Counts of one arm's live or simulated users on one UTC day: event totals by the event's day,
    new users by first exposure."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    simulated = models.BooleanField(default=False, help_text="users exposed by a simulation run")
    new_users = models.BigIntegerField(default=0)
    # The UserStatistics fields hold the day's increments of the arm's statistics (ArmRollup's
    # columns of the same names), attributed to the events' day: summed over days <= D they are the arm's
    # statistics as of the end of day D, which the results use for the lift over time.

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "arm", "day", "simulated"], name="daily_rollup_once")
        ]

    def __str__(self) -> str:
        return f"{self.arm_id} {self.day}"


class UserRollup(EventCounts):
    """One exposed user's cumulative totals (kept so a fold knows each user's previous values).

    Derived rows, written 100,000 at a time by a recompute: no database foreign keys (their
    per-row checks at commit cost as much as the insert) and no index beyond the unique one,
    which also serves lookups by experiment. Django still deletes them with their experiment.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False)
    user_id = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "user_id"], name="user_rollup_once")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.arm_id}"


class ArmRollup(UserStatistics):
    """Per arm sufficient statistics over users: sums, sums of squares and the clicks x impressions
    cross product (delta-method CTR), and how many users clicked / added / purchased at least once.

    Kept up to date by each fold from the users' previous totals, so results read a few rows.
    One row per arm for live users and one for simulated users (a user is one or the other, so
    the two rows add up to the arm's statistics over all users).
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    simulated = models.BooleanField(default=False, help_text="users exposed by a simulation run")
    exposed_users = models.BigIntegerField(default=0)
    active_users = models.BigIntegerField(default=0, help_text="exposed users with at least one event")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "arm", "simulated"], name="arm_rollup_once")]

    def __str__(self) -> str:
        return f"rollup of {self.arm_id}"


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


class CupedRollup(models.Model):
    """CUPED's sums for one arm, traffic kind and metric: n, Σy, Σy², Σx, Σx², Σxy over exposed users,
    with x = the user's interactions before the start. Refreshed after each fold that changed
    something (experiments.services.cuped), so the results read them instead of joining exposures
    with the pre-period on every page view."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    simulated = models.BooleanField(default=False)
    metric = models.CharField(max_length=30)
    n = models.BigIntegerField()
    sum_y = models.FloatField()
    sum_y2 = models.FloatField()
    sum_x = models.FloatField()
    sum_x2 = models.FloatField()
    sum_xy = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "arm", "simulated", "metric"], name="cuped_rollup_once")
        ]

    def __str__(self) -> str:
        return f"CUPED {self.metric} of {self.arm_id}"


# ---- interleaving (see experiments.services.interleaving_rollups) ------------------------


class InterleavingState(models.Model):
    """How far an interleaving experiment's sessions have folded: the last event id counted, and the
    clicks that could not be credited (no interleaved list of that request holds the item)."""

    experiment = models.OneToOneField(Experiment, on_delete=models.CASCADE, primary_key=True, related_name="+")
    event_watermark = models.BigIntegerField(default=0)
    uncredited_clicks = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.experiment_id} interleaving folded to event {self.event_watermark}"


class InterleavingSession(models.Model):
    """One served interleaved list (a request) and the clicks credited to each team so far.

    Team A is the control arm, team B the other arm. `shown` is the number of impressions (the
    list's length); `day` the UTC day it was served.
    """

    request_id = models.UUIDField(primary_key=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    simulated = models.BooleanField(default=False)
    day = models.DateField()
    shown = models.PositiveSmallIntegerField(default=0)
    clicks_a = models.IntegerField(default=0)
    clicks_b = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["experiment", "day"], name="interleaving_session_day")]

    def __str__(self) -> str:
        return f"{self.request_id}: A {self.clicks_a}, B {self.clicks_b}"


class InterleavingDaily(models.Model):
    """Sessions of one UTC day (live or simulated) and their outcomes: won by A, won by B, tied."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    simulated = models.BooleanField(default=False)
    sessions = models.BigIntegerField(default=0)
    wins_a = models.BigIntegerField(default=0)
    wins_b = models.BigIntegerField(default=0)
    ties = models.BigIntegerField(default=0)
    clicks_a = models.BigIntegerField(default=0, help_text="clicks credited to team A in the day's sessions")
    clicks_b = models.BigIntegerField(default=0, help_text="clicks credited to team B in the day's sessions")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "day", "simulated"], name="interleaving_daily_once")
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id} {self.day}: A {self.wins_a}, B {self.wins_b}, ties {self.ties}"


class BanditUpdate(models.Model):
    """One stored Thompson-sampling weight update (``engine.bandits.WeightUpdate``).

    The weights apply to users first exposed at ``starts_at`` or later, until the next period's
    ``starts_at``: those users are the period's cohort. Live traffic has one history
    (``simulation`` null); each simulation run of a bandit experiment has its own, on its
    simulated clock. Unique per (experiment, history, period), so a retried or concurrent update
    stores each period once. Lists are per arm, in arm position order.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="bandit_updates")
    simulation = models.ForeignKey(
        SimulationRun, on_delete=models.CASCADE, null=True, blank=True, related_name="bandit_updates"
    )
    period = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    computed_at = models.DateTimeField(auto_now_add=True)
    weights = models.JSONField()
    probability_best = models.JSONField()
    posteriors = models.JSONField()
    trials = models.JSONField()
    successes = models.JSONField()
    burn_in = models.BooleanField()

    class Meta:
        ordering = ["experiment", "simulation", "period"]
        constraints = [
            # Two partial constraints: NULLs are distinct in a plain unique constraint.
            models.UniqueConstraint(
                fields=["experiment", "period"], condition=models.Q(simulation__isnull=True), name="bandit_live_once"
            ),
            models.UniqueConstraint(
                fields=["experiment", "simulation", "period"],
                condition=models.Q(simulation__isnull=False),
                name="bandit_simulated_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id} period {self.period}"


class OffPolicyEstimate(BackgroundJob):
    """A candidate variant's predicted online CTR from an experiment's logged impressions.

    The candidate is the variant's training run (its frozen model ranks each logged request);
    the log source is an experiment: platform traffic served with an exploration share, or an
    imported log with propensities. ``result`` holds IPS, SNIPS and DR with their bootstrap
    intervals, the effective sample size, per-position IPS and the coverage of the logs (see
    experiments.services.offpolicy); ``warnings`` and ``method`` are shown as they are.
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
