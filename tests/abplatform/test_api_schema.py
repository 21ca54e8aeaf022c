"""The OpenAPI schema documents what the endpoints really read and answer: the variants' recommend endpoint's
body and answer (checked against real answers), and every endpoint's refusals (core.api_schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.roles import DATA_SCIENTISTS, REVIEWERS
from recommenders import serving
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from tests.recommenders.factories import retail_sample, user_with_role

RECOMMEND = "/api/v1/variants/{id}/recommend/"
TRANSITION = {403, 404, 409}

# Every operation's documented refusals. A new endpoint fails the last test until it is listed here with its own.
# (The results and segments endpoints are analysis's, documented there.)
REFUSALS: dict[tuple[str, str], set[int]] = {
    ("get", "/api/v1/alerts"): {403},
    ("post", "/api/v1/alerts/{id}/acknowledge"): {403, 404, 409},
    ("post", "/api/v1/alerts/{id}/resolve"): {403, 404, 409},
    ("get", "/api/v1/algorithms/"): {403},
    ("get", "/api/v1/variants/"): {403},
    ("post", "/api/v1/variants/"): {400, 403},
    ("get", "/api/v1/variants/{id}/"): {403, 404},
    ("post", "/api/v1/variants/{id}/train/"): {403, 404, 503},
    ("post", "/api/v1/variants/{id}/evaluate/"): {400, 403, 404, 503},
    ("get", "/api/v1/variants/{id}/metrics/"): {403, 404},
    ("post", RECOMMEND): {400, 403, 404, 409},
    ("get", "/api/v1/training-runs/"): {403},
    ("get", "/api/v1/training-runs/{id}/"): {403, 404},
    ("get", "/api/v1/evaluations/"): {403},
    ("get", "/api/v1/evaluations/{id}/"): {403, 404},
    ("get", "/api/v1/experiments/"): {403},
    ("post", "/api/v1/experiments/"): {400, 403},
    ("get", "/api/v1/experiments/{key}/"): {403, 404},
    ("patch", "/api/v1/experiments/{key}/"): {400, 403, 404, 409},
    **{("post", f"/api/v1/experiments/{{key}}/{name}/"): TRANSITION
       for name in ("start", "pause", "resume", "stop", "conclude", "archive")},
    ("post", "/api/v1/experiments/{key}/early-read/"): {400, 403, 404, 409},
    ("get", "/api/v1/experiments/{key}/changes/"): {403, 404},
    ("get", "/api/v1/experiments/{key}/decisions/"): {403, 404},
    ("post", "/api/v1/experiments/{key}/decisions/"): {400, 403, 404, 409},
    ("post", "/api/v1/experiments/{key}/recommendations"): {400, 401, 403, 404, 409, 413},
    ("post", "/api/v1/events"): {400, 401, 403, 413},
    ("get", "/api/v1/experiments/{key}/simulations"): {403, 404},
    ("post", "/api/v1/experiments/{key}/simulations"): {400, 403, 404, 409, 503},
    ("get", "/api/v1/experiments/{key}/simulations/{run_id}"): {403, 404},
    ("post", "/api/v1/experiments/{key}/simulations/{run_id}/cancel"): {403, 404, 409},
    ("get", "/api/v1/offpolicy-estimates"): {400, 403},
    ("post", "/api/v1/offpolicy-estimates"): {400, 403, 503},
    ("get", "/api/v1/offpolicy-estimates/{estimate_id}"): {403, 404},
}  # fmt: skip
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].removeprefix("#/components/schemas/")]
    return node


def _body(schema: dict[str, Any], holder: dict[str, Any]) -> dict[str, Any]:
    return _resolve(schema, holder["content"]["application/json"]["schema"])


def _conforms(schema: dict[str, Any], holder: dict[str, Any], answer: Any) -> None:
    """`answer` is valid for the documented body of `holder` (a response), with no undocumented field."""
    documented = holder["content"]["application/json"]["schema"]
    jsonschema.validate(answer, {**documented, "components": schema["components"]})
    properties = _body(schema, holder).get("properties")
    if properties and not _body(schema, holder).get("additionalProperties"):
        assert set(answer) <= set(properties), set(answer) - set(properties)


def test_the_recommend_endpoint_documents_its_body_and_its_answers_fields(schema: dict[str, Any]) -> None:
    operation = schema["paths"][RECOMMEND]["post"]
    body = _body(schema, operation["requestBody"])
    assert set(body["properties"]) == {"user_id", "k", "query"}
    assert body["required"] == ["user_id"]
    assert (body["properties"]["k"]["minimum"], body["properties"]["k"]["maximum"]) == (1, 1000)
    assert body["properties"]["k"]["default"] == 10

    answer = _body(schema, operation["responses"]["200"])
    assert set(answer["properties"]) == {"items"}
    assert answer["properties"]["items"]["type"] == "array"
    item = _resolve(schema, answer["properties"]["items"]["items"])
    assert {name: spec["type"] for name, spec in item["properties"].items()} == {
        "item_id": "string", "score": "number", "position": "integer"}  # fmt: skip
    assert set(item["required"]) == {"item_id", "score", "position"}

    refusals = operation["responses"]
    assert set(refusals) == {"200", "400", "403", "404", "409"}
    assert set(_body(schema, refusals["400"])["properties"]) == {"detail", "non_field_errors"}
    for code in ("403", "404", "409"):
        assert _body(schema, refusals[code])["properties"] == {
            "detail": {"type": "string", "description": "why the request was refused"}}  # fmt: skip
    assert "training run" in refusals["409"]["description"]


def test_every_endpoint_documents_its_refusals(schema: dict[str, Any]) -> None:
    operations = {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and path.startswith("/api/v1/") and not path.endswith(("/results/", "/segments/"))
    }
    assert set(operations) == set(REFUSALS)
    for key, codes in REFUSALS.items():
        responses = operations[key]["responses"]
        documented = {int(code) for code in responses if int(code) >= 400}
        assert documented == codes, key
        for code in codes:
            response = responses[str(code)]
            assert response["description"], (key, code)
            body = _body(schema, response)  # the events' 400 is one of two bodies: their answer, or a detail
            alternatives = [_resolve(schema, one) for one in body.get("oneOf", [body])]
            assert any("detail" in one["properties"] for one in alternatives), (key, code)
        if 503 in codes:
            assert responses["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}, key
        if 401 in codes:
            assert operations[key]["security"] == [{"apiToken": []}], key


@pytest.mark.django_db
def test_the_recommend_endpoints_real_answers_are_the_documented_ones(
    schema: dict[str, Any], tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serving.clear_cache()
    dataset = retail_sample(tmp_path, rows=1500)
    trained = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    run_training(queue_training(trained, send=False).pk)
    untrained = register_variant(VariantSpec("knn", "item_knn", dataset.name, {}))
    client = APIClient()
    client.force_authenticate(user_with_role("dana", DATA_SCIENTISTS))
    documented = schema["paths"][RECOMMEND]["post"]["responses"]

    answers = {
        200: client.post(f"/api/v1/variants/{trained.pk}/recommend/", {"user_id": "17850", "k": 3}, format="json"),
        400: client.post(f"/api/v1/variants/{trained.pk}/recommend/", {"k": 0}, format="json"),
        404: client.post("/api/v1/variants/999999/recommend/", {"user_id": "17850"}, format="json"),
        409: client.post(f"/api/v1/variants/{untrained.pk}/recommend/", {"user_id": "17850"}, format="json"),
    }
    nobody = APIClient()
    nobody.force_authenticate(user_with_role("nobody", None))
    answers[403] = nobody.post(f"/api/v1/variants/{trained.pk}/recommend/", {"user_id": "17850"}, format="json")
    for code, response in answers.items():
        assert response.status_code == code, response.content
        _conforms(schema, documented[str(code)], response.json())
    items = answers[200].json()["items"]
    assert [item["position"] for item in items] == [1, 2, 3]
    assert set(answers[400].json()) == {"user_id", "k"}

    # A reviewer may try variants too (recommend needs only view_variant).
    reviewer = APIClient()
    reviewer.force_authenticate(user_with_role("rev", REVIEWERS))
    tried = reviewer.post(f"/api/v1/variants/{trained.pk}/recommend/", {"user_id": "x", "k": 2}, format="json")
    assert tried.status_code == 200
    _conforms(schema, documented["200"], tried.json())
