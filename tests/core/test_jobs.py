"""One lifecycle for every background job: claimed once, heartbeats while running, a job whose worker died
is restarted by the next worker, a broker outage fails the job with the reason (503 in the API)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from abplatform.celery import app
from core import jobs
from recommenders.models import TrainingRun, Variant
from serving.models import Event
from simulation.models import SimulationRun
from simulation.tasks import queue_simulation
from tests.celery_worker import worker
from tests.experiments.factories import held_out_experiment
from tests.recommenders.factories import retail_sample

FAST = {"ABPLATFORM_JOB_HEARTBEAT_SECONDS": "1", "ABPLATFORM_JOB_STALE_SECONDS": "4"}


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


@pytest.mark.django_db
def test_a_job_is_claimed_once_unless_its_worker_stopped_beating(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.JOB_STALE_SECONDS = 120
    variant = Variant.objects.create(name="v", version=1, algorithm="popularity",
                                     dataset=retail_sample(tmp_path, rows=50))  # fmt: skip
    run = TrainingRun.objects.create(variant=variant)
    assert jobs.claim(TrainingRun, run.pk)
    assert not jobs.claim(TrainingRun, run.pk)  # a second delivery of the same message: nothing to do
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=119))
    assert not jobs.claim(TrainingRun, run.pk)  # silent, but not for long enough
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=121), progress=33)
    assert jobs.claim(TrainingRun, run.pk)  # its worker died: the next one takes it over, from the start
    assert TrainingRun.objects.get(pk=run.pk).progress == 0
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert not jobs.claim(TrainingRun, run.pk)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_while_the_job_runs(tmp_path: Path) -> None:
    variant = Variant.objects.create(name="v", version=1, algorithm="popularity",
                                     dataset=retail_sample(tmp_path, rows=50))  # fmt: skip
    run = TrainingRun.objects.create(variant=variant)
    assert jobs.claim(TrainingRun, run.pk)
    first = TrainingRun.objects.get(pk=run.pk).heartbeat_at
    with jobs.heartbeat(TrainingRun, run.pk, every=0.2):
        _until(lambda: TrainingRun.objects.get(pk=run.pk).heartbeat_at != first, 10, "a heartbeat")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_simulation_whose_worker_is_killed_is_restarted_by_the_next_worker(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    import simulation.tasks  # noqa: F401  (registers the simulation jobs with core.jobs)

    experiment = held_out_experiment(tmp_path)  # trained here; the workers read the same artifacts
    settings.JOB_HEARTBEAT_SECONDS, settings.JOB_STALE_SECONDS = 1, 4
    env = {**FAST, "ABPLATFORM_ARTIFACT_DIR": str(settings.ARTIFACT_DIR)}
    with worker(120, "training", env) as (_, first):
        run = queue_simulation(experiment, {"daily_users": 3000, "days": 30, "seed": 4})
        _until(lambda: SimulationRun.objects.get(pk=run.pk).progress >= 10, 120, "the simulation to be under way")
        os.kill(first.pid, signal.SIGKILL)  # the worker dies mid-run, as under kill -9 or the OOM killer
        first.wait(10)
    killed = SimulationRun.objects.get(pk=run.pk)
    assert (killed.status, killed.progress > 0) == ("running", True)
    stored = Event.objects.filter(simulation=run).count()

    with worker(120, "training", env) as _:
        _until(lambda: jobs.is_stale(SimulationRun.objects.get(pk=run.pk)), 30, "the dead run to go silent")
        assert jobs.recover_stale() == {"simulation.SimulationRun": [run.pk]}
        assert jobs.recover_stale() == {}  # once: it waits, queued, for the worker
        _until(lambda: SimulationRun.objects.get(pk=run.pk).status == "succeeded", 300, "the restarted run")
    done = SimulationRun.objects.get(pk=run.pk)
    assert done.message == "simulated 30 of 30 days"
    assert Event.objects.filter(simulation=run).count() >= stored > 0
    assert Event.objects.filter(simulation=run).values("event_id").distinct().count() == done.impressions + (
        Event.objects.filter(simulation=run).exclude(type="impression").count()
    )


@pytest.mark.django_db(transaction=True)
def test_a_training_left_running_by_a_dead_worker_is_finished_by_the_next_one(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    import recommenders.tasks  # noqa: F401  (registers the training jobs with core.jobs)

    settings.JOB_STALE_SECONDS = 4
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    dataset = retail_sample(tmp_path, rows=2000)
    variant = Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=dataset)
    # What a worker killed at 33 % leaves: running, its heartbeat stopped a minute ago.
    run = TrainingRun.objects.create(variant=variant, status="running", progress=33, message="fitting",
                                     started_at=timezone.now() - timedelta(minutes=2),
                                     heartbeat_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    env = {**FAST, "ABPLATFORM_ARTIFACT_DIR": str(settings.ARTIFACT_DIR)}
    with worker(120, "training", env) as _:
        assert jobs.recover_stale() == {"recommenders.TrainingRun": [run.pk]}
        _until(lambda: TrainingRun.objects.get(pk=run.pk).status == "succeeded", 120, "the restarted training")
    assert Variant.objects.get(pk=variant.pk).status == "trained"


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_fails_the_job_with_the_reason_and_the_api_answers_503(tmp_path: Path) -> None:
    from django.db import transaction

    from core.api_errors import api_exception_handler
    from recommenders.tasks import train_variant_task

    dataset = retail_sample(tmp_path, rows=200)
    variant = Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=dataset)
    run = TrainingRun.objects.create(variant=variant, message="waiting for a worker")
    dead = app.connection_for_write("redis://127.0.0.1:1/0")  # nothing listens there: a real refused connection

    def send(pk: int) -> None:
        train_variant_task.apply_async(args=[pk], connection=dead, retry=False)

    reason = "could not be queued: the task broker did not answer"
    with pytest.raises(jobs.QueueUnavailable, match=reason) as refused, transaction.atomic():
        jobs.enqueue(TrainingRun, run.pk, send)
    failed = TrainingRun.objects.get(pk=run.pk)
    assert failed.status == "failed"
    assert failed.message.startswith("could not be queued: the task broker did not answer")
    # The API answers the same error with 503 and when to try again; pages show it (middleware).
    answer = api_exception_handler(refused.value, {})
    assert answer is not None
    assert (answer.status_code, answer["Retry-After"]) == (503, "30")
    assert str(answer.data["detail"]).startswith("could not be queued")
