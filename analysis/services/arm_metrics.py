"""Each arm's figures from the rollups: its users and metrics, its days, and the engine's sufficient statistics.

Units are exposed users throughout (the unit of randomisation); users with no event count as zeros. The
metrics, and the sufficient statistic the engine tests each one on (``statistic``):

    conversion_rate   purchasers / users            Proportion
    add_to_cart_rate  users adding / users          Proportion
    ctr               clicks / impressions          RatioSample, users as units (delta method)
    revenue_per_user  revenue / users               SampleMean
    clicks_per_user   clicks / users                SampleMean

Traffic: the rollups keep live and simulated users apart (``ArmRollup.simulated``); results are over live
users, simulated users, or both (``traffic="all"``, the rows added up).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Sum

from analysis.models import ArmRollup, DailyRollup
from analysis.results_types import ArmResult, DailyRow
from engine.stats import Proportion, RatioSample, SampleMean, StatisticError
from engine.verdicts import Statistic
from experiments.models import Arm, Experiment

TRAFFIC = ("all", "live", "simulated")
METRICS = ("conversion_rate", "add_to_cart_rate", "ctr", "revenue_per_user", "clicks_per_user")
_DAILY_SUMS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue")
_ARM_SUMS = ("exposed_users", "active_users", *_DAILY_SUMS, "impressions_sq", "clicks_sq", "clicks_x_impressions",
             "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip
_STAT_SUMS = ("new_users", "impressions", "clicks", "add_to_carts", "purchases", "revenue", "impressions_sq",
              "clicks_sq", "clicks_x_impressions", "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def statistic(metric: str, row: ArmRollup) -> Statistic:
    """The engine's sufficient statistic of `metric` for one arm (raises StatisticError when n = 0)."""
    n = int(row.exposed_users)
    if metric == "conversion_rate":
        return Proportion(n, int(row.purchasers))
    if metric == "add_to_cart_rate":
        return Proportion(n, int(row.adders))
    if metric == "ctr":
        return RatioSample(n, float(row.clicks), float(row.impressions), float(row.clicks_sq),
                           float(row.impressions_sq), float(row.clicks_x_impressions))  # fmt: skip
    if metric == "revenue_per_user":
        return SampleMean(n, float(row.revenue), float(row.revenue_sq))
    return SampleMean(n, float(row.clicks), float(row.clicks_sq))


def traffic_filter(traffic: str) -> dict[str, bool]:
    """The rollup rows of `traffic` (one of TRAFFIC) as a queryset filter; ValueError for anything else."""
    if traffic not in TRAFFIC:
        raise ValueError(f"traffic must be one of {', '.join(TRAFFIC)}, got {traffic!r}")
    return {} if traffic == "all" else {"simulated": traffic == "simulated"}


def arm_rows(experiment: Experiment, arms: list[Arm], traffic: str) -> dict[int, ArmRollup]:
    """One ArmRollup per arm over the chosen traffic: the live and simulated rows added field by field
    (every field is a sum over the arm's users, and a user is live or simulated, never both)."""
    rows = {arm.pk: ArmRollup(experiment=experiment, arm=arm) for arm in arms}
    for row in ArmRollup.objects.filter(experiment=experiment, **traffic_filter(traffic)):
        total = rows[row.arm_id]
        for name in _ARM_SUMS:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return rows


def arm_result(arm: Arm, row: ArmRollup) -> ArmResult:
    users = int(row.exposed_users)
    return ArmResult(
        name=arm.name,
        is_control=arm.is_control,
        weight=arm.weight,
        users=users,
        active_users=int(row.active_users),
        impressions=int(row.impressions),
        clicks=int(row.clicks),
        ctr=ratio(row.clicks, row.impressions),
        add_to_carts=int(row.add_to_carts),
        add_to_cart_rate=ratio(row.adders, users),
        purchases=int(row.purchases),
        purchasers=int(row.purchasers),
        conversion_rate=ratio(row.purchasers, users),
        revenue=float(row.revenue),
        revenue_per_user=ratio(float(row.revenue), users),
        clicks_per_user=ratio(row.clicks, users),
    )


def daily(experiment: Experiment, arms: list[Arm], traffic: str) -> dict[str, tuple[DailyRow, ...]]:
    """Each arm's days in order: newly exposed users, users so far and the day's events."""
    names = {arm.pk: arm.name for arm in arms}
    series: dict[str, list[DailyRow]] = {arm.name: [] for arm in arms}
    cumulative: dict[str, int] = dict.fromkeys(series, 0)
    days = (
        DailyRollup.objects.filter(experiment=experiment, **traffic_filter(traffic))
        .values("arm_id", "day")
        .annotate(**{name: Sum(name) for name in ("new_users", *_DAILY_SUMS)})
        .order_by("arm_id", "day")
    )
    for day in days:
        name = names[day["arm_id"]]
        cumulative[name] += day["new_users"]
        series[name].append(DailyRow(
            day=day["day"].isoformat(), new_users=day["new_users"], users=cumulative[name],
            impressions=day["impressions"], clicks=day["clicks"], ctr=ratio(day["clicks"], day["impressions"]),
            add_to_carts=day["add_to_carts"], purchases=day["purchases"], revenue=float(day["revenue"]),
        ))  # fmt: skip
    return {name: tuple(rows) for name, rows in series.items()}


def cumulative_statistics(
    experiment: Experiment, arms: list[Arm], traffic: str, metric: str
) -> list[tuple[date, dict[int, Statistic | None]]]:
    """Each arm's sufficient statistic of `metric` as of the end of each day with rollups, by the arm's pk:
    the arm's DailyRollup increments (of `traffic`) summed up to that day, None while the engine cannot
    form it (no users yet). Days in order; the lift history's looks are the tests on these."""
    rows = (
        DailyRollup.objects.filter(experiment=experiment, **traffic_filter(traffic))
        .values("day", "arm_id")
        .annotate(**{name: Sum(name) for name in _STAT_SUMS})
        .order_by("day", "arm_id")
    )
    totals = {arm.pk: dict.fromkeys(_STAT_SUMS, 0) for arm in arms}
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["day"], []).append(row)
    looks: list[tuple[date, dict[int, Statistic | None]]] = []
    for day, day_rows in by_day.items():
        for row in day_rows:
            for name in _STAT_SUMS:
                totals[row["arm_id"]][name] += row[name] or 0
        statistics: dict[int, Statistic | None] = {}
        for pk, t in totals.items():
            as_of = ArmRollup(exposed_users=t["new_users"], **{k: v for k, v in t.items() if k != "new_users"})
            try:
                statistics[pk] = statistic(metric, as_of)
            except StatisticError:
                statistics[pk] = None
        looks.append((day, statistics))
    return looks
