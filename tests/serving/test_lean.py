"""The lean WSGI path answers the hot endpoints exactly as the DRF views do, and its log buffer lands the rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from experiments.models import Experiment
from experiments.services.lifecycle import transition
from serving.authentication import SIMULATION_NEEDS_SCOPE
from serving.lean import LeanDispatcher
from serving.limits import MAX_ID_LENGTH, MAX_K, MAX_QUERY_LENGTH
from serving.models import Event, Exposure, ServedRequest
from serving.services import serve, tokens
from serving.services.config import ServingLog
from serving.services.serve import write_log
from serving.services.serving_log import LogBuffer
from serving.services.tokens import create_token
from tests.experiments.factories import draft_experiment, product_manager, trained_variants
from tests.serving.wsgi import DJANGO, _call, _keep

SERVE_SCOPE = (
    "This endpoint writes experiment traffic: it needs an API token with the 'serve' scope "
    "(manage.py create_api_token); signed-in users try recommendations on the variant pages."
)


LEAN = LeanDispatcher(DJANGO, log=write_log, connection_upkeep=_keep)
RECS = "/api/v1/experiments/recs-ab/recommendations"


def _no_django(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError(f"the lean path gave {environ['PATH_INFO']} to Django")


# Proves a request was answered without Django.
ALONE = LeanDispatcher(_no_django, log=write_log, connection_upkeep=_keep)
VOLATILE = {"request_id"}  # differs between any two answers


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    # As Django's test client does: request signals would close the connection holding the test's transaction
    # (the DRF views' answers go through Django's handler).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def running(tmp_path: Path, settings: Any) -> Experiment:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    tokens.clear_cache()
    trained_variants(tmp_path)
    owner = product_manager()
    experiment = draft_experiment(owner, traffic_percent=50)
    transition(experiment, "start", owner)
    return experiment


def _same(path: str, body: Any, **headers: str) -> tuple[int, Any]:
    """Asserts the lean path and Django answer alike (status, headers, body but request_id); returns Django's."""
    lean_status, lean_headers, lean_body = _call(LEAN, path, body, **dict(headers))
    status, django_headers, django_body = _call(DJANGO, path, body, **dict(headers))
    assert (lean_status, lean_headers) == (status, django_headers)
    if isinstance(django_body, dict):
        assert {k: v for k, v in lean_body.items() if k not in VOLATILE} == {
            k: v for k, v in django_body.items() if k not in VOLATILE
        }
    else:
        assert lean_body == django_body
    return status, django_body


@pytest.mark.django_db
def test_lean_recommendations_answer_like_the_drf_view(running: Experiment) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    status, body = _same(RECS, {"user_id": "17850", "k": 4}, authorization=serve)
    assert (status, body["experiment"], [item["position"] for item in body["items"]]) == (200, "recs-ab", [1, 2, 3, 4])
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):  # in and out of the 50 % traffic
        assert _same(RECS, {"user_id": user, "k": 3, "query": "mug", "context": {"page": "home"}},
                     authorization=serve)[0] == 200  # fmt: skip
    assert _same(RECS, {"user_id": 17850}, authorization=serve)[0] == 200  # DRF coerces a number to text
    longest = {"user_id": "x" * MAX_ID_LENGTH, "k": MAX_K, "query": "q" * MAX_QUERY_LENGTH}
    assert _call(ALONE, RECS, longest, authorization=serve)[0] == 200  # the limits are the serializer's too
    assert _same(RECS, longest, authorization=serve)[0] == 200
    assert Exposure.objects.filter(user_id="17850").count() == int(body["exposed"])
    assert ServedRequest.objects.filter(user_id="17850").count() == 4  # each _same call serves twice
    assert _call(ALONE, RECS, {"user_id": "17850", "k": 4}, authorization=serve)[:2] == (200, _same_headers())
    assert _call(ALONE, "/api/v1/experiments/nope/recommendations", {"user_id": "1"}, authorization=serve)[0] == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ({"k": 5}, 400),
        ({"user_id": "1", "k": 0}, 400),
        ({"user_id": "1", "k": 101}, 400),
        ({"user_id": "1", "k": True}, 400),
        ({"user_id": "  "}, 400),
        ({"user_id": "x" * 101}, 400),
        ({"user_id": "1", "query": "q" * 501}, 400),
        ({"user_id": "1", "context": {"a": json.loads("[" * 40 + "]" * 40)}}, 400),  # deeper than the parser takes
        ({"user_id": "1", "query": None}, 400),
        ([{"user_id": "1"}], 400),
        ('{"user_id": "1", "k": NaN}', 400),
    ],
)
def test_lean_recommendations_refuse_bad_bodies_with_drf_reasons(running: Experiment, body: Any, status: int) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    assert _same(RECS, body, authorization=serve)[0] == status
    assert ServedRequest.objects.count() == 0


@pytest.mark.django_db
def test_lean_recommendations_refuse_bad_requests_like_the_drf_view(running: Experiment) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    ingest_only = f"Bearer {create_token('ingest-only', ['ingest'])[1]}"
    user = {"user_id": "1"}
    assert _same("/api/v1/experiments/nope/recommendations", user, authorization=serve) == (
        404, {"detail": "no experiment 'nope'"},
    )  # fmt: skip
    draft_experiment(running.owner, key="drafted")
    assert _same("/api/v1/experiments/drafted/recommendations", user, authorization=serve) == (
        409, {"detail": "drafted is draft: only started experiments serve traffic."},
    )  # fmt: skip
    assert _same(RECS, user, authorization="Bearer abp_not-a-real-token")[0] == 401
    assert _same(RECS, user, authorization=ingest_only) == (
        403, {"detail": SERVE_SCOPE},
    )  # fmt: skip
    assert _same(RECS, user)[0] == 401
    assert _same(RECS, user, authorization=serve, method="GET")[0] == 405
    assert _same(RECS, user, authorization=serve, content_type="text/plain")[0] == 415
    assert _same(RECS, user, authorization=serve, host="evil.example")[0] == 400
    assert ServedRequest.objects.count() == 0


@pytest.mark.django_db
def test_only_a_token_with_the_simulate_scope_names_a_simulation_run_on_either_path(running: Experiment) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    simulator = f"Bearer {create_token('simulator', ['serve', 'ingest', 'simulate'])[1]}"
    named = {"user_id": "sim7:17850", "k": 2, "simulation": 7}
    assert _same(RECS, named, authorization=serve) == (403, {"detail": SIMULATION_NEEDS_SCOPE})
    assert _call(ALONE, RECS, named, authorization=simulator)[0] == 200
    assert _same(RECS, named, authorization=simulator)[0] == 200
    assert _same(RECS, {**named, "simulation": "7"}, authorization=simulator)[0] == 200  # DRF coerces it
    assert _same(RECS, {**named, "simulation": 0}, authorization=simulator)[0] == 400
    assert _same(RECS, {"user_id": "sim7:17850"}, authorization=serve)[0] == 200  # an id is just an id
    assert ServedRequest.objects.filter(user_id="sim7:17850").count() == 7  # each _same call serves twice


@pytest.mark.django_db
def test_lean_event_batches_answer_like_the_drf_view(running: Experiment) -> None:
    ingest = f"Bearer {create_token('shop', ['ingest'])[1]}"
    good = {"event_id": "a1", "type": "click", "user_id": "17850", "experiment": "recs-ab",
            "timestamp": "2026-11-27T10:00:00Z"}  # fmt: skip
    bad = {**good, "event_id": "a2", "type": "purchase", "revenue": -1}
    assert _call(ALONE, "/api/v1/events", {"events": [good, bad]}, authorization=ingest)[::2] == (
        200,
        {"received": 2, "stored": 1, "duplicates": 0, "rejected": 1,
         "errors": [{"index": 1, "event_id": "a2", "error": "revenue must be a non-negative amount, got -1"}]},
    )  # fmt: skip
    assert _same("/api/v1/events", [good], authorization=ingest)[1]["duplicates"] == 1
    future = {**good, "event_id": "a3", "timestamp": "2999-01-01T00:00:00Z"}
    assert _same("/api/v1/events", [future, {**good, "event_id": "a4", "experiment": "nope"}],
                 authorization=ingest)[0] == 400  # fmt: skip
    assert _same("/api/v1/events", [good] * 10_001, authorization=ingest) == (
        413, {"detail": "a batch holds at most 10,000 events; this one has 10,001"},
    )  # fmt: skip
    huge = json.dumps([{"event_id": "x" * 100, "pad": "y" * 1000}] * 9000)
    assert _same("/api/v1/events", huge, authorization=ingest)[0] == 413
    assert _same("/api/v1/events", "{not json", authorization=ingest)[0] == 400
    deep = json.loads("[" * 40 + "]" * 40)  # json.loads takes it; the API's parser refuses it, whole
    assert _same("/api/v1/events", {"events": [good], "note": deep}, authorization=ingest) == (
        400, {"detail": "JSON parse error - nested deeper than 32 levels"},
    )  # fmt: skip
    assert _same("/api/v1/events", [good], authorization=f"Bearer {create_token('s', ['serve'])[1]}")[0] == 403
    assert Event.objects.count() == 1


def _policy() -> str:
    """The Content-Security-Policy header the configured policy gives (settings.CONTENT_SECURITY_POLICY)."""
    middleware = CSPMiddleware(lambda request: HttpResponse())
    return str(middleware.process_response(RequestFactory().post(RECS), HttpResponse())["Content-Security-Policy"])


def _same_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Vary": "Accept", "Allow": "POST, OPTIONS", "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin", "Content-Security-Policy": _policy()}  # fmt: skip


@pytest.mark.django_db
def test_security_settings_show_on_lean_and_drf_answers_alike(running: Experiment) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    user = {"user_id": "17850", "k": 2}
    changed = {"SECURE_REFERRER_POLICY": "no-referrer", "X_FRAME_OPTIONS": "sameorigin",
               "SECURE_CONTENT_TYPE_NOSNIFF": False, "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
               "SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_PRELOAD": True}  # fmt: skip
    with override_settings(**changed):
        # Both built now, as at a process's start: Django's handler builds its middleware, the lean path its
        # headers from the same middleware.
        django, alone = get_wsgi_application(), LeanDispatcher(_no_django, log=write_log, connection_upkeep=_keep)
        answers = {
            scheme: [_call(app, RECS, user, authorization=serve, scheme=scheme)[:2] for app in (alone, django)]
            for scheme in ("http", "https")
        }
    expected = {"Content-Type": "application/json", "Vary": "Accept", "Allow": "POST, OPTIONS",
                "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": _policy()}  # fmt: skip
    assert answers["http"] == [(200, expected)] * 2
    assert answers["https"] == [(200, {**expected, "Strict-Transport-Security": "max-age=3600; preload"})] * 2
    assert _call(ALONE, RECS, user, authorization=serve)[:2] == (200, _same_headers())  # built before: unchanged

    without = [path for path in settings.MIDDLEWARE if not path.endswith("XFrameOptionsMiddleware")]
    with override_settings(MIDDLEWARE=without):
        django, alone = get_wsgi_application(), LeanDispatcher(_no_django, log=write_log, connection_upkeep=_keep)
        answers["unframed"] = [_call(app, RECS, user, authorization=serve)[:2] for app in (alone, django)]
    unframed = {name: value for name, value in _same_headers().items() if name != "X-Frame-Options"}
    assert answers["unframed"] == [(200, unframed)] * 2

    with override_settings(SECURE_SSL_REDIRECT=True):  # plain HTTP is Django's to redirect
        django = get_wsgi_application()
        lean, alone = (LeanDispatcher(app, log=write_log, connection_upkeep=_keep) for app in (django, _no_django))
        status, headers, _ = _call(lean, RECS, user, authorization=serve)
        assert (status, headers["Location"]) == (301, f"https://testserver{RECS}")
        assert _call(alone, RECS, user, authorization=serve, scheme="https")[0] == 200


@pytest.fixture
def buffer() -> Iterator[LogBuffer]:
    log = LogBuffer(flush_seconds=0.05)
    yield log
    log.stop()  # ends the flusher thread and its database connection


@pytest.mark.django_db(transaction=True)  # the flusher thread has its own connection: it must see committed rows
def test_the_log_buffer_lands_served_requests_exposures_and_impressions(running: Experiment, buffer: LogBuffer) -> None:
    app = LeanDispatcher(DJANGO, log=buffer.add, connection_upkeep=_keep)
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    answers = [_call(app, RECS, {"user_id": user, "k": 3}, authorization=serve)[2] for user in ("u1", "u2", "u1")]
    deadline = time.monotonic() + 10
    while ServedRequest.objects.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the background thread flushes every 50 ms

    assert buffer.pending() == 0
    assert sorted(ServedRequest.objects.values_list("user_id", flat=True)) == ["u1", "u1", "u2"]
    exposed_users = {user for answer, user in zip(answers, ("u1", "u2", "u1"), strict=True) if answer["exposed"]}
    assert set(Exposure.objects.values_list("user_id", flat=True)) == exposed_users
    for answer in answers:
        impressions = Event.objects.filter(request_id=answer["request_id"], type="impression").order_by("position")
        assert [e.item_id for e in impressions] == [item["item_id"] for item in answer["items"]]
        assert {e.arm_id is not None for e in impressions} == {answer["exposed"]}


@pytest.mark.django_db(transaction=True)
def test_buffered_exposures_stay_first_per_user(running: Experiment, buffer: LogBuffer) -> None:
    running.traffic_percent = 100
    running.save(update_fields=["traffic_percent"])
    serve.clear_cache()
    entries: list[serve.ServingLog] = []
    for _ in range(3):  # the same user three times, in time order
        serve.serve("recs-ab", "17850", 2, log=entries.append)
    buffer.add(entries[1])  # a batch holding a later exposure before an earlier one
    buffer.add(entries[0])
    buffer.flush()
    buffer.add(entries[2])  # a later batch
    buffer.flush()

    first = entries[0].exposure
    assert first is not None
    exposure = Exposure.objects.get()
    assert (exposure.user_id, exposure.arm_id, exposure.first_exposed_at) == ("17850", first[1], first[4])
    assert ServedRequest.objects.count() == 3
    assert Event.objects.filter(type="impression").count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_batch_the_database_refuses_is_stored_answer_by_answer(running: Experiment, buffer: LogBuffer) -> None:
    entries: list[serve.ServingLog] = []
    for user in ("u1", "u2"):
        serve.serve("recs-ab", user, 2, log=entries.append)
    taken = entries[0].impressions[0]  # a shop sent this impression itself before the flush
    Event.objects.create(event_id=taken[0], type="impression", user_id=taken[2], timestamp=taken[10])
    for entry in entries:
        buffer.add(entry)
    buffer.flush()

    assert ServedRequest.objects.count() == 2
    assert Event.objects.filter(type="impression").count() == 4  # the one sent before is kept, not doubled
    assert Event.objects.get(event_id=taken[0]).request_id is None


@pytest.mark.django_db
def test_clicks_are_attributed_to_the_arm_of_their_served_request(running: Experiment) -> None:
    serve = f"Bearer {create_token('shop', ['serve'])[1]}"
    ingest = f"Bearer {create_token('shop-events', ['ingest'])[1]}"
    answers = [_call(ALONE, RECS, {"user_id": f"u{i}", "k": 1}, authorization=serve)[2] for i in range(8)]
    clicks = [{"event_id": f"c{i}", "type": "click", "user_id": f"u{i}", "request_id": answer["request_id"],
               "timestamp": "2026-11-27T10:00:00Z"} for i, answer in enumerate(answers)]  # fmt: skip
    assert _call(ALONE, "/api/v1/events", clicks, authorization=ingest)[2]["stored"] == 8

    arm_names = dict(running.arms.values_list("pk", "name"))
    stored = dict(Event.objects.filter(type="click").values_list("event_id", "arm_id"))
    assert {event_id: arm_names[arm] for event_id, arm in stored.items()} == {
        f"c{i}": answer["arm"] for i, answer in enumerate(answers)
    }


@pytest.mark.django_db(transaction=True)
def test_an_answer_waits_for_the_flush_while_an_older_one_is_unstored_past_max_age(running: Experiment) -> None:
    now = [0.0]
    buffer = LogBuffer(flush_seconds=3600, max_age=0.1, clock=lambda: now[0])  # the thread never flushes by itself
    entries: list[ServingLog] = []
    for user in ("u1", "u2", "u3"):
        serve.serve("recs-ab", user, 2, log=entries.append)
    try:
        buffer.add(entries[0])
        now[0] = 0.1  # as old as allowed: still queued
        buffer.add(entries[1])
        assert (buffer.pending(), ServedRequest.objects.count()) == (2, 0)
        now[0] = 0.2  # the first answer is now too old: the next one is not answered before both are stored
        buffer.add(entries[2])
        assert (buffer.pending(), ServedRequest.objects.count()) == (0, 3)
    finally:
        buffer.stop()


@pytest.mark.django_db(transaction=True)
def test_after_close_answers_are_stored_before_add_returns(running: Experiment) -> None:
    buffer = LogBuffer(flush_seconds=3600, max_age=3600)
    entries: list[ServingLog] = []
    for user in ("u1", "u2"):
        serve.serve("recs-ab", user, 2, log=entries.append)
    try:
        buffer.add(entries[0])
        buffer.close()  # what the exit handlers call
        assert ServedRequest.objects.count() == 1
        buffer.add(entries[1])  # an answer made while the process ends
        assert (buffer.pending(), ServedRequest.objects.count()) == (0, 2)
    finally:
        buffer.stop()


def _worker_holding_an_answer(entry: ServingLog, report: Any) -> None:
    """A granian-like worker process: SIGTERM sets its shutdown event, its main function returns, and the process
    ends through multiprocessing's exit (finalizers, then os._exit). Its flusher thread is storing the answer's
    batch when the signal comes, and finishes only after it."""
    import signal
    import threading

    from serving.services import serving_log

    terminating = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: terminating.set())
    store = serving_log.store_batch

    def store_after_the_signal(batch: Any) -> None:
        report.send("storing")
        while not terminating.wait(0.05):
            pass
        store(batch)

    serving_log.store_batch = store_after_the_signal
    buffer = LogBuffer(flush_seconds=0.01, max_age=3600)
    buffer.add(entry)
    while not terminating.wait(0.05):
        pass


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_a_worker_stores_the_batch_its_flusher_is_storing_before_it_exits(running: Experiment) -> None:
    import multiprocessing
    import os
    import signal

    from django.db import connection

    entries: list[ServingLog] = []
    serve.serve("recs-ab", "u1", 2, log=entries.append)
    connection.close()  # the child opens its own connections, never this one's socket
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_holding_an_answer, args=(entries[0], sending))
    worker.start()
    try:
        assert receiving.poll(30), "the worker's flusher never started storing"
        assert receiving.recv() == "storing"
        assert ServedRequest.objects.count() == 0  # acknowledged, not stored yet
        os.kill(worker.pid, signal.SIGTERM)  # type: ignore[arg-type]
        worker.join(30)
        assert worker.exitcode == 0
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
    request_id = entries[0].served.request_id
    assert ServedRequest.objects.filter(request_id=request_id).exists()
    assert Event.objects.filter(request_id=request_id, type="impression").count() == 2
