"""Against a real server: granian with two worker processes in front of the test database, the way the image
runs the platform. Its metrics add up over both processes, the request id goes from the client's header to
the answer, the serving log and the JSON log lines, and readiness follows a real worker coming and going."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from experiments.services.lifecycle import transition
from serving.models import ServedRequest
from serving.services.tokens import create_token
from tests.celery_worker import worker
from tests.experiments.factories import draft_experiment, product_manager, trained_variants
from tests.ops.conftest import WebServer
from tests.support import metric_value

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _scrape(server: WebServer) -> str:
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def _log_records(path: Path) -> list[dict[str, Any]]:
    """Every line the platform logged, each parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_metrics_count_a_recommendation_the_lean_path_served_whichever_process_answers_the_scrape(
    web_server: WebServer, tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = web_server.artifacts  # where the server's processes find the trained models
    trained_variants(tmp_path)
    owner = product_manager()
    experiment = transition(draft_experiment(owner, "ops-served"), "start", owner)
    _, secret = create_token("shop", ["serve"])
    before = _scrape(web_server)
    assert metric_value(before, "abplatform_recommendations_served_total", experiment="ops-served", arm="control") == 0
    recommendation_requests = {"view": "experiment-recommendations", "method": "POST"}

    url = f"{web_server.url}/api/v1/experiments/{experiment.key}/recommendations"
    token = {"Authorization": f"Bearer {secret}"}
    answers = [
        requests.post(url, json={"user_id": f"shopper-{n}", "k": 3}, headers=token, timeout=30) for n in range(4)
    ]
    assert [answer.status_code for answer in answers] == [200] * 4
    arms = [answer.json()["arm"] for answer in answers]

    def counted() -> str | None:  # each process adds its counts to the shared files within a second
        text = _scrape(web_server)
        served = sum(metric_value(text, "abplatform_recommendations_served_total", experiment="ops-served", arm=arm)
                     for arm in set(arms))  # fmt: skip
        return text if served == 4 else None

    text = _until(counted, 15, "the four served lists in /metrics")
    for arm in set(arms):
        assert metric_value(text, "abplatform_recommendations_served_total", experiment="ops-served",
                            arm=arm) == arms.count(arm)  # fmt: skip
    answered, timed = "abplatform_http_requests_total", "abplatform_http_request_duration_seconds_count"
    assert (
        metric_value(text, answered, status="200", **recommendation_requests)
        - metric_value(before, answered, status="200", **recommendation_requests)
        == 4
    )
    assert (
        metric_value(text, timed, **recommendation_requests) - metric_value(before, timed, **recommendation_requests)
        == 4
    )
    assert metric_value(text, "abplatform_rollup_lag_seconds", experiment="ops-served") >= 0
    assert metric_value(text, "abplatform_dependency_up", dependency="database") == 1


def test_the_request_id_round_trips_to_the_answer_the_serving_log_and_the_json_log_lines(
    web_server: WebServer, tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = web_server.artifacts
    trained_variants(tmp_path)
    owner = product_manager()
    experiment = transition(draft_experiment(owner, "ops-request-id"), "start", owner)
    _, secret = create_token("shop", ["serve"])
    token = {"Authorization": f"Bearer {secret}"}

    served = requests.post(f"{web_server.url}/api/v1/experiments/{experiment.key}/recommendations",
                           json={"user_id": "17850", "k": 2}, headers={**token, "X-Request-ID": "shop-req-42"},
                           timeout=30)  # fmt: skip
    assert (served.status_code, served.headers["X-Request-ID"]) == (200, "shop-req-42")
    # The lean path's buffered log (COPY) stores it within a flush.
    row = _until(lambda: ServedRequest.objects.filter(http_request_id="shop-req-42").first(), 15, "the served row")
    assert str(row.request_id) == served.json()["request_id"]

    made = requests.get(f"{web_server.url}/no-such-page/", headers={"X-Request-ID": "bad id!"}, timeout=30)
    new_id = made.headers["X-Request-ID"]
    assert made.status_code == 404
    assert new_id != "bad id!"  # not sane: replaced by a uuid4
    assert len(new_id) == 36
    lean_404 = requests.post(f"{web_server.url}/api/v1/experiments/nope/recommendations", json={"user_id": "1"},
                             headers={**token, "X-Request-ID": "shop-req-43"}, timeout=30)  # fmt: skip
    assert (lean_404.status_code, lean_404.headers["X-Request-ID"]) == (404, "shop-req-43")

    def logged() -> list[dict[str, Any]] | None:
        records = _log_records(web_server.stderr)
        ids = {record.get("request_id") for record in records}
        return records if {new_id, "shop-req-43"} <= ids else None

    records = _until(logged, 15, "the log lines of both requests")
    assert all({"time", "level", "logger", "message", "request_id"} <= record.keys() for record in records)
    by_id = {record["request_id"]: record for record in records if record["request_id"] != "-"}
    assert {k: by_id["shop-req-43"][k] for k in ("level", "logger", "message")} == {
        "level": "WARNING", "logger": "django.request", "message": "Not Found: /api/v1/experiments/nope/recommendations"
    }  # fmt: skip
    assert {k: by_id[new_id][k] for k in ("level", "logger", "message", "status_code")} == {
        "level": "WARNING", "logger": "django.request", "message": "Not Found: /no-such-page/", "status_code": 404
    }  # fmt: skip


def test_readiness_follows_a_real_worker_and_the_liveness_probe_needs_no_worker(web_server: WebServer) -> None:
    def readiness() -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{web_server.url}/readyz", timeout=10)
        return response.status_code, response.json()

    status, body = readiness()
    assert status == 503
    assert body["checks"]["worker"]["ok"] is False
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "broker": True, "worker": False, "rollup_lag": True
    }  # fmt: skip
    assert requests.get(f"{web_server.url}/healthz", timeout=10).status_code == 200

    with worker(queues=web_server.worker_queue):
        status, body = _until(lambda: (lambda r: r if r[0] == 200 else None)(readiness()), 30, "readiness 200")
        assert all(check["ok"] for check in body["checks"].values())
        assert web_server.worker_queue in body["checks"]["worker"]["detail"]
        assert all(isinstance(check["duration_ms"], float) for check in body["checks"].values())
    # A worker stopping gracefully removes its heartbeat: readiness fails at once (after the cache's second).
    status, body = _until(lambda: (lambda r: r if r[0] == 503 else None)(readiness()), 15, "readiness 503")
    assert body["checks"]["worker"]["detail"].startswith("no live worker")
