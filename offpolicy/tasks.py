"""Celery entry points of the off-policy app, and the helper that queues an estimate."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from core import jobs
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from offpolicy.services.estimates import create_estimate, run_estimate
from recommenders.models import Variant


@jobs.long_job_task(1800)
def estimate_ctr_task(estimate_id: int) -> None:
    """Compute a queued off-policy estimate (claimed once: a redelivered message finds it running and returns)."""
    run_estimate(estimate_id)


def queue_estimate(
    variant: Variant, experiment: Experiment, settings: dict[str, Any] | None = None,
    requested_by: User | None = None, *, send: bool = True,
) -> OffPolicyEstimate:  # fmt: skip
    """Check the request, create a queued estimate and (with ``send``) queue its task after commit."""
    with transaction.atomic():
        estimate = create_estimate(variant, experiment, settings, requested_by)
        if send:
            jobs.enqueue(OffPolicyEstimate, estimate.pk, estimate_ctr_task.delay)
    return estimate


# The jobs core.jobs.recover_stale restarts when their worker dies.
jobs.register(OffPolicyEstimate, estimate_ctr_task.delay)
