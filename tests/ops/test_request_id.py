"""The request id through Django: the answer's X-Request-ID (API, pages, errors), the served request's row
(the DRF path's synchronous write), and the log lines of the request. The lean path and the buffered COPY
are tested against a real server (test_real_server.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.request_context import RequestIdFilter
from experiments.services.lifecycle import transition
from serving.models import ServedRequest
from serving.services import serve, tokens
from serving.services.tokens import create_token
from tests.experiments.factories import draft_experiment, product_manager, trained_variants


@pytest.fixture
def django_request_log() -> Iterator[list[logging.LogRecord]]:
    """The records of the "django.request" logger, through the request-id filter the console handler has."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.django_db
def test_the_drf_path_returns_the_id_and_stores_it_on_the_served_request(tmp_path: Path, settings: Any) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    tokens.clear_cache()
    trained_variants(tmp_path)
    owner = product_manager()
    transition(draft_experiment(owner), "start", owner)
    secret = create_token("shop", ["serve"])[1]
    response = Client().post("/api/v1/experiments/recs-ab/recommendations", {"user_id": "17850", "k": 2},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}",
                             HTTP_X_REQUEST_ID="shop-7f3a")  # fmt: skip
    assert (response.status_code, response["X-Request-ID"]) == (200, "shop-7f3a")
    row = ServedRequest.objects.get(request_id=response.json()["request_id"])
    assert row.http_request_id == "shop-7f3a"


@pytest.mark.django_db
def test_pages_and_refusals_carry_the_id_and_their_log_line_too(django_request_log: list[logging.LogRecord]) -> None:
    client = Client()
    page = client.get("/accounts/login/", HTTP_X_REQUEST_ID="page-1")
    assert (page.status_code, page["X-Request-ID"]) == (200, "page-1")
    refused = client.post("/api/v1/events", [], content_type="application/json", HTTP_AUTHORIZATION="Bearer abp_nope",
                          HTTP_X_REQUEST_ID="api-2")  # fmt: skip
    assert (refused.status_code, refused["X-Request-ID"]) == (401, "api-2")
    missing = client.get("/no-such-page/")
    made = missing["X-Request-ID"]
    assert uuid.UUID(made).version == 4
    lines = [(record.getMessage(), record.request_id) for record in django_request_log]  # type: ignore[attr-defined]
    assert lines == [("Unauthorized: /api/v1/events", "api-2"), ("Not Found: /no-such-page/", made)]
