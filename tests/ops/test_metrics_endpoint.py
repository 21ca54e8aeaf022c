"""/metrics: who may scrape it, and what it reads from the database and the broker at scrape time."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from kombu import Connection

from ops.models import Alert
from ops.services import broker
from recommenders.models import TrainingRun, Variant
from tests.recommenders.factories import retail_sample
from tests.support import metric_value

TOKEN = "metrics-token-0123456789abcdef"


def _scrape(**extra: str) -> Any:
    return Client().get("/metrics", **extra)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_a_scrape_from_loopback_is_allowed_by_default_and_from_elsewhere_refused(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert _scrape().status_code == 200  # the test client's address is 127.0.0.1
    assert _scrape(REMOTE_ADDR="::1").status_code == 200
    assert _scrape(REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    refused = _scrape(REMOTE_ADDR="10.2.3.4")
    assert refused.status_code == 403
    assert "ABPLATFORM_METRICS_TOKEN" in refused.json()["detail"]
    assert _scrape(REMOTE_ADDR="10.2.3.4", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403  # not trusted


@pytest.mark.django_db
def test_the_bearer_token_or_an_allowed_network_lets_a_scraper_in(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOW = ["10.0.0.0/8"]
    assert _scrape(REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert _scrape(REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789").status_code == 403
    assert _scrape(REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION=TOKEN).status_code == 403  # no "Bearer"
    assert _scrape(REMOTE_ADDR="192.0.2.7").status_code == 403
    assert _scrape(REMOTE_ADDR="10.200.0.1").status_code == 200
    assert _scrape(REMOTE_ADDR="127.0.0.1").status_code == 403  # the allow-list replaced the loopback default


@pytest.mark.django_db
def test_requests_are_counted_by_view_method_and_status_with_their_duration() -> None:
    client = Client()
    before = _scrape().content.decode()
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no-such-page/")
    after = _scrape().content.decode()

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("abplatform_http_requests_total", view="healthz", method="GET", status="200") == 2
    assert delta("abplatform_http_request_duration_seconds_count", view="healthz", method="GET") == 2
    assert delta("abplatform_http_requests_total", view="unresolved", method="GET", status="404") == 1
    assert "# TYPE abplatform_http_request_duration_seconds histogram" in after


@pytest.mark.django_db
def test_job_counts_and_durations_come_from_the_job_rows(tmp_path: Any) -> None:
    variant = Variant.objects.create(
        name="pop", version=1, algorithm="popularity", dataset=retail_sample(tmp_path, 200)
    )
    now = timezone.now()
    for seconds, status in ((40, "succeeded"), (200, "succeeded"), (3, "failed")):
        TrainingRun.objects.create(variant=variant, status=status, started_at=now - timedelta(seconds=seconds),
                                   finished_at=now)  # fmt: skip
    TrainingRun.objects.create(variant=variant, status="failed", error="could not be queued")  # never started
    TrainingRun.objects.create(variant=variant, status="queued")
    text = _scrape().content.decode()
    labels = {"kind": "training"}
    assert metric_value(text, "abplatform_jobs", status="queued", **labels) == 1
    assert metric_value(text, "abplatform_jobs", status="running", **labels) == 0
    assert metric_value(text, "abplatform_jobs_finished_total", status="succeeded", **labels) == 2
    assert metric_value(text, "abplatform_jobs_finished_total", status="failed", **labels) == 2
    succeeded = {le: metric_value(text, "abplatform_job_duration_seconds_bucket", status="succeeded", le=le, **labels)
                 for le in ("30.0", "60.0", "300.0", "+Inf")}  # fmt: skip
    assert succeeded == {"30.0": 0, "60.0": 1, "300.0": 2, "+Inf": 2}
    assert metric_value(text, "abplatform_job_duration_seconds_sum", status="succeeded", **labels) == pytest.approx(240)
    assert metric_value(text, "abplatform_job_duration_seconds_count", status="failed", **labels) == 1  # timed ones
    assert metric_value(text, "abplatform_jobs_finished_total", kind="simulation", status="cancelled") == 0


@pytest.mark.django_db
def test_queue_depth_counts_the_messages_waiting_on_the_broker(settings: Any) -> None:
    queue = f"ops-depth-{uuid.uuid4().hex[:8]}"
    with Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
        channel = conn.default_channel
        channel.queue_declare(queue, durable=True, auto_delete=False)
        producer = conn.Producer(channel)
        for n in range(3):
            producer.publish({"n": n}, routing_key=queue, exchange="")
        try:
            assert broker.queue_depths([queue, f"{queue}-never-used"]) == {queue: 3, f"{queue}-never-used": 0}
        finally:
            channel.queue_purge(queue)
            channel.queue_delete(queue)
    text = _scrape().content.decode()
    assert {metric_value(text, "abplatform_queue_depth", queue=name) >= 0 for name in ("default", "training")} == {True}
    assert 'abplatform_queue_depth{queue="training"}' in text
    assert metric_value(text, "abplatform_dependency_up", dependency="broker") == 1


@pytest.mark.django_db
def test_an_unreachable_broker_leaves_its_gauges_out_and_says_so(settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = _scrape()
    assert response.status_code == 200
    text = response.content.decode()
    assert "abplatform_queue_depth{" not in text
    assert metric_value(text, "abplatform_dependency_up", dependency="broker") == 0
    assert metric_value(text, "abplatform_dependency_up", dependency="database") == 1


@pytest.mark.django_db
def test_unresolved_alerts_are_counted_by_rule_and_severity() -> None:
    now = timezone.now()
    for rule, severity, status in (("srm", "critical", "open"), ("job_failed", "warning", "acknowledged"),
                                   ("job_failed", "warning", "resolved")):  # fmt: skip
        Alert.objects.create(rule=rule, severity=severity, status=status, message="m", opened_at=now)
    text = _scrape().content.decode()
    assert metric_value(text, "abplatform_alerts_open", rule="srm", severity="critical") == 1
    assert metric_value(text, "abplatform_alerts_open", rule="job_failed", severity="warning") == 1
    assert metric_value(text, "abplatform_alerts_open", rule="no_events", severity="critical") == 0
