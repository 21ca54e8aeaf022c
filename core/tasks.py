"""Celery entry points shared by every app."""

from __future__ import annotations

from celery import shared_task

from core.jobs import recover_stale


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def recover_stale_jobs_task() -> dict[str, list[int]]:
    """Restart the jobs whose worker stopped beating (run every minute by the beat)."""
    return recover_stale()
