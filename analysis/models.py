"""Rollups: per-user, per-arm and per-day sufficient statistics folded from the events
(see analysis.services.rollups), the CUPED covariates, and interleaving's per-session tallies."""

from __future__ import annotations

from django.db import models

from experiments.models import Arm, Experiment


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


class CupedRollup(models.Model):
    """CUPED's sums for one arm, traffic kind and metric: n, Σy, Σy², Σx, Σx², Σxy over exposed users,
    with x = the user's interactions before the start. Refreshed after each fold that changed
    something (analysis.services.cuped), so the results read them instead of joining exposures
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
