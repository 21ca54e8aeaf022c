"""Celery entry points of the analysis app: the beat's rollup fold and bandit updates."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import OperationalError

from analysis.services.bandit_results import due_experiments, update_weights
from analysis.services.fold_window import FOLD_LAG
from analysis.services.rollups import experiments_to_fold, fold

# A beat job: acknowledged after the work, a database outage retried, at most ten minutes.
beat_job = shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=5, retry_backoff_max=60,
                       max_retries=3, soft_time_limit=600, time_limit=660)  # fmt: skip


@beat_job
def fold_rollups_task(lag_seconds: float = FOLD_LAG.total_seconds()) -> dict[str, int]:
    """Fold new events of every experiment that has some (idempotent: each fold locks its state row
    and moves a watermark, so an overlapping or redelivered run folds nothing twice).

    Returns {experiment id: events folded} for the experiments that had any.
    """
    folded: dict[str, int] = {}
    for experiment_id in experiments_to_fold():
        result = fold(experiment_id, lag=timedelta(seconds=lag_seconds))
        if result.events or result.exposures:
            folded[str(experiment_id)] = result.events
    return folded


@beat_job
def update_bandits_task() -> dict[str, int]:
    """Store the next period's weights of every running bandit experiment whose update interval has
    elapsed (idempotent: each period is stored once per experiment, by a unique constraint, so an
    overlapping or redelivered run stores nothing twice).

    Returns {experiment id: period stored} for the experiments that were due.
    """
    stored: dict[str, int] = {}
    for experiment_id in due_experiments():
        row = update_weights(experiment_id)
        if row is not None:
            stored[str(experiment_id)] = row.period
    return stored
