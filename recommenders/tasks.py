"""Celery entry points of the recommenders app: thin wrappers around services, taking ids."""

from __future__ import annotations

from celery import shared_task

from recommenders.services.datasets import refresh_dataset_counts


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def refresh_dataset_counts_task(dataset_id: int) -> dict[str, int]:
    """Recount a data set's users, items and interactions from its rows (idempotent)."""
    return refresh_dataset_counts(dataset_id)
