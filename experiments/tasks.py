"""Celery entry points of the experiments app: thin wrappers around services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.db import OperationalError

from core import jobs
from experiments.models import OffPolicyEstimate, SimulationRun
from experiments.services.rollups import FOLD_LAG, experiments_to_fold, fold


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
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


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def update_bandits_task() -> dict[str, int]:
    """Store the next period's weights of every running bandit experiment whose update interval has
    elapsed (idempotent: each period is stored once per experiment, by a unique constraint, so an
    overlapping or redelivered run stores nothing twice).

    Returns {experiment id: period stored} for the experiments that were due.
    """
    from experiments.services.bandit import due_experiments, update_weights

    stored: dict[str, int] = {}
    for experiment_id in due_experiments():
        row = update_weights(experiment_id)
        if row is not None:
            stored[str(experiment_id)] = row.period
    return stored


def _long_job(seconds: int) -> dict[str, Any]:
    """Options of a job that holds a worker for minutes: acknowledged after the work (a crash redelivers
    it; the body claims its row once), database outages retried, a hard limit of ``seconds``."""
    return {"acks_late": True, "reject_on_worker_lost": True, "autoretry_for": (OperationalError,),
            "retry_backoff": 5, "max_retries": 3, "soft_time_limit": seconds - 60, "time_limit": seconds}  # fmt: skip


@shared_task(**_long_job(3600))
def simulate_task(simulation_id: int) -> None:
    """Run a queued simulation (claimed once: a redelivered message finds it running and returns)."""
    from experiments.services.simulation import run_simulation

    run_simulation(simulation_id)


@shared_task(acks_late=True, soft_time_limit=3540, time_limit=3600)
def demo_experiment_task() -> str:
    """Create, start and simulate the demo experiment (idempotent; see services.demo)."""
    from experiments.services.demo import run_demo_experiment

    return run_demo_experiment()


@shared_task(**_long_job(1800))
def estimate_ctr_task(estimate_id: int) -> None:
    """Compute a queued off-policy estimate (claimed once: a redelivered message finds it running and returns)."""
    from experiments.services.offpolicy import run_estimate

    run_estimate(estimate_id)


# The jobs core.jobs.recover_stale restarts when their worker dies.
jobs.register(SimulationRun, simulate_task.delay)
jobs.register(OffPolicyEstimate, estimate_ctr_task.delay)
