"""Bad input is refused with a reason and changes nothing else: one poisonous event never fails its batch,
deep JSON and out-of-range numbers are a 400, never a 500."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from experiments.models import Experiment
from serving.models import Event
from serving.services.tokens import create_token
from tests.experiments.factories import product_manager, trained_variants
from tests.experiments.traffic import running_experiment

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 24, 9, tzinfo=UTC).isoformat()


def _shop() -> APIClient:
    _, secret = create_token(f"shop-{uuid.uuid4().hex[:8]}", ["ingest", "serve"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _click(event_id: str, user_id: str = "u1", item_id: str = "i1") -> dict[str, object]:
    return {"event_id": event_id, "user_id": user_id, "item_id": item_id, "type": "click", "timestamp": WHEN,
            "experiment": "rollup-ab"}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("user_id", "u\x001", "user_id contains a NUL character"),
        ("event_id", "e\x00", "event_id contains a NUL character"),
        ("item_id", "i\ud800", "item_id contains a lone surrogate"),
        ("user_id", "\udfff", "user_id contains a lone surrogate"),
    ],
)
def test_one_poisonous_event_is_refused_and_the_rest_of_its_batch_is_stored(
    field: str, value: str, reason: str
) -> None:
    running_experiment()
    bad = {**_click("bad"), field: value}
    # Surrogates cannot be encoded by a JSON library that insists on valid UTF-8: send the escapes as text.
    body = "[" + ", ".join(_json(e) for e in (_click("ok-1"), bad, _click("ok-2", "u2"))) + "]"

    answer = _shop().post("/api/v1/events", body, content_type="application/json")

    assert answer.status_code == 200, answer.content
    result = answer.json()
    assert (result["received"], result["stored"]) == (3, 2)
    assert [(e["index"], e["error"].startswith(reason)) for e in result["errors"]] == [(1, True)]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["ok-1", "ok-2"]
    again = _shop().post("/api/v1/events", body, content_type="application/json").json()  # the shop's retry
    assert (again["stored"], again["duplicates"], len(again["errors"])) == (0, 2, 1)


def test_an_event_whose_type_is_a_list_is_refused_with_a_reason_not_a_500() -> None:
    running_experiment()
    answer = _shop().post("/api/v1/events", [{**_click("bad"), "type": ["click"]}, _click("ok")], format="json")
    assert answer.status_code == 200, answer.content
    assert [(e["index"], e["error"]) for e in answer.json()["errors"]] == [
        (0, "type must be one of add_to_cart, click, impression, purchase, got ['click']")
    ]


def _json(event: dict[str, object]) -> str:
    return json.dumps(event)  # escapes NUL and lone surrogates as \\u0000, \\ud800: valid JSON text


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/experiments/rollup-ab/recommendations"])
def test_deeply_nested_json_is_a_400(path: str) -> None:
    running_experiment()
    answer = _shop().post(path, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert answer.status_code == 400
    assert "nested deeper than 32 levels" in answer.json()["detail"]


def test_numbers_beyond_what_the_database_stores_are_a_400_with_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trained_variants(tmp_path)
    client = APIClient()
    client.force_login(product_manager())
    arms = [{"name": "control", "variant": "pop@1", "is_control": True}, {"name": "knn", "variant": "knn@1"}]
    body = {"key": "huge", "name": "huge", "expected_daily_users": 10**20, "arms": arms}
    answer = client.post("/api/v1/experiments/", body, format="json")
    assert answer.status_code == 400
    assert "expected_daily_users" in answer.json()
    assert not Experiment.objects.filter(key="huge").exists()


def test_a_timestamp_offset_beyond_what_postgresql_stores_is_refused_and_the_rest_of_its_batch_is_stored() -> None:
    running_experiment()
    far = {**_click("far"), "timestamp": "2026-11-24T09:00:00-23:37"}  # PostgreSQL takes offsets to +-15:59
    near = {**_click("near"), "timestamp": "2026-11-24T09:00:00+14:00"}

    answer = _shop().post("/api/v1/events", [_click("ok"), far, near], format="json")

    assert answer.status_code == 200, answer.content
    result = answer.json()
    assert (result["received"], result["stored"]) == (3, 2)
    assert [(e["index"], "UTC offset" in e["error"]) for e in result["errors"]] == [(1, True)]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["near", "ok"]


def test_an_api_path_that_names_nothing_is_a_json_404() -> None:
    answer = APIClient().get("/api/v1/experiments/not a slug/results/")

    assert (answer.status_code, answer["Content-Type"], answer.json()) == (
        404,
        "application/json",
        {"detail": "Not found."},
    )
