"""The exploration share: validated in the service, the API and the wizard, locked while running, and
served with the mixture propensities (DRF/service path and the lean path's buffered log)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.roles import PRODUCT_MANAGERS
from engine.offpolicy.exploration import POOL_FACTOR, is_explored, propensities
from experiments.models import Experiment
from experiments.services.lifecycle import ExperimentError, TransitionError, transition, update_experiment
from recommenders.serving import model_for_run
from serving.models import Event, ServedRequest
from serving.services import serve
from serving.services.serving_log import LogBuffer
from tests.experiments.factories import (
    EXPERIMENT,
    USERS,
    draft_experiment,
    exploring,
    product_manager,
    trained_variants,
    wizard_data,
)
from tests.recommenders.factories import user_with_role


@pytest.fixture
def variants(tmp_path: Path, settings: Any) -> Any:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    return trained_variants(tmp_path)


@pytest.mark.django_db
def test_service_refuses_exploration_outside_0_to_20_and_locks_it_while_running(variants: Any) -> None:
    owner = product_manager()
    with pytest.raises(ExperimentError) as refused:
        draft_experiment(owner, "too-much", exploration_percent=25.0)
    assert refused.value.errors == {"exploration_percent": "must lie in [0, 20]"}
    with pytest.raises(ExperimentError) as negative:
        draft_experiment(owner, "negative", exploration_percent=-1.0)
    assert negative.value.errors == {"exploration_percent": "must lie in [0, 20]"}
    assert not Experiment.objects.exists()

    experiment = draft_experiment(owner, "fine", exploration_percent=5.0)
    experiment = update_experiment(experiment, {"exploration_percent": 10.0}, owner)
    assert experiment.exploration_percent == 10.0
    transition(experiment, "start", owner)
    with pytest.raises(TransitionError, match="exploration_percent can only change in a draft"):
        update_experiment(experiment, {"exploration_percent": 15.0}, owner)
    experiment.refresh_from_db()
    assert experiment.exploration_percent == 10.0


@pytest.mark.django_db
def test_api_refuses_bad_exploration_with_the_reason(variants: Any) -> None:
    pm = APIClient()
    pm.force_authenticate(user_with_role("pm", PRODUCT_MANAGERS))
    refused = pm.post("/api/v1/experiments/", {**EXPERIMENT, "exploration_percent": 30}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"exploration_percent": "must lie in [0, 20]"}
    assert not Experiment.objects.exists()
    created = pm.post("/api/v1/experiments/", {**EXPERIMENT, "exploration_percent": 10}, format="json")
    assert created.status_code == 201
    assert created.json()["exploration_percent"] == 10.0
    assert pm.post("/api/v1/experiments/home-recs/start/").status_code == 200
    locked = pm.patch("/api/v1/experiments/home-recs/", {"exploration_percent": 5}, format="json")
    assert locked.status_code == 409


@pytest.mark.django_db
def test_wizard_shows_a_field_error_for_too_much_exploration(variants: Any) -> None:
    client = Client()
    client.force_login(product_manager())
    data = wizard_data(exploration_percent="35")
    response = client.post("/experiments/new/", data)
    assert response.status_code == 200
    assert response.context["form"].errors["exploration_percent"] == [
        "must lie in [0, 20] %: every explored request shows a random ordering, which costs CTR"
    ]
    assert not Experiment.objects.exists()
    response = client.post("/experiments/new/", wizard_data(exploration_percent="12.5"))
    assert response.status_code == 302
    assert Experiment.objects.get(key="home-knn").exploration_percent == 12.5


@pytest.mark.django_db
def test_explored_requests_log_the_mixture_propensities(variants: Any) -> None:
    experiment = exploring(20.0)
    answers = [serve.serve(experiment.key, user, 5) for _ in range(6) for user in USERS]
    explored = 0
    for answer in answers:
        request = ServedRequest.objects.get(request_id=answer["request_id"])
        assert request.exploration_share == 0.2
        assert request.explored == answer["explored"] == is_explored(answer["request_id"], 0.2)
        explored += request.explored
        arms = list(experiment.arms.order_by("position"))
        rankings = {a.pk: [r.item_id for r in model_for_run(a.training_run).recommend(request.user_id, 5 * POOL_FACTOR)]  # type: ignore[arg-type]
                    for a in arms}  # fmt: skip
        top = rankings[request.arm_id][:5]
        pool = list(dict.fromkeys(item for a in arms for item in rankings[a.pk]))  # C: both arms' top M
        shown = [item["item_id"] for item in answer["items"]]
        if request.explored:
            assert set(shown) <= set(pool)
            assert len(set(shown)) == 5
        else:
            assert shown == top
        logged = list(
            Event.objects.filter(request_id=request.request_id, type="impression")
            .order_by("position")
            .values_list("propensity", flat=True)
        )
        assert logged == pytest.approx(propensities(top, pool, shown, 0.2))
        if not request.explored:  # the top 5 in order: (1 - e) + e / |C| each
            assert logged == pytest.approx([0.8 + 0.2 / len(pool)] * 5)
    assert explored == sum(is_explored(a["request_id"], 0.2) for a in answers)
    assert explored > 0  # 60 requests at 20 %: none explored has probability 0.8^60 = 1.5e-6


@pytest.mark.django_db
def test_without_exploration_impressions_keep_the_arm_probability(variants: Any) -> None:
    experiment = exploring(0.0, key="plain-ab")
    answer = serve.serve(experiment.key, "17850", 4)
    request = ServedRequest.objects.get(request_id=answer["request_id"])
    assert (request.exploration_share, request.explored, answer["explored"]) == (0.0, False, False)
    propensities_logged = set(Event.objects.filter(request_id=request.request_id).values_list("propensity", flat=True))
    assert propensities_logged == {answer["arm_probability"]} == {0.5}


@pytest.mark.django_db(transaction=True)  # the flusher thread has its own connection
def test_the_lean_paths_buffered_log_stores_the_exploration_flags(variants: Any) -> None:
    experiment = exploring(20.0)
    buffer = LogBuffer(flush_seconds=0.05)
    try:
        answers = [serve.serve(experiment.key, user, 3, log=buffer.add) for user in USERS for _ in range(3)]
        deadline = time.monotonic() + 10
        while ServedRequest.objects.count() < len(answers) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        buffer.stop()
    stored = dict(ServedRequest.objects.values_list("request_id", "explored"))
    assert {str(k): v for k, v in stored.items()} == {a["request_id"]: a["explored"] for a in answers}
    assert set(ServedRequest.objects.values_list("exploration_share", flat=True)) == {0.2}
    assert Event.objects.filter(type="impression", propensity__isnull=True).count() == 0
