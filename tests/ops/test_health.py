"""/healthz (liveness) and /readyz (readiness: database, broker, worker heartbeat, rollup lag)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from analysis.models import RollupState
from experiments.models import Experiment
from ops.models import WorkerHeartbeat
from ops.services import broker, health
from serving.models import Event
from tests.recommenders.factories import user_with_role

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: a real refused connection


@pytest.mark.django_db
def test_liveness_answers_without_touching_the_database(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_probes_are_answered_for_any_host_and_over_plain_http(settings: Any) -> None:
    # A load balancer asks the machine's address over HTTP: no ALLOWED_HOSTS 400, no HTTPS redirect.
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["ab.example.com"]
    client = Client()
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code in (200, 503)
    assert client.get("/experiments/", HTTP_HOST="10.1.2.3:8000").status_code == 400  # the rest is still guarded


def _live_worker(*queues: str, beat_ago: float = 0.0) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(hostname=f"w-{'-'.join(queues)}@test", queues=list(queues), pid=1,
                                          started_at=now, beat_at=now - timedelta(seconds=beat_ago))  # fmt: skip


@pytest.mark.django_db
def test_readiness_is_200_with_every_check_passing(settings: Any) -> None:
    settings.READY_WORKER_QUEUES = ["default", "training"]
    _live_worker("default", "training")
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["database", "broker", "worker", "rollup_lag"]
    for check in body["checks"].values():
        assert check["ok"] is True
        assert set(check) == {"ok", "detail", "duration_ms"}
        assert check["duration_ms"] >= 0
    assert body["checks"]["worker"]["detail"] == "1 live worker: w-default-training@test (default, training)"
    assert body["checks"]["broker"]["detail"].startswith(f"{broker.describe()} answered; messages waiting: default ")


@pytest.mark.django_db
def test_readiness_is_503_when_the_broker_refuses_the_connection(settings: Any) -> None:
    _live_worker("default", "training")
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert "Connection refused" in body["checks"]["broker"]["detail"]
    assert body["checks"]["broker"]["duration_ms"] < 1000  # no retry, a short timeout
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["broker"]
    # A probe of the serving path only can leave the broker and the workers out.
    assert Client().get("/readyz?check=database&check=rollup_lag").status_code == 200
    assert Client().get("/readyz?check=nope").status_code == 400


@pytest.mark.django_db
def test_a_worker_that_stopped_beating_or_misses_a_queue_fails_readiness(settings: Any) -> None:
    settings.WORKER_HEARTBEAT_SECONDS = 10
    settings.READY_WORKER_QUEUES = ["default", "training"]
    _live_worker("training", beat_ago=31)  # three beats missed
    _live_worker("default")
    ok, detail = health.check_worker()
    assert (ok, detail) == (False, "no live worker consumes training; live: w-default@test (default)")
    WorkerHeartbeat.objects.all().delete()
    assert health.check_worker() == (False, "no live worker (none beat in the last 30 s)")


@pytest.mark.django_db
def test_rollup_lag_is_the_age_of_the_oldest_unfolded_event_of_a_running_experiment(settings: Any) -> None:
    settings.READY_MAX_ROLLUP_LAG_SECONDS = 300
    owner = user_with_role("pm", None)
    running = Experiment.objects.create(key="lagging", name="x", owner=owner, status="running", salt="s")
    Experiment.objects.create(key="stopped", name="x", owner=owner, status="stopped", salt="s")
    assert health.check_rollup_lag() == (True, "0 s behind at most (1 running experiment)")

    def event(n: int, minutes_ago: float) -> Event:
        stored = Event.objects.create(event_id=f"e{n}", type="click", user_id="u", experiment=running,
                                      timestamp=timezone.now())  # fmt: skip
        Event.objects.filter(pk=stored.pk).update(received_at=timezone.now() - timedelta(minutes=minutes_ago))
        return stored

    first, second = event(1, 10), event(2, 2)
    ok, detail = health.check_rollup_lag()
    assert not ok
    assert detail.startswith("lagging is 60")
    assert detail.endswith("s behind (limit 300 s): is beat running the fold?")
    RollupState.objects.create(experiment=running, event_watermark=first.pk)  # the first one is folded
    ok, detail = health.check_rollup_lag()
    assert ok
    assert detail.startswith("12")
    assert detail.endswith("s behind at most (1 running experiment)")
    RollupState.objects.filter(pk=running.pk).update(event_watermark=second.pk)
    assert health.check_rollup_lag() == (True, "0 s behind at most (1 running experiment)")


@pytest.mark.django_db
def test_the_checks_run_once_a_second_per_process_whatever_the_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = broker.queue_depths
    monkeypatch.setattr(broker, "queue_depths", lambda *a: asked.append(1) or real(*a))
    first = health.readiness()
    assert [health.readiness() for _ in range(5)] == [first] * 5
    assert len(asked) == 1
    assert health.readiness(max_age=0) is not first
    assert len(asked) == 2


@pytest.mark.django_db
def test_with_the_database_down_the_checks_that_read_it_are_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> tuple[bool, str]:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setitem(health._FUNCTIONS, "database", refused)
    checks = {check.name: check for check in health.run_checks().checks}
    assert checks["database"].detail == "ConnectionRefusedError: connection refused"
    assert [(checks[n].ok, checks[n].detail) for n in ("worker", "rollup_lag")] == [
        (False, "not checked: the database does not answer")
    ] * 2
