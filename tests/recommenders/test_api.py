"""The variants REST API: roles, field errors, and training on a real worker process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS
from recommenders.models import TrainingRun, Variant
from tests.celery_worker import worker_process
from tests.recommenders.factories import retail_sample, user_with_role


@pytest.fixture
def dataset(tmp_path: Path):  # type: ignore[no-untyped-def]
    return retail_sample(tmp_path, rows=1500)


def _client(role: str | None, username: str = "someone") -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role(username, role))
    return client


@pytest.mark.django_db
def test_data_scientists_register_and_others_may_only_read(dataset) -> None:  # type: ignore[no-untyped-def]
    body = {"name": "ease-api", "algorithm": "ease", "dataset": dataset.name, "params": {"l2": 80}}
    created = _client(DATA_SCIENTISTS, "ds").post("/api/v1/variants/", body, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["label"], created.json()["author"], created.json()["status"]) == (
        "ease-api@1",
        "ds",
        "draft",
    )

    pm = _client(PRODUCT_MANAGERS, "pm")
    assert pm.get("/api/v1/variants/").json()["count"] == 1
    refused = pm.post("/api/v1/variants/", body, format="json")
    assert refused.status_code == 403
    assert "data scientists register" in refused.json()["detail"]
    assert _client(REVIEWERS, "rev").post(f"/api/v1/variants/{created.json()['id']}/train/").status_code == 403
    assert _client(None, "nobody").get("/api/v1/variants/").status_code == 403
    assert APIClient().get("/api/v1/variants/").status_code == 403
    assert Variant.objects.count() == 1


@pytest.mark.django_db
def test_bad_registrations_answer_400_with_field_errors(dataset) -> None:  # type: ignore[no-untyped-def]
    ds = _client(DATA_SCIENTISTS, "ds")
    response = ds.post("/api/v1/variants/", {"name": "x", "algorithm": "ease", "dataset": dataset.name,
                                             "params": {"l2": "lots"}}, format="json")  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {"params.l2": ["expected a number, got 'lots'"]}
    missing = ds.post("/api/v1/variants/", {"algorithm": "ease"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()) == {"name", "dataset"}


@pytest.mark.django_db
def test_algorithms_list_their_parameters() -> None:
    rows = _client(DATA_SCIENTISTS).get("/api/v1/algorithms/").json()
    by_name = {row["name"]: row for row in rows}
    assert {"popularity", "content_tfidf", "item_knn", "ease", "als", "bpr", "deep_mlp", "two_tower", "hybrid"} <= set(
        by_name
    )
    assert by_name["content_tfidf"]["supports_query"] is True
    assert "l2" in by_name["ease"]["params"]


@pytest.mark.django_db
def test_the_openapi_schema_is_served(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/variants/{id}/train/" in response.content


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_variant_registered_through_rest_trains_on_a_real_worker(dataset) -> None:  # type: ignore[no-untyped-def]
    from django.conf import settings

    ds = _client(DATA_SCIENTISTS, "ds")
    variant = ds.post("/api/v1/variants/", {"name": "knn", "algorithm": "item_knn", "dataset": dataset.name},
                      format="json").json()  # fmt: skip
    with worker_process(queues="training"):
        queued = ds.post(f"/api/v1/variants/{variant['id']}/train/")
        assert queued.status_code == 202
        run_id = queued.json()["id"]
        seen_progress = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run = ds.get(f"/api/v1/training-runs/{run_id}/").json()
            seen_progress.add(run["progress"])
            if run["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
    assert run["status"] == "succeeded", run
    assert run["progress"] == 100
    assert TrainingRun.objects.get(pk=run_id).artifact_path.startswith(str(settings.ARTIFACT_DIR))
    recommended = ds.post(f"/api/v1/variants/{variant['id']}/recommend/", {"user_id": "17850", "k": 3}, format="json")
    assert [item["position"] for item in recommended.json()["items"]] == [1, 2, 3]


def test_the_openapi_schema_validates_without_warnings() -> None:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/events" in out.getvalue()
