"""Experiments between trained recommender variants: design, arms, lifecycle audit, decisions,
and the weight schedule a bandit experiment serves with."""

from __future__ import annotations

from django.conf import settings
from django.db import models

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
    auto_pause = models.BooleanField(
        default=False, db_default=False,
        help_text="pause the experiment when an srm or guardrail alert opens (ops.services.alerts)",
    )  # fmt: skip
    # Bandit design only (analysis.services.bandit_results): Thompson-sampling allocation settings.
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
        "simulation.SimulationRun", on_delete=models.CASCADE, null=True, blank=True, related_name="bandit_updates"
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
