"""Celery entry points of the recommenders app: thin wrappers around services, taking ids."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from core import jobs
from recommenders.models import Evaluation, TrainingRun
from recommenders.services.datasets import refresh_dataset_counts
from recommenders.services.training import TRAINING_TIME_LIMIT, run_evaluation, run_training


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def refresh_dataset_counts_task(dataset_id: int) -> dict[str, int]:
    """Recount a data set's users, items and interactions from its rows (idempotent)."""
    return refresh_dataset_counts(dataset_id)


# Training holds a worker for minutes: acknowledge after the work so a crash redelivers
# the message, and retry only a database outage (every other failure is recorded).
_TRAINING = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "time_limit": TRAINING_TIME_LIMIT,
    "soft_time_limit": TRAINING_TIME_LIMIT - 60,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(**_TRAINING)
def train_variant_task(run_id: int) -> None:
    run_training(run_id)


@shared_task(**_TRAINING)
def evaluate_variant_task(evaluation_id: int) -> None:
    run_evaluation(evaluation_id)


# The jobs core.jobs.recover_stale restarts when their worker dies.
jobs.register(TrainingRun, train_variant_task.delay)
jobs.register(Evaluation, evaluate_variant_task.delay)
