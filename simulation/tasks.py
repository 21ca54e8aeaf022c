"""Celery entry points of the simulation app, and the helper that queues a run."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.contrib.auth.models import User
from django.db import transaction

from core import jobs
from experiments.models import Experiment
from simulation.models import SimulationRun
from simulation.services.demo import run_demo_experiment
from simulation.services.runs import create_simulation, run_simulation


@jobs.long_job_task(3600)
def simulate_task(simulation_id: int) -> None:
    """Run a queued simulation (claimed once: a redelivered message finds it running and returns)."""
    run_simulation(simulation_id)


@shared_task(acks_late=True, soft_time_limit=3540, time_limit=3600)
def demo_experiment_task() -> str:
    """Create, start and simulate the demo experiment (idempotent; see services.demo)."""
    return run_demo_experiment()


def queue_simulation(
    experiment: Experiment, settings: dict[str, Any], requested_by: User | None = None, *, send: bool = True
) -> SimulationRun:
    """Check the experiment and the settings, create a queued run and (with `send`) queue its task after commit."""
    with transaction.atomic():
        simulation = create_simulation(experiment, settings, requested_by)
        if send:
            jobs.enqueue(SimulationRun, simulation.pk, simulate_task.delay)
    return simulation


# The jobs core.jobs.recover_stale restarts when their worker dies.
jobs.register(SimulationRun, simulate_task.delay)
