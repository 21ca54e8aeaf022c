"""A bandit experiment's settings and its weight schedule: what serving allocates new users with.

A bandit experiment (``Experiment.design == "bandit"``) allocates NEW users by Thompson sampling on
a binary primary metric (``engine.bandits``, Django-free). This module is the Django side that
serving, the lifecycle and the simulator share:

- ``validate_settings``: the metric must be binary (CTR or conversion), the minimum share at most
  1 / arms, burn-ins whole numbers, the update interval at least a minute.
- ``BanditUpdate`` rows are the weight history. Live traffic has one history; each simulation run
  has its own on its simulated clock (its days are in the data set's past). Period 0 (equal weights)
  is stored when the experiment starts (``start_history``) or a run begins.
- ``store_update`` inserts a period with ON CONFLICT DO NOTHING against a unique (experiment,
  history, period) constraint and reads it back, so a retried or overlapping update stores each
  period once and every caller gets the same weights. The updates themselves are computed from the
  rollups by ``analysis.services.bandit_results.update_weights``.
- Live updates start ``SWITCH_DELAY`` after they are computed: serving processes reload their
  configuration every ``serving.services.serve.CONFIG_TTL`` (1 s), so by then every process knows
  the new row and switches exactly at ``starts_at``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from engine import bucketing
from engine.bandits import ArmCounts, ThompsonConfig, WeightUpdate, thompson_update
from engine.bucketing import Allocation
from experiments.models import BanditUpdate, Experiment

BINARY_METRICS = (Experiment.Metric.CTR.value, Experiment.Metric.CONVERSION.value)
SETTINGS = ("bandit_min_share", "bandit_burn_in_trials", "bandit_burn_in_periods", "bandit_update_minutes")
# > 2 x serving's CONFIG_TTL (1 s): every serving process has reloaded the schedule before it applies.
SWITCH_DELAY = timedelta(seconds=3)
MAX_UPDATE_MINUTES = 60 * 24 * 365


def is_bandit(experiment: Experiment) -> bool:
    return experiment.design == Experiment.Design.BANDIT


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


def as_weight_update(row: BanditUpdate) -> WeightUpdate:
    return WeightUpdate.from_dict({
        "period": row.period, "weights": row.weights, "probability_best": row.probability_best,
        "posteriors": row.posteriors, "trials": row.trials, "successes": row.successes, "burn_in": row.burn_in,
    })  # fmt: skip


def history(experiment_id: int, simulation_id: int | None = None) -> list[BanditUpdate]:
    """One history's updates, period 0 first."""
    rows = BanditUpdate.objects.filter(experiment_id=experiment_id, simulation_id=simulation_id)
    return list(rows.order_by("period"))


def store_update(
    experiment_id: int, simulation_id: int | None, update: WeightUpdate, starts_at: datetime
) -> BanditUpdate:
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
    return store_update(experiment.pk, simulation_id, update, starts_at)


def start_live_history(experiment: Experiment) -> BanditUpdate | None:
    """Called when an experiment starts: period 0 of a bandit's live history at its start time."""
    if not is_bandit(experiment) or experiment.started_at is None:
        return None
    return start_history(experiment, experiment.started_at)


def live_schedule(experiment_id: int) -> tuple[tuple[float, tuple[float, ...]], ...]:
    """(starts_at as epoch seconds, weights) of the live history, oldest first, for serving."""
    rows = BanditUpdate.objects.filter(experiment_id=experiment_id, simulation_id=None).order_by("period")
    return tuple((row.starts_at.timestamp(), tuple(row.weights)) for row in rows.only("starts_at", "weights"))


def assign_sticky(allocation: Allocation, salt: str, user_ids: np.ndarray, arm_of: dict[str, int]) -> np.ndarray:
    """Arms for a simulated day's `user_ids` under a bandit: a user already in `arm_of` keeps that arm
    (as serving keeps a returning user's first exposure), a new one is bucketed by `allocation` (the
    day's weights) and remembered there; -1 (outside the experiment's traffic) is never remembered."""
    arms = np.asarray(bucketing.assign_many(allocation, salt, user_ids).arm).copy()
    for i, user in enumerate(user_ids.tolist()):
        if arms[i] >= 0:
            arms[i] = arm_of.setdefault(user, int(arms[i]))
    return arms


def histories_of(experiment: Experiment, traffic: str) -> list[int | None]:
    """The histories a traffic filter covers: None = live, else simulation run ids."""
    runs: list[int | None] = list(
        BanditUpdate.objects.filter(experiment=experiment, simulation__isnull=False)
        .values_list("simulation_id", flat=True)
        .distinct()
        .order_by("simulation_id")
    )
    histories: dict[str, list[int | None]] = {"live": [None], "simulated": runs, "all": [None, *runs]}
    return histories[traffic]


def stored_histories(experiment: Experiment, traffic: str) -> list[tuple[int | None, str, list[BanditUpdate]]]:
    """(simulation id or None, its label, its updates) of each non-empty history the filter covers."""
    found = []
    for simulation_id in histories_of(experiment, traffic):
        rows = history(experiment.pk, simulation_id)
        if rows:
            found.append((simulation_id, "live" if simulation_id is None else f"simulation {simulation_id}", rows))
    return found


def history_dict(source: str, simulation_id: int | None, rows: list[BanditUpdate], names: list[str]) -> dict[str, Any]:
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
    return [history_dict(source, sim, rows, names) for sim, source, rows in stored_histories(experiment, "all")]
