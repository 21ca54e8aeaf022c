"""The bandit experiment mode: settings, the stored weight history, its updates and cohort counts.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import connection
from django.utils import timezone

from engine import bucketing
from engine.bandits import (
    ArmCounts,
    BanditError,
    PeriodData,
    ThompsonConfig,
    WeightUpdate,
    bandit_srm,
    cohort_data,
    ctr_design_effect,
    pooled_counts,
    stratified_comparison,
    thompson_update,
)
from engine.bucketing import Allocation
from engine.stats import RatioSample, adjust_pvalues
from experiments.models import Arm, BanditUpdate, Experiment, Exposure, RollupState, UserRollup
from experiments.services.rollups import FOLD_LAG, fold

BINARY_METRICS = (Experiment.Metric.CTR.value, Experiment.Metric.CONVERSION.value)
SETTINGS = ("bandit_min_share", "bandit_burn_in_trials", "bandit_burn_in_periods", "bandit_update_minutes")
# > 2 x serving.CONFIG_TTL (1 s): every serving process has reloaded the schedule before it applies.
SWITCH_DELAY = timedelta(seconds=3)
MAX_UPDATE_MINUTES = 60 * 24 * 365


def is_bandit(experiment: Experiment) -> bool:
    return experiment.design == Experiment.Design.BANDIT


# ---- settings ------------------------------------------------------------------------------


def validate_settings(fields: Mapping[str, Any], arm_count: int) -> dict[str, str]:
    """Field errors of a bandit experiment's settings ({} when valid, or when the design is not bandit)."""
    if fields.get("design") != Experiment.Design.BANDIT:
        return {}
    errors: dict[str, str] = {}
    if fields.get("primary_metric") not in BINARY_METRICS:
        errors["primary_metric"] = (
            "a bandit allocates on a binary metric: use ctr (click-through rate) or conversion_rate, "
            f"not {fields.get('primary_metric')!r}"
        )
    share = fields.get("bandit_min_share", 0.05)
    ceiling = 1.0 / max(arm_count, 2)
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        errors["bandit_min_share"] = f"expected a number, got {share!r}"
    elif not 0.0 <= share <= ceiling:
        errors["bandit_min_share"] = f"must lie in [0, {ceiling:.4g}]: {arm_count} arms cannot each get more"
    for name, low in (("bandit_burn_in_trials", 0), ("bandit_burn_in_periods", 0), ("bandit_update_minutes", 1)):
        value = fields.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            errors[name] = f"a whole number of at least {low}, got {value!r}"
    minutes = fields.get("bandit_update_minutes")
    if "bandit_update_minutes" not in errors and isinstance(minutes, int) and minutes > MAX_UPDATE_MINUTES:
        errors["bandit_update_minutes"] = f"at most {MAX_UPDATE_MINUTES:,} minutes (a year)"
    return errors


def thompson_config(experiment: Experiment) -> ThompsonConfig:
    return ThompsonConfig(
        min_share=experiment.bandit_min_share,
        burn_in_trials=experiment.bandit_burn_in_trials,
        burn_in_periods=experiment.bandit_burn_in_periods,
    )


# ---- the weight history --------------------------------------------------------------------


def as_weight_update(row: BanditUpdate) -> WeightUpdate:
    return WeightUpdate.from_dict({
        "period": row.period, "weights": row.weights, "probability_best": row.probability_best,
        "posteriors": row.posteriors, "trials": row.trials, "successes": row.successes, "burn_in": row.burn_in,
    })  # fmt: skip


def history(experiment_id: int, simulation_id: int | None = None) -> list[BanditUpdate]:
    """One history's updates, period 0 first."""
    rows = BanditUpdate.objects.filter(experiment_id=experiment_id, simulation_id=simulation_id)
    return list(rows.order_by("period"))


def _store(experiment_id: int, simulation_id: int | None, update: WeightUpdate, starts_at: datetime) -> BanditUpdate:
    """Insert the update unless its period is stored already; return the stored row either way."""
    data = update.to_dict()
    row = BanditUpdate(
        experiment_id=experiment_id, simulation_id=simulation_id, period=update.period, starts_at=starts_at,
        weights=data["weights"], probability_best=data["probability_best"], posteriors=data["posteriors"],
        trials=data["trials"], successes=data["successes"], burn_in=data["burn_in"],
    )  # fmt: skip
    BanditUpdate.objects.bulk_create([row], ignore_conflicts=True)  # ON CONFLICT DO NOTHING
    return BanditUpdate.objects.get(experiment_id=experiment_id, simulation_id=simulation_id, period=update.period)


def start_history(experiment: Experiment, starts_at: datetime, simulation_id: int | None = None) -> BanditUpdate:
    """Period 0 of a history: equal weights from ``starts_at`` (idempotent)."""
    arms = experiment.arms.count()
    update = thompson_update([ArmCounts(0, 0)] * arms, 0, thompson_config(experiment))
    return _store(experiment.pk, simulation_id, update, starts_at)


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
    return _store(experiment_id, simulation_id, update, starts_at)


def assign_sticky(allocation: Allocation, salt: str, user_ids: np.ndarray, arm_of: dict[str, int]) -> np.ndarray:
    """Arms for a simulated day's `user_ids` under a bandit: a user already in `arm_of` keeps that arm
    (as serving keeps a returning user's first exposure), a new one is bucketed by `allocation` (the
    day's weights) and remembered there; -1 (outside the experiment's traffic) is never remembered."""
    arms = np.asarray(bucketing.assign_many(allocation, salt, user_ids).arm).copy()
    for i, user in enumerate(user_ids.tolist()):
        if arms[i] >= 0:
            arms[i] = arm_of.setdefault(user, int(arms[i]))
    return arms


def due_experiments() -> list[int]:
    """Running bandit experiments (the beat task checks each one's interval itself)."""
    return list(
        Experiment.objects.filter(design=Experiment.Design.BANDIT, status=Experiment.Status.RUNNING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def live_schedule(experiment_id: int) -> tuple[tuple[float, tuple[float, ...]], ...]:
    """(starts_at as epoch seconds, weights) of the live history, oldest first, for serving."""
    rows = BanditUpdate.objects.filter(experiment_id=experiment_id, simulation_id=None).order_by("period")
    return tuple((row.starts_at.timestamp(), tuple(row.weights)) for row in rows.only("starts_at", "weights"))


# ---- counts from the rollups ---------------------------------------------------------------


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


# ---- results -------------------------------------------------------------------------------


def _histories(experiment: Experiment, traffic: str) -> list[int | None]:
    """The histories a traffic filter covers: None = live, else simulation run ids."""
    runs = list(
        BanditUpdate.objects.filter(experiment=experiment, simulation__isnull=False)
        .values_list("simulation_id", flat=True)
        .distinct()
        .order_by("simulation_id")
    )
    return {"live": [None], "simulated": runs, "all": [None, *runs]}[traffic]  # type: ignore[list-item]


def _stored_histories(experiment: Experiment, traffic: str) -> list[tuple[int | None, str, list[BanditUpdate]]]:
    """(simulation id or None, its label, its updates) of each non-empty history the filter covers."""
    found = []
    for simulation_id in _histories(experiment, traffic):
        rows = history(experiment.pk, simulation_id)
        if rows:
            found.append((simulation_id, "live" if simulation_id is None else f"simulation {simulation_id}", rows))
    return found


def _history_dict(source: str, simulation_id: int | None, rows: list[BanditUpdate], names: list[str]) -> dict[str, Any]:
    return {
        "source": source, "simulation": simulation_id,
        "updates": [
            {"period": r.period, "starts_at": r.starts_at.isoformat(),
             "weights": dict(zip(names, r.weights, strict=True)),
             "probability_best": dict(zip(names, r.probability_best, strict=True)), "burn_in": r.burn_in,
             "trials": r.trials, "successes": r.successes, "posteriors": r.posteriors}
            for r in rows
        ],
    }  # fmt: skip


def weight_histories(experiment: Experiment) -> list[dict[str, Any]]:
    """Every stored history (live first, then simulation runs) as in the results' bandit block."""
    names = list(experiment.arms.order_by("position", "pk").values_list("name", flat=True))
    return [_history_dict(source, sim, rows, names) for sim, source, rows in _stored_histories(experiment, "all")]


def bandit_results(experiment: Experiment, arms: Sequence[Arm], traffic: str, srm_alpha: float) -> dict[str, Any]:
    """The bandit block of the results: weights (current and history), cohorts, the period-weighted
    comparison of each treatment with the control (batched z test, Holm-adjusted across treatments:
    ``p_value_adjusted`` is what the verdict rests on) and the SRM check against the weights served in each period."""
    names = [arm.name for arm in arms]
    control = next((i for i, arm in enumerate(arms) if arm.is_control), 0)
    metric = experiment.primary_metric
    histories: list[dict[str, Any]] = []
    cohorts: list[dict[str, Any]] = []
    periods: list[PeriodData] = []
    for simulation_id, source, rows in _stored_histories(experiment, traffic):
        histories.append(_history_dict(source, simulation_id, rows, names))
        counts = cohort_counts(experiment, arms, [r.starts_at for r in rows], simulation_id)
        for row, cohort in zip(rows, counts, strict=True):
            data = cohort_data(as_weight_update(row), cohort.users, _successes(metric, cohort))
            cohorts.append({"source": source, "period": row.period, "starts_at": row.starts_at.isoformat(),
                            "served_weights": list(data.weights), "users": list(data.users),
                            "successes": list(data.successes)})  # fmt: skip
            if data.total_users:
                # Periods of all histories are strata of one analysis: number them in sequence.
                periods.append(PeriodData(len(periods), data.weights, data.users, data.successes))
    current = histories[0]["updates"][-1]["weights"] if histories else dict.fromkeys(names, 1 / len(names))
    block: dict[str, Any] = {
        "metric": metric,
        "success": "purchased" if metric == Experiment.Metric.CONVERSION else "clicked at least once",
        "settings": {name.removeprefix("bandit_"): getattr(experiment, name) for name in SETTINGS},
        "current_weights": current,
        "current_source": histories[0]["source"] if histories else None,
        "histories": histories,
        "cohorts": cohorts,
        "comparisons": [],
        "srm": None,
        "pooled": None,
        "error": None,
    }
    if not periods:
        block["error"] = "no exposed users in any period yet"
        return block
    try:
        comparisons = stratified_comparison(periods, control=control, confidence=1 - experiment.alpha)
        srm = bandit_srm(periods, alpha=srm_alpha)
    except BanditError as error:
        block["error"] = str(error)
        return block
    adjusted = adjust_pvalues([c.batched_p_value for c in comparisons], "holm", experiment.alpha).adjusted
    for comparison, p_adjusted in zip(comparisons, adjusted, strict=True):
        block["comparisons"].append({
            "arm": names[comparison.arm], "control": names[comparison.control],
            "arm_rate": comparison.arm_rate, "control_rate": comparison.control_rate,
            "effect": comparison.effect, "std_error": comparison.std_error,
            "ci_low": comparison.ci_low, "ci_high": comparison.ci_high, "wald_p_value": comparison.p_value,
            "batched_z": comparison.batched_z, "batched_p_value": comparison.batched_p_value,
            "batched_periods": comparison.batched_periods, "p_value_adjusted": float(p_adjusted),
            "lift": comparison.lift, "lift_ci_low": comparison.lift_ci_low, "lift_ci_high": comparison.lift_ci_high,
            "confidence": comparison.confidence, "users": comparison.users,
            "periods_used": len(comparison.periods_used), "periods_skipped": len(comparison.periods_skipped),
        })  # fmt: skip
    block["srm"] = {
        "p_value": srm.pooled.p_value, "chi2": srm.pooled.chi2, "mismatch": srm.mismatch,
        "pooled_mismatch": srm.pooled.mismatch, "alpha": srm_alpha, "period_alpha": srm.period_alpha,
        "observed": dict(zip(names, (sum(p.users[a] for p in periods) for a in range(len(names))), strict=True)),
        "expected": dict(zip(names, srm.expected, strict=True)),
        "periods_alarming": [i for i, r in enumerate(srm.per_period) if r is not None and r.mismatch],
    }  # fmt: skip
    block["pooled"] = [
        {"arm": name, "users": users, "successes": successes}
        for name, (users, successes) in zip(names, pooled_counts(periods), strict=True)
    ]
    return block


def start_live_history(experiment: Experiment) -> BanditUpdate | None:
    """Called when an experiment starts: period 0 of a bandit's live history at its start time."""
    if not is_bandit(experiment) or experiment.started_at is None:
        return None
    return start_history(experiment, experiment.started_at)
