"""Alerts: the rules open and resolve alerts once, deliveries reach a real webhook once, auto_pause pauses
with an audit entry, and the API lists, acknowledges and resolves by role."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.fields import DateTimeField
from rest_framework.test import APIClient

from accounts.roles import PRODUCT_MANAGERS, REVIEWERS
from experiments.models import Arm, Experiment, ExperimentChange
from ops.models import Alert, AlertDelivery, NotificationChannel
from ops.services.alerts import evaluate
from ops.tasks import deliver_alert_task, evaluate_alerts_task, queue_deliveries
from serving.models import Event
from simulation.models import SimulationRun
from tests.celery_worker import worker_process
from tests.ops.conftest import WebhookReceiver
from tests.recommenders.factories import user_with_role

HEADER = "timestamp,user,arm,item,position,event_type,propensity,revenue\n"
pytestmark = pytest.mark.usefixtures("deliveries_run_here")


def _log(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "traffic.csv"
    path.write_text(HEADER + "".join(lines))
    return path


def _import(path: Path, key: str) -> str:
    out = io.StringIO()
    call_command("import_events", str(path), "--experiment", key, "--owner", "alice", "--control", "baseline",
                 stdout=out)  # fmt: skip
    return out.getvalue()


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create(username="alice")


def test_an_imported_srm_raises_one_alert_and_the_webhook_gets_it_once_over_two_evaluations(
    tmp_path: Path, alice: User, webhook_receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:  # fmt: skip
    NotificationChannel.objects.create(name="ops-hook", kind="webhook", url=webhook_receiver.url)
    lines = [f"2026-11-20T10:00:00Z,b{n},baseline,1,1,impression,,\n" for n in range(1000)]
    lines += [f"2026-11-20T10:00:00Z,k{n},knn,1,1,impression,,\n" for n in range(1300)]

    with django_capture_on_commit_callbacks(execute=True):
        _import(_log(tmp_path, lines), "skewed")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            call_command("evaluate_alerts", "--experiment", "skewed", stdout=io.StringIO())
            call_command("evaluate_alerts", stdout=io.StringIO())

    alert = Alert.objects.get()
    assert (alert.experiment.key, alert.rule, alert.severity, alert.status) == ("skewed", "srm", "critical", "open")
    assert alert.details["observed"] == [1000, 1300]
    assert alert.details["p_value"] < 1e-8
    assert len(webhook_receiver.bodies) == 1
    body = webhook_receiver.bodies[0]
    assert (body["id"], body["experiment"], body["rule"], body["status"]) == (alert.pk, "skewed", "srm", "open")
    assert list(AlertDelivery.objects.values_list("attempt", "status", "response_code")) == [(1, "sent", 200)]


def test_a_failing_webhook_is_retried_and_every_attempt_recorded(
    tmp_path: Path, alice: User, webhook_receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:  # fmt: skip
    NotificationChannel.objects.create(name="slack", kind="webhook", url=webhook_receiver.url, format="slack")
    webhook_receiver.status[0] = 503
    lines = [f"2026-11-20T10:00:00Z,b{n},baseline,1,1,impression,,\n" for n in range(1000)]
    lines += [f"2026-11-20T10:00:00Z,k{n},knn,1,1,impression,,\n" for n in range(1300)]

    with django_capture_on_commit_callbacks(execute=True):
        _import(_log(tmp_path, lines), "skewed")

    attempts = list(AlertDelivery.objects.values_list("status", "response_code"))
    assert attempts == [("failed", 503)] * 7  # the first try and max_retries=6 retries
    assert webhook_receiver.bodies[0]["text"].startswith("CRITICAL srm [skewed]: skewed: sample-ratio mismatch")


def _running(owner: User, key: str = "live", minutes_ago: int = 120) -> Experiment:
    experiment = Experiment.objects.create(
        key=key, name=key, owner=owner, salt="s", status="running",
        started_at=timezone.now() - timedelta(minutes=minutes_ago),
    )  # fmt: skip
    Arm.objects.create(experiment=experiment, name="control", is_control=True, position=0)
    Arm.objects.create(experiment=experiment, name="treatment", position=1)
    return experiment


def _events(experiment: Experiment, count: int, prefix: str = "e") -> None:
    now = timezone.now()
    Event.objects.bulk_create(
        Event(event_id=f"{prefix}{n}", type="impression", user_id=f"u{n}", experiment=experiment, timestamp=now)
        for n in range(count)
    )


def test_a_stopped_event_stream_raises_no_events_then_resolves_when_events_come_back(
    alice: User, settings: Any
) -> None:
    settings.ALERT_NO_EVENTS_MINUTES = 30
    experiment = _running(alice)
    _events(experiment, 5)
    now = timezone.now()

    assert evaluate(now=now).opened == []
    quiet = evaluate(now=now + timedelta(minutes=31))
    again = evaluate(now=now + timedelta(minutes=32))

    alert = Alert.objects.get(rule="no_events")
    assert quiet.opened == [alert.pk]
    assert again.opened == []
    assert (alert.experiment_id, alert.severity, alert.status) == (experiment.pk, "critical", "open")
    assert "more than 30 minutes" in alert.message
    _events(experiment, 1, prefix="back")
    assert evaluate(now=timezone.now()).resolved == [alert.pk]
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.resolved_at is not None


def test_an_hour_with_less_than_half_the_trailing_weeks_events_raises_event_rate(alice: User) -> None:
    experiment = _running(alice, minutes_ago=8 * 24 * 60)
    now = timezone.now()
    for day in range(1, 8):
        _events(experiment, 40, prefix=f"d{day}-")
        Event.objects.filter(event_id__startswith=f"d{day}-").update(received_at=now - timedelta(days=day, minutes=30))
    _events(experiment, 10, prefix="now-")

    report = evaluate(now=now + timedelta(seconds=1))

    alert = Alert.objects.get(rule="event_rate")
    # The week-old events were never folded: the rollups are days behind too.
    assert sorted(Alert.objects.filter(pk__in=report.opened).values_list("rule", flat=True)) == [
        "event_rate", "rollup_lag"]  # fmt: skip
    assert alert.details == {"last_hour": 10, "trailing_week_average": 40.0}
    assert "10 events in the last hour, against 40 on average" in alert.message


def test_a_breached_guardrail_with_auto_pause_pauses_the_experiment_and_audits_the_alert(
    tmp_path: Path, alice: User
) -> None:
    lines = []
    for n in range(400):
        lines.append(f"2026-11-20T10:00:00Z,b{n},baseline,1,1,impression,,\n")
        lines.append(f"2026-11-20T10:00:01Z,b{n},baseline,1,1,click,,\n")
        lines.append(f"2026-11-20T10:00:00Z,k{n},knn,1,1,impression,,\n")
        if n % 10 == 0:
            lines.append(f"2026-11-20T10:00:01Z,k{n},knn,1,1,click,,\n")
    _import(_log(tmp_path, lines), "harmful")
    Experiment.objects.filter(key="harmful").update(
        status="running", auto_pause=True, guardrail_metrics=["clicks_per_user"]
    )

    call_command("evaluate_alerts", stdout=io.StringIO())
    call_command("evaluate_alerts", stdout=io.StringIO())

    experiment = Experiment.objects.get(key="harmful")
    alert = Alert.objects.get(rule="guardrail")
    assert experiment.status == "paused"
    assert alert.details["breached"][0]["metric"] == "clicks_per_user"
    pause = ExperimentChange.objects.get(experiment=experiment, action="pause")
    assert pause.user == alice  # the owner: auto_pause is the owner's setting
    assert pause.before == {"status": "running"}
    assert pause.after == {
        "status": "paused",
        "reason": {"alert": alert.pk, "rule": "guardrail", "message": alert.message, "by": "auto_pause"},
    }


def test_the_api_lists_for_every_role_and_only_product_managers_acknowledge_and_resolve(alice: User) -> None:
    experiment = _running(alice)
    now = timezone.now()
    srm = Alert.objects.create(experiment=experiment, rule="srm", severity="critical", message="m", opened_at=now)
    lag = Alert.objects.create(
        experiment=None, rule="job_failed", severity="warning", message="j", opened_at=now - timedelta(hours=1)
    )
    pm, reviewer = APIClient(), APIClient()
    pm.force_authenticate(user_with_role("pm", PRODUCT_MANAGERS))
    reviewer.force_authenticate(user_with_role("rev", REVIEWERS))

    listed = reviewer.get("/api/v1/alerts")
    assert listed.status_code == 200
    when = DateTimeField().to_representation
    assert listed.json()["results"] == [
        {"id": srm.pk, "experiment": "live", "rule": "srm", "severity": "critical", "status": "open",
         "message": "m", "opened_at": when(srm.opened_at)},
        {"id": lag.pk, "experiment": None, "rule": "job_failed", "severity": "warning", "status": "open",
         "message": "j", "opened_at": when(lag.opened_at)},
    ]  # fmt: skip
    assert [a["id"] for a in pm.get("/api/v1/alerts", {"experiment": "live"}).json()["results"]] == [srm.pk]
    assert reviewer.post(f"/api/v1/alerts/{srm.pk}/acknowledge").status_code == 403
    assert reviewer.post(f"/api/v1/alerts/{srm.pk}/resolve").status_code == 403

    acknowledged = pm.post(f"/api/v1/alerts/{srm.pk}/acknowledge")
    assert (acknowledged.status_code, acknowledged.json()["status"]) == (200, "acknowledged")
    assert pm.post(f"/api/v1/alerts/{srm.pk}/acknowledge").status_code == 409
    resolved = pm.post(f"/api/v1/alerts/{srm.pk}/resolve")
    assert (resolved.status_code, resolved.json()["status"]) == (200, "resolved")
    assert pm.post(f"/api/v1/alerts/{srm.pk}/resolve").status_code == 409
    assert [a["id"] for a in pm.get("/api/v1/alerts", {"status": "open"}).json()["results"]] == [lag.pk]
    assert pm.post("/api/v1/alerts/999999/resolve").status_code == 404
    srm.refresh_from_db()
    assert srm.acknowledged_by.username == "pm"
    assert srm.resolved_at is not None


def test_alert_channel_adds_lists_and_removes_and_an_email_channel_gets_the_alert(
    alice: User, mailoutbox: list[Any], settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    settings.ALERT_NO_EVENTS_MINUTES = 30
    experiment = _running(alice)
    out = io.StringIO()
    call_command("alert_channel", "oncall", "--email", "a@example.com, b@example.com", "--experiment", "live",
                 "--min-severity", "critical", stdout=out)  # fmt: skip
    call_command("alert_channel", "--list", stdout=out)
    assert "oncall\temail/json\tlive\tcritical+\ta@example.com, b@example.com" in out.getvalue()

    with django_capture_on_commit_callbacks(execute=True):
        queue_deliveries(evaluate(now=timezone.now() + timedelta(minutes=31)).opened)

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["a@example.com", "b@example.com"]
    assert mailoutbox[0].subject.startswith("[A/B platform] CRITICAL no_events [live]: live: no events received")
    assert AlertDelivery.objects.get().status == "sent"
    call_command("alert_channel", "oncall", "--remove", stdout=out)
    assert not NotificationChannel.objects.filter(experiment=experiment).exists()


def test_a_job_failing_since_the_last_evaluation_opens_one_platform_alert_resolved_after_a_quiet_day(
    alice: User,
) -> None:
    experiment = Experiment.objects.create(key="draft", name="draft", owner=alice, salt="s")
    now = timezone.now()
    evaluate(now=now - timedelta(minutes=1))
    run = SimulationRun.objects.create(experiment=experiment, status="failed", finished_at=now, error="boom")

    opened = evaluate(now=now + timedelta(seconds=1)).opened
    again = evaluate(now=now + timedelta(minutes=1))
    later = evaluate(now=now + timedelta(hours=25))

    alert = Alert.objects.get(rule="job_failed")
    assert opened == [alert.pk]
    assert (again.opened, again.resolved, later.resolved) == ([], [], [alert.pk])
    assert alert.experiment is None
    assert alert.message == f"1 background job(s) failed: simulation {run.pk}"
    assert alert.details["jobs"][0]["error"] == "boom"


def test_the_pages_show_the_badge_and_the_experiments_alerts_and_product_managers_acknowledge_and_resolve(
    alice: User,
) -> None:
    experiment = _running(alice)
    alert = Alert.objects.create(
        experiment=experiment,
        rule="srm",
        severity="critical",
        message="sample-ratio mismatch",
        opened_at=timezone.now(),
    )
    pm, reviewer = Client(), Client()
    pm.force_login(user_with_role("pm", PRODUCT_MANAGERS))
    reviewer.force_login(user_with_role("rev", REVIEWERS))
    page = f"/experiments/{experiment.key}/"

    seen = reviewer.get(page).content.decode()
    assert '<span class="badge failed" id="alerts-badge">1</span>' in seen
    assert f'id="alert-{alert.pk}"' in seen
    assert "sample-ratio mismatch" in seen
    assert "Acknowledge</button>" not in seen
    assert reviewer.post(f"/alerts/{alert.pk}/acknowledge/", {"next": page}).status_code == 403

    assert "Acknowledge</button>" in pm.get(page).content.decode()
    answer = pm.post(f"/alerts/{alert.pk}/acknowledge/", {"next": page})
    assert (answer.status_code, answer["Location"]) == (302, page)
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by.username) == ("acknowledged", "pm")
    listed = pm.get("/alerts/").content.decode()
    assert f'href="/experiments/{experiment.key}/">{experiment.key}</a>' in listed
    assert pm.post(f"/alerts/{alert.pk}/resolve/", {"next": "https://elsewhere.example/"})["Location"] == "/alerts/"
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert 'id="alerts-badge"' not in pm.get(page).content.decode()
    assert 'id="no-alerts"' in pm.get("/alerts/").content.decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_tasks_through_a_real_worker_evaluate_and_retry_a_failing_webhook(
    webhook_receiver: WebhookReceiver, settings: Any
) -> None:
    owner = User.objects.create(username="alice")
    experiment = _running(owner)
    webhook_receiver.status[:] = [503, 200]
    with worker_process() as queue:
        # No channel yet: the evaluation queues no delivery (those go to the default queue, not this one).
        report = evaluate_alerts_task.apply_async(queue=queue).get(timeout=60)
        alert = Alert.objects.get(experiment=experiment, rule="no_events")
        assert report == {"opened": [alert.pk], "resolved": [], "paused": []}
        channel = NotificationChannel.objects.create(name="hook", kind="webhook", url=webhook_receiver.url)
        assert deliver_alert_task.apply_async((alert.pk, channel.pk), queue=queue).get(timeout=60) == "sent"
    assert list(AlertDelivery.objects.values_list("attempt", "status", "response_code")) == [
        (1, "failed", 503), (2, "sent", 200)]  # fmt: skip
    assert [body["id"] for body in webhook_receiver.bodies] == [alert.pk, alert.pk]
