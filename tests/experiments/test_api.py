"""The experiments REST API: roles, lifecycle over HTTP, serving with tokens, event batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS
from experiments.models import Experiment
from serving.models import Event, Exposure, ServedRequest
from serving.services import serve
from serving.services.tokens import create_token
from tests.experiments.factories import EXPERIMENT, trained_variants
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def variants(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    return trained_variants(tmp_path)


SERVE_SCOPE = (
    "This endpoint writes experiment traffic: it needs an API token with the 'serve' scope "
    "(manage.py create_api_token); signed-in users try recommendations on the variant pages."
)


def _as(role: str | None, username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role(username, role))
    return client


def _token(*scopes: str) -> APIClient:
    _, secret = create_token(f"shop-{'-'.join(scopes)}", scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _running(pm: APIClient) -> dict[str, object]:
    assert pm.post("/api/v1/experiments/", EXPERIMENT, format="json").status_code == 201
    started = pm.post("/api/v1/experiments/home-recs/start/")
    assert started.status_code == 200, started.content
    return started.json()


def test_product_managers_configure_and_run_others_read(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    ds = _as(DATA_SCIENTISTS, "ds")
    assert ds.post("/api/v1/experiments/", EXPERIMENT, format="json").status_code == 403
    created = pm.post("/api/v1/experiments/", {**EXPERIMENT, "auto_pause": True}, format="json")
    assert created.status_code == 201
    assert (created.json()["status"], created.json()["auto_pause"]) == ("draft", True)
    assert ds.get("/api/v1/experiments/home-recs/").json()["arms"][1]["variant"] == "knn@1"
    assert ds.post("/api/v1/experiments/home-recs/start/").status_code == 403
    assert _as(None, "nobody").get("/api/v1/experiments/").status_code == 403

    assert pm.post("/api/v1/experiments/home-recs/start/").json()["status"] == "running"
    refused = pm.post("/api/v1/experiments/home-recs/start/")
    assert refused.status_code == 409
    assert "cannot start home-recs: it is running" in refused.json()["detail"]
    locked = pm.patch("/api/v1/experiments/home-recs/", {"primary_metric": "conversion_rate"}, format="json")
    assert locked.status_code == 409
    assert pm.patch("/api/v1/experiments/home-recs/", {"traffic_percent": 50}, format="json").status_code == 400
    changes = pm.get("/api/v1/experiments/home-recs/changes/").json()
    assert [c["action"] for c in changes] == ["create", "start"]
    assert changes[1]["user"] == "pm"


def test_bad_experiment_configuration_answers_field_errors(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    body = {
        **EXPERIMENT,
        "traffic_percent": 150,
        "arms": [{"name": "control", "variant": "ghost@1", "is_control": True}],
    }
    response = pm.post("/api/v1/experiments/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"traffic_percent", "arms", "arms[0].variant"}
    assert Experiment.objects.count() == 0


def test_serving_assigns_sticky_arms_and_logs_exposure_and_impressions(variants) -> None:  # type: ignore[no-untyped-def]
    _running(_as(PRODUCT_MANAGERS, "pm"))
    shop = _token("serve")
    first = shop.post("/api/v1/experiments/home-recs/recommendations", {"user_id": "17850", "k": 4}, format="json")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["experiment"] == "home-recs"
    assert body["exposed"] is True
    assert [item["position"] for item in body["items"]] == [1, 2, 3, 4]
    assert body["arm_probability"] == pytest.approx(0.5)
    again = shop.post("/api/v1/experiments/home-recs/recommendations", {"user_id": "17850", "k": 4}, format="json")
    assert again.json()["arm"] == body["arm"]

    assert Exposure.objects.filter(user_id="17850").count() == 1
    assert ServedRequest.objects.count() == 2
    impressions = Event.objects.filter(request_id=body["request_id"], type="impression").order_by("position")
    assert [e.item_id for e in impressions] == [item["item_id"] for item in body["items"]]
    arms = {shop.post("/api/v1/experiments/home-recs/recommendations", {"user_id": f"u{i}", "k": 1},
                      format="json").json()["arm"] for i in range(40)}  # fmt: skip
    assert arms == {"control", "knn"}


def test_paused_experiments_serve_the_control_unexposed(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    _running(pm)
    pm.post("/api/v1/experiments/home-recs/pause/")
    serve.clear_cache()
    body = _token("serve").post("/api/v1/experiments/home-recs/recommendations", {"user_id": "17850"},
                                format="json").json()  # fmt: skip
    assert (body["arm"], body["exposed"], body["arm_probability"]) == ("control", False, 1.0)
    assert Exposure.objects.count() == 0


def test_serving_refuses_bad_requests_clearly(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    pm.post("/api/v1/experiments/", EXPERIMENT, format="json")
    shop = _token("serve")
    draft = shop.post("/api/v1/experiments/home-recs/recommendations", {"user_id": "1"}, format="json")
    assert (draft.status_code, draft.json()["detail"]) == (
        409,
        "home-recs is draft: only started experiments serve traffic.",
    )
    assert shop.post("/api/v1/experiments/nope/recommendations", {"user_id": "1"}, format="json").status_code == 404
    assert shop.post("/api/v1/experiments/home-recs/recommendations", {"k": 0}, format="json").json().keys() == {
        "user_id",
        "k",
    }
    ingest_only = _token("ingest")
    refused = ingest_only.post("/api/v1/experiments/home-recs/recommendations", {"user_id": "1"}, format="json")
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        SERVE_SCOPE,
    )
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer abp_not-a-real-token")
    assert bad.post("/api/v1/events", [], format="json").status_code == 401


def test_event_batches_report_errors_per_index_and_count_duplicates(variants) -> None:  # type: ignore[no-untyped-def]
    shop = _token("ingest")
    events = [
        {
            "event_id": "a1",
            "type": "click",
            "user_id": "17850",
            "item_id": "85123A",
            "timestamp": "2026-11-27T10:00:00Z",
        },
        {"event_id": "a2", "type": "purchase", "user_id": "17850", "revenue": -1, "timestamp": "2026-11-27T10:00:00Z"},
    ]
    answer = shop.post("/api/v1/events", {"events": events}, format="json")
    assert answer.status_code == 200
    assert answer.json() == {"received": 2, "stored": 1, "duplicates": 0, "rejected": 1, "errors": [
        {"index": 1, "event_id": "a2", "error": "revenue must be a non-negative amount, got -1"}]}  # fmt: skip
    repeat = shop.post("/api/v1/events", events[:1], format="json").json()
    assert (repeat["stored"], repeat["duplicates"]) == (0, 1)
    all_bad = shop.post("/api/v1/events", events[1:], format="json")
    assert all_bad.status_code == 400
    malformed = shop.post("/api/v1/events", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    too_many = shop.post("/api/v1/events", [events[0]] * 10_001, format="json")
    assert (too_many.status_code, too_many.json()["detail"]) == (
        413,
        "a batch holds at most 10,000 events; this one has 10,001",
    )
    huge = shop.post("/api/v1/events", json.dumps([{"event_id": "x" * 100, "pad": "y" * 1000}] * 9000),
                     content_type="application/json")  # fmt: skip
    assert huge.status_code == 413
    assert Event.objects.count() == 1


def test_reviewers_record_decisions_once_the_experiment_stopped(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    _running(pm)
    reviewer = _as(REVIEWERS, "rev")
    decision = {"outcome": "ship", "winning_arm": "knn", "rationale": "CTR up, guardrails fine"}
    early = reviewer.post("/api/v1/experiments/home-recs/decisions/", decision, format="json")
    assert early.status_code == 409
    pm.post("/api/v1/experiments/home-recs/stop/")
    assert pm.post("/api/v1/experiments/home-recs/decisions/", decision, format="json").status_code == 403
    recorded = reviewer.post("/api/v1/experiments/home-recs/decisions/", decision, format="json")
    assert recorded.status_code == 201, recorded.content
    assert recorded.json()["reviewer"] == "rev"
    assert reviewer.get("/api/v1/experiments/home-recs/decisions/").json()[0]["winning_arm"] == "knn"


def test_results_count_what_was_served_and_clicked(variants) -> None:  # type: ignore[no-untyped-def]
    pm = _as(PRODUCT_MANAGERS, "pm")
    _running(pm)
    shop = _token("serve")
    served = [
        shop.post("/api/v1/experiments/home-recs/recommendations", {"user_id": f"u{i}", "k": 3}, format="json").json()
        for i in range(20)
    ]
    clicks = [
        {"event_id": f"c{i}", "type": "click", "user_id": f"u{i}", "request_id": answer["request_id"],
         "item_id": answer["items"][0]["item_id"], "experiment": "home-recs", "timestamp": "2026-11-27T10:00:00Z"}
        for i, answer in enumerate(served) if i % 4 == 0
    ]  # fmt: skip
    assert _token("ingest").post("/api/v1/events", clicks, format="json").json()["stored"] == 5

    from datetime import timedelta

    from analysis.services.rollups import recompute

    # The beat task folds what arrived more than 10 s ago; the test folds everything now.
    recompute(Experiment.objects.get(key="home-recs").pk, lag=timedelta(0))
    results = pm.get("/api/v1/experiments/home-recs/results/").json()
    arms = {arm["name"]: arm for arm in results["arms"]}
    assert sum(arm["users"] for arm in arms.values()) == 20
    assert sum(arm["impressions"] for arm in arms.values()) == 60
    assert sum(arm["clicks"] for arm in arms.values()) == 5
    by_arm = {"control": 0, "knn": 0}
    for i, answer in enumerate(served):
        by_arm[answer["arm"]] += i % 4 == 0
    assert {name: arm["clicks"] for name, arm in arms.items()} == by_arm
    assert results["comparisons"][0]["arm"] == "knn"
    assert "srm" in results


def test_create_api_token_prints_the_secret_once_and_revoke_ends_it() -> None:
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("create_api_token", "shop-frontend", "--scope", "ingest", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    assert secret.startswith("abp_")
    from serving.models import ApiToken

    token = ApiToken.objects.get(name="shop-frontend")
    assert (token.scopes, secret in token.key_hash) == (["ingest"], False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.post("/api/v1/events", [], format="json").json()["received"] == 0  # authenticated
    call_command("create_api_token", "shop-frontend", "--revoke", stdout=io.StringIO())
    assert client.post("/api/v1/events", [], format="json").status_code == 401
    call_command("create_api_token", "shop", stdout=io.StringIO())
    assert ApiToken.objects.get(name="shop").scopes == ["ingest", "serve"]  # a shop's: simulate only when asked
    with pytest.raises(CommandError, match="a token named 'shop-frontend' exists already"):
        call_command("create_api_token", "shop-frontend", stdout=io.StringIO())
