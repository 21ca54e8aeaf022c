"""Celery entry points of the recommenders app, and the helpers that queue them: thin wrappers
around services, taking ids."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.contrib.auth.models import User
from django.db import transaction

from core import jobs
from recommenders.models import Evaluation, TrainingRun, Variant
from recommenders.services.datasets import refresh_dataset_counts
from recommenders.services.training import (
    TRAINING_TIME_LIMIT,
    create_evaluation,
    create_training_run,
    run_evaluation,
    run_training,
)


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def refresh_dataset_counts_task(dataset_id: int) -> dict[str, int]:
    """Recount a data set's users, items and interactions from its rows (idempotent)."""
    return refresh_dataset_counts(dataset_id)


# Training holds a worker for minutes (retried up to five times over a database outage).
_TRAINING = jobs.long_job_task(TRAINING_TIME_LIMIT, max_retries=5)


@_TRAINING
def train_variant_task(run_id: int) -> None:
    run_training(run_id)


@_TRAINING
def evaluate_variant_task(evaluation_id: int) -> None:
    run_evaluation(evaluation_id)


def queue_training(variant: Variant, requested_by: User | None = None, *, send: bool = True) -> TrainingRun:
    """Create a queued run and send it to the training queue once the transaction commits.

    With `send=False` nothing is sent: the caller runs `run_training` itself (e.g. `train --inline`).
    """
    with transaction.atomic():
        run = create_training_run(variant, requested_by)
        if send:
            jobs.enqueue(TrainingRun, run.pk, train_variant_task.delay)
    return run


def queue_evaluation(variant: Variant, *, send: bool = True, **settings: Any) -> Evaluation:
    """Validate the split settings (``create_evaluation``), create a queued evaluation and (with `send`)
    queue its task after commit."""
    with transaction.atomic():
        evaluation = create_evaluation(variant, **settings)
        if send:
            jobs.enqueue(Evaluation, evaluation.pk, evaluate_variant_task.delay)
    return evaluation


# The jobs core.jobs.recover_stale restarts when their worker dies.
jobs.register(TrainingRun, train_variant_task.delay)
jobs.register(Evaluation, evaluate_variant_task.delay)
