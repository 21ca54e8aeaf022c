"""A bandit experiment's weight updates and results: cohort counts from the rollups.

A bandit experiment (``Experiment.design == "bandit"``) allocates NEW users by Thompson sampling on
a binary primary metric (``engine.bandits``, Django-free). This module is the Django side:

- ``validate_settings``: the metric must be binary (CTR or conversion), the minimum share at most
  1 / arms, burn-ins whole numbers, the update interval at least a minute.
- ``BanditUpdate`` rows are the weight history. Live traffic has one history; each simulation run
  has its own on its simulated clock (its days are in the data set's past). Period 0 (equal weights)
  is stored when the experiment starts (``start_history``) or a run begins.
- ``update_weights``: if the interval since the last period's start has elapsed, fold the rollups,
  sum each arm's counts from them (``cohort_counts``) and store ``thompson_update`` for the next
  period. Idempotent and safe concurrently: the row is inserted with ON CONFLICT DO NOTHING against
  a unique (experiment, history, period) constraint and read back, so a retried or overlapping run
  stores each period once and every caller gets the same weights.
- Live updates start ``SWITCH_DELAY`` after they are computed: serving processes reload their
  configuration every ``serving.CONFIG_TTL`` (1 s), so by then every process knows the new row and
  switches exactly at ``starts_at``. A user's cohort is then exactly the period whose ``starts_at``
  precedes their ``first_exposed_at`` (serving picks the weights with the same clock reading it
  stores as the exposure time).

Counts (``cohort_counts``): the rollups' per-user totals (``UserRollup``) joined with the users'
first exposures (``Exposure.first_exposed_at``, bucketed by the history's ``starts_at`` values),
limited to the exposures the rollups have folded. Per cohort and arm: users, purchasers, users who
clicked, impressions and clicks, and the per-user sums of clicks², impressions² and clicks ×
impressions. The allocation uses, per arm, summed over cohorts:

    conversion_rate  trials = users        successes = purchasers   design effect 1
    ctr              trials = impressions  successes = clicks       design effect from the user sums
                                                                    (``ctr_design_effect``)

and the analysis (``bandit_results``) compares users within cohorts: conversion = purchasers / users,
CTR as the share of users who clicked at least once (the user is the randomisation unit; clicks per
impression are correlated within a user, see ``engine.bandits.thompson``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from analysis.models import RollupState, UserRollup
from analysis.results_types import BanditAnalysis, BanditCohort, BanditComparison, BanditSrm, PooledArm
from analysis.services.fold_window import FOLD_LAG
from analysis.services.rollups import fold
from engine.bandits import (
    ArmCounts,
    BanditError,
    PeriodData,
    bandit_srm,
    cohort_data,
    ctr_design_effect,
    pooled_counts,
    stratified_comparison,
    thompson_update,
)
from engine.stats import RatioSample, adjust_pvalues
from engine.verdicts import verdict_of
from experiments.models import Arm, BanditUpdate, Experiment
from experiments.services.bandit_schedule import (
    SETTINGS,
    SWITCH_DELAY,
    as_weight_update,
    history,
    history_dict,
    is_bandit,
    start_history,
    store_update,
    stored_histories,
    thompson_config,
)
from serving.models import Exposure


def update_weights(
    experiment_id: int, *, at: datetime | None = None, simulation_id: int | None = None
) -> BanditUpdate | None:
    """Store the next period's weights if the update interval has elapsed at ``at`` (default now).

    Returns the stored row (new, or the one a concurrent run stored first), None when not due or
    when the experiment is not a bandit. Live: folds with the usual lag, starts after
    SWITCH_DELAY. A simulation run: folds everything (its rows are written), starts at ``at``.
    """
    experiment = Experiment.objects.get(pk=experiment_id)
    if not is_bandit(experiment):
        return None
    at = at or timezone.now()
    rows = history(experiment_id, simulation_id)
    if not rows:
        start_history(experiment, experiment.started_at or at, simulation_id)
        rows = history(experiment_id, simulation_id)
    last = rows[-1]
    if at - last.starts_at < timedelta(minutes=experiment.bandit_update_minutes):
        return None
    fold(experiment_id, lag=FOLD_LAG if simulation_id is None else timedelta(0))
    arms = list(experiment.arms.order_by("position", "pk"))
    cohorts = cohort_counts(experiment, arms, [r.starts_at for r in rows], simulation_id)
    counts = _allocation_counts(experiment.primary_metric, cohorts, len(arms))
    update = thompson_update(counts, last.period + 1, thompson_config(experiment))
    starts_at = at + SWITCH_DELAY if simulation_id is None else at
    return store_update(experiment_id, simulation_id, update, starts_at)


def due_experiments() -> list[int]:
    """Running bandit experiments (the beat task checks each one's interval itself)."""
    return list(
        Experiment.objects.filter(design=Experiment.Design.BANDIT, status=Experiment.Status.RUNNING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True, slots=True)
class CohortCounts:
    """Per arm (position order) counts of the users first exposed in one period."""

    period: int
    users: tuple[int, ...]
    purchasers: tuple[int, ...]
    clickers: tuple[int, ...]
    impressions: tuple[int, ...]
    clicks: tuple[int, ...]
    clicks_squared: tuple[int, ...]  # sum over the users of clicks², impressions², clicks × impressions
    impressions_squared: tuple[int, ...]
    clicks_impressions: tuple[int, ...]


def cohort_counts(
    experiment: Experiment, arms: Sequence[Arm], starts: Sequence[datetime], simulation_id: int | None
) -> list[CohortCounts]:
    """Per period (by ``starts``, period 0 first) and arm: counts over the folded exposures of one
    history (live users when ``simulation_id`` is None) joined with their UserRollup totals."""
    watermark = RollupState.objects.filter(pk=experiment.pk).values_list("exposure_watermark", flat=True).first()
    index = {arm.pk: i for i, arm in enumerate(arms)}
    empty = [[0] * len(arms) for _ in range(8)]
    table: list[list[list[int]]] = [[list(column) for column in empty] for _ in starts]
    if watermark:
        # Latest start first: each exposure falls in the last period that started at or before it.
        cases = " ".join(f"WHEN x.first_exposed_at >= %s THEN {p}" for p in range(len(starts) - 1, 0, -1))
        period = f"CASE {cases} ELSE 0 END" if cases else "0"
        traffic = "x.simulation_id IS NULL" if simulation_id is None else "x.simulation_id = %s"
        sql = f"""
            SELECT {period} AS period, x.arm_id, COUNT(*),
                   SUM(CASE WHEN r.purchases > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN r.clicks > 0 THEN 1 ELSE 0 END),
                   COALESCE(SUM(r.impressions), 0), COALESCE(SUM(r.clicks), 0),
                   COALESCE(SUM(CAST(r.clicks AS BIGINT) * r.clicks), 0),
                   COALESCE(SUM(CAST(r.impressions AS BIGINT) * r.impressions), 0),
                   COALESCE(SUM(CAST(r.clicks AS BIGINT) * r.impressions), 0)
            FROM {Exposure._meta.db_table} x
            LEFT JOIN {UserRollup._meta.db_table} r ON r.experiment_id = x.experiment_id AND r.user_id = x.user_id
            WHERE x.experiment_id = %s AND x.id <= %s AND {traffic}
            GROUP BY 1, 2"""
        params: list[Any] = [*list(reversed(starts[1:])), experiment.pk, watermark]
        if simulation_id is not None:
            params.append(simulation_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for p, arm_id, *values in cursor.fetchall():
                for column, value in enumerate(values):
                    table[int(p)][column][index[arm_id]] = int(value or 0)
    return [
        CohortCounts(p, *(tuple(column) for column in columns))  # type: ignore[arg-type]
        for p, columns in enumerate(table)
    ]


def _allocation_counts(metric: str, cohorts: Sequence[CohortCounts], arms: int) -> list[ArmCounts]:
    """Per arm (trials, successes, design effect) summed over cohorts: users/purchasers, or
    impressions/clicks with the design effect of the arm's CTR over its users."""
    if metric == Experiment.Metric.CONVERSION:
        return [
            ArmCounts(trials=sum(c.users[a] for c in cohorts), successes=sum(c.purchasers[a] for c in cohorts))
            for a in range(arms)
        ]
    counts = []
    for a in range(arms):
        users = sum(c.users[a] for c in cohorts)
        clicks, impressions = sum(c.clicks[a] for c in cohorts), sum(c.impressions[a] for c in cohorts)
        design_effect = 1.0
        if users >= 2:
            design_effect = ctr_design_effect(RatioSample(
                n=users, sum_x=clicks, sum_y=impressions, sum_x2=sum(c.clicks_squared[a] for c in cohorts),
                sum_y2=sum(c.impressions_squared[a] for c in cohorts),
                sum_xy=sum(c.clicks_impressions[a] for c in cohorts),
            ))  # fmt: skip
        counts.append(ArmCounts(trials=impressions, successes=clicks, design_effect=design_effect))
    return counts


def _successes(metric: str, cohort: CohortCounts) -> tuple[int, ...]:
    return cohort.purchasers if metric == Experiment.Metric.CONVERSION else cohort.clickers


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def bandit_results(experiment: Experiment, arms: Sequence[Arm], traffic: str, srm_alpha: float) -> BanditAnalysis:
    """The bandit block of the results: weights (current and history), cohorts, the period-weighted
    comparison of each treatment with the control (batched z test, Holm-adjusted across treatments:
    ``p_value_adjusted`` is what the verdict rests on) and the SRM check against the weights served in each period."""
    names = [arm.name for arm in arms]
    control = next((i for i, arm in enumerate(arms) if arm.is_control), 0)
    metric = experiment.primary_metric
    histories: list[dict[str, Any]] = []
    cohorts: list[BanditCohort] = []
    periods: list[PeriodData] = []
    for simulation_id, source, rows in stored_histories(experiment, traffic):
        histories.append(history_dict(source, simulation_id, rows, names))
        counts = cohort_counts(experiment, arms, [r.starts_at for r in rows], simulation_id)
        for row, cohort in zip(rows, counts, strict=True):
            data = cohort_data(as_weight_update(row), cohort.users, _successes(metric, cohort))
            cohorts.append(BanditCohort(source, row.period, row.starts_at.isoformat(), tuple(data.weights),
                                        tuple(data.users), tuple(data.successes)))  # fmt: skip
            if data.total_users:
                # Periods of all histories are strata of one analysis: number them in sequence.
                periods.append(PeriodData(len(periods), data.weights, data.users, data.successes))
    current = histories[0]["updates"][-1]["weights"] if histories else dict.fromkeys(names, 1 / len(names))
    block = BanditAnalysis(
        metric=metric,
        success="purchased" if metric == Experiment.Metric.CONVERSION else "clicked at least once",
        settings={name.removeprefix("bandit_"): getattr(experiment, name) for name in SETTINGS},
        current_weights=current,
        current_source=histories[0]["source"] if histories else None,
        histories=tuple(histories),
        cohorts=tuple(cohorts),
    )
    if not periods:
        return replace(block, error="no exposed users in any period yet")
    try:
        comparisons = stratified_comparison(periods, control=control, confidence=1 - experiment.alpha)
        srm = bandit_srm(periods, alpha=srm_alpha)
    except BanditError as error:
        return replace(block, error=str(error))
    adjusted = adjust_pvalues([c.batched_p_value for c in comparisons], "holm", experiment.alpha).adjusted
    return replace(
        block,
        comparisons=tuple(
            BanditComparison(
                arm=names[c.arm], control=names[c.control], arm_rate=c.arm_rate, control_rate=c.control_rate,
                effect=c.effect, std_error=c.std_error, ci_low=c.ci_low, ci_high=c.ci_high, wald_p_value=c.p_value,
                batched_z=c.batched_z, batched_p_value=c.batched_p_value, batched_periods=c.batched_periods,
                p_value_adjusted=float(p_adjusted), lift=_finite(c.lift), lift_ci_low=_finite(c.lift_ci_low),
                lift_ci_high=_finite(c.lift_ci_high), confidence=c.confidence, users=c.users,
                periods_used=len(c.periods_used), periods_skipped=len(c.periods_skipped),
                verdict=verdict_of(c.effect, float(p_adjusted), experiment.alpha),
            )
            for c, p_adjusted in zip(comparisons, adjusted, strict=True)
        ),
        srm=BanditSrm(
            p_value=srm.pooled.p_value, chi2=srm.pooled.chi2, mismatch=srm.mismatch,
            pooled_mismatch=srm.pooled.mismatch, alpha=srm_alpha, period_alpha=srm.period_alpha,
            observed=dict(zip(names, (sum(p.users[a] for p in periods) for a in range(len(names))), strict=True)),
            expected=dict(zip(names, srm.expected, strict=True)),
            periods_alarming=tuple(i for i, r in enumerate(srm.per_period) if r is not None and r.mismatch),
        ),
        pooled=tuple(PooledArm(name, users, successes)
                     for name, (users, successes) in zip(names, pooled_counts(periods), strict=True)),
    )  # fmt: skip
