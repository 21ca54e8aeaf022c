"""The bandit mode with trained arms: settings through the service, API and wizard; sticky serving under a
weight change; a simulated bandit run that updates its weights between days (PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.roles import PRODUCT_MANAGERS
from analysis.results_types import results_data
from analysis.services.results import experiment_results
from engine import bucketing
from engine.bandits import ArmCounts, thompson_update
from experiments.models import BanditUpdate, Experiment
from experiments.services import bandit_schedule
from experiments.services.lifecycle import ExperimentError, TransitionError, transition, update_experiment
from serving.models import Exposure, ServedRequest
from serving.services import serve
from simulation.models import SimulationRun
from simulation.services.runs import run_simulation
from simulation.tasks import queue_simulation
from tests.experiments.factories import (
    EXPERIMENT,
    draft_experiment,
    held_out_experiment,
    product_manager,
    trained_variants,
    wizard_data,
)
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db

BANDIT = {"design": "bandit", "primary_metric": "conversion_rate"}


@pytest.fixture
def variants(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    return trained_variants(tmp_path)


def test_the_service_refuses_bad_bandit_settings_and_locks_them_once_running(variants) -> None:  # type: ignore[no-untyped-def]
    pm = product_manager()
    with pytest.raises(ExperimentError) as refused:
        draft_experiment(pm, "bad", design="bandit", primary_metric="revenue_per_user", bandit_min_share=0.6,
                         bandit_burn_in_trials=-1, bandit_update_minutes=0)  # fmt: skip
    assert refused.value.errors == {
        "primary_metric": "a bandit allocates on a binary metric: use ctr (click-through rate) or conversion_rate, "
        "not 'revenue_per_user'",
        "bandit_min_share": "must lie in [0, 0.5]: 2 arms cannot each get more",
        "bandit_burn_in_trials": "a whole number of at least 0, got -1",
        "bandit_update_minutes": "a whole number of at least 1, got 0",
    }
    assert not Experiment.objects.filter(key="bad").exists()
    # An A/B test may use any metric and ignores the bandit settings' meaning.
    assert draft_experiment(pm, "ab", primary_metric="revenue_per_user").design == "ab"

    experiment = draft_experiment(pm, "recs-bandit", **BANDIT, bandit_min_share=0.1)
    assert (experiment.design, experiment.bandit_min_share, experiment.bandit_update_minutes) == ("bandit", 0.1, 1440)
    with pytest.raises(ExperimentError) as switched:
        update_experiment(experiment, {"primary_metric": "clicks_per_user"}, pm)
    assert list(switched.value.errors) == ["primary_metric"]
    transition(experiment, "start", pm)
    assert list(BanditUpdate.objects.filter(experiment=experiment).values_list("period", "weights")) == [
        (0, [0.5, 0.5])
    ]
    with pytest.raises(TransitionError, match="bandit_min_share can only change in a draft"):
        update_experiment(experiment, {"bandit_min_share": 0.2}, pm)


def test_the_api_answers_400_with_reasons_for_bad_bandit_settings(variants) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user_with_role("pm", PRODUCT_MANAGERS))

    refused = client.post("/api/v1/experiments/", {**EXPERIMENT, "design": "bandit", "primary_metric":
                          "clicks_per_user", "bandit_min_share": 0.7}, format="json")  # fmt: skip
    created = client.post("/api/v1/experiments/", {**EXPERIMENT, **BANDIT, "bandit_update_minutes": 60}, format="json")
    bad_patch = client.patch("/api/v1/experiments/home-recs/", {"bandit_burn_in_periods": -2}, format="json")

    assert refused.status_code == 400
    assert set(refused.json()) == {"primary_metric", "bandit_min_share"}
    assert created.status_code == 201, created.content
    assert (created.json()["design"], created.json()["bandit_update_minutes"]) == ("bandit", 60)
    assert bad_patch.status_code == 400
    assert bad_patch.json() == {"bandit_burn_in_periods": "a whole number of at least 0, got -2"}
    assert Experiment.objects.get(key="home-recs").bandit_burn_in_periods == 1


def test_the_wizard_shows_bandit_field_errors_and_creates_a_bandit(variants) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(product_manager())

    refused = client.post(reverse("experiment_pages:create"), wizard_data(
        design="bandit", primary_metric="revenue_per_user", bandit_min_share="0.9"))  # fmt: skip
    created = client.post(reverse("experiment_pages:create"), wizard_data(design="bandit", bandit_update_minutes="30"))

    page = refused.content.decode()
    assert refused.status_code == 200
    assert 'data-field="primary_metric">a bandit allocates on a binary metric' in page
    assert 'data-field="bandit_min_share">must lie in [0, 0.5]' in page
    assert created.status_code == 302
    experiment = Experiment.objects.get()
    assert (experiment.design, experiment.bandit_update_minutes, experiment.bandit_min_share) == ("bandit", 30, 0.05)


def _store(experiment: Experiment, period: int, weights: tuple[float, float], starts_at, run=None) -> None:  # type: ignore[no-untyped-def]
    update = replace(thompson_update([ArmCounts(0, 0)] * 2, period), weights=weights, burn_in=False)
    bandit_schedule.store_update(experiment.pk, run, update, starts_at)


def test_returning_users_keep_their_arm_while_new_users_follow_the_new_weights(variants) -> None:  # type: ignore[no-untyped-def]
    pm = product_manager()
    experiment = transition(draft_experiment(pm, "sticky", **BANDIT), "start", pm)
    early = [f"early{i}" for i in range(40)]
    first = {user: serve.serve("sticky", user, 3) for user in early}
    assert {answer["arm_probability"] for answer in first.values()} == {0.5}

    # Period 1 starts right after the last early exposure (live updates start SWITCH_DELAY ahead).
    last = Exposure.objects.filter(experiment=experiment).latest("first_exposed_at").first_exposed_at
    _store(experiment, 1, (0.1, 0.9), last + timedelta(microseconds=1))
    serve.clear_cache()  # as after CONFIG_TTL; also forgets the process's sticky arms: the exposure rows decide
    again = {user: serve.serve("sticky", user, 3) for user in early}
    late = [f"late{i}" for i in range(200)]
    new = {user: serve.serve("sticky", user, 3) for user in late}

    assert {u: a["arm"] for u, a in again.items()} == {u: a["arm"] for u, a in first.items()}
    assert {a["arm_probability"] for a in again.values()} == {0.5}  # the weights of their own period
    allocation = bucketing.Allocation(traffic=1.0, weights=(0.1, 0.9))
    names = ["control", "knn"]
    expected = {u: names[bucketing.assign(allocation, experiment.salt, u).arm] for u in late}  # type: ignore[index]
    assert {u: a["arm"] for u, a in new.items()} == expected
    assert {u: a["arm_probability"] for u, a in new.items()} == {
        u: 0.1 if arm == "control" else 0.9 for u, arm in expected.items()
    }
    assert sum(arm == "knn" for arm in expected.values()) > 160  # 90 % of 200, give or take
    stored = dict(ServedRequest.objects.filter(user_id__in=late).values_list("user_id", "arm_probability"))
    assert stored == {u: a["arm_probability"] for u, a in new.items()}
    exposures = dict(Exposure.objects.filter(experiment=experiment).values_list("user_id", "arm__name"))
    assert exposures == {**{u: a["arm"] for u, a in first.items()}, **expected}


def test_a_request_naming_its_running_simulation_run_is_assigned_by_the_runs_weights(variants) -> None:  # type: ignore[no-untyped-def]
    pm = product_manager()
    experiment = transition(draft_experiment(pm, "named", **BANDIT), "start", pm)
    run = SimulationRun.objects.create(experiment=experiment, status="running")
    _store(experiment, 0, (0.1, 0.9), experiment.started_at - timedelta(days=1), run=run.pk)  # the run's history
    serve.clear_cache()
    users = [f"{run.user_prefix}{i}" for i in range(100)]  # the ids the run stores its users under

    named = {user: serve.serve("named", user, 3, simulation=run.pk) for user in users}
    allocation = bucketing.Allocation(traffic=1.0, weights=(0.1, 0.9))
    names = ["control", "knn"]
    expected = {u: names[bucketing.assign(allocation, experiment.salt, u).arm] for u in users}  # type: ignore[index]
    assert {u: (a["arm"], a["arm_probability"]) for u, a in named.items()} == {
        u: (arm, 0.1 if arm == "control" else 0.9) for u, arm in expected.items()
    }
    # Serving does not read runs from user ids: without the run named, the same kind of id gets the live weights.
    unnamed = [serve.serve("named", f"{run.user_prefix}other{i}", 3) for i in range(20)]
    assert {answer["arm_probability"] for answer in unnamed} == {0.5}
    # A run without a history of this experiment leaves its requests to the live one.
    assert serve.serve("named", "someone", 3, simulation=run.pk + 1)["arm_probability"] == 0.5


def test_a_simulated_bandit_updates_its_weights_between_days_and_gets_a_verdict(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = held_out_experiment(tmp_path, key="sim-bandit")
    Experiment.objects.filter(pk=experiment.pk).update(
        design="bandit",
        primary_metric="ctr",
        bandit_burn_in_trials=100,
        bandit_update_minutes=1440,
        salt="sim-bandit-fixed",  # the key's salt has a random part: fix it, for the same traffic every run
    )
    experiment.refresh_from_db()

    run = queue_simulation(experiment, {"daily_users": 12, "days": 5, "seed": 3}, send=False)
    run_simulation(run.pk)
    run.refresh_from_db()

    assert run.status == "succeeded", run.traceback
    rows = bandit_schedule.history(experiment.pk, run.pk)
    assert [r.period for r in rows] == [0, 1, 2, 3, 4, 5]  # one per simulated day, and the one after the last
    assert [(r.starts_at - rows[0].starts_at).days for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[0].weights == [0.5, 0.5]
    # CTR: trials are impressions (k = 10 per session), burn-in until every arm has 100. After the burn-in
    # the weights follow the clicks, so these counts depend on the simulator's preference model.
    assert [r.trials for r in rows] == [[0, 0], [50, 40], [110, 80], [160, 150], [240, 170], [330, 230]]
    assert [r.burn_in for r in rows] == [True, True, True, False, False, False]
    assert len({tuple(r.weights) for r in rows}) >= 3  # the weights move once the burn-in is over
    for r in rows[:5]:
        served = set(
            ServedRequest.objects.filter(
                simulation=run, served_at__gte=r.starts_at, served_at__lt=r.starts_at + timedelta(days=1)
            ).values_list("arm__position", "arm_probability")
        )
        allocation = bucketing.Allocation(traffic=1.0, weights=tuple(r.weights))
        assert served <= {(a, bucketing.assignment_probability(allocation, a)) for a in (0, 1)}
    block = results_data(experiment_results(experiment, traffic="simulated"))["bandit"]
    assert [len(h["updates"]) for h in block["histories"]] == [6]
    assert sum(sum(c["users"]) for c in block["cohorts"]) == Exposure.objects.filter(simulation=run).count()
    (comparison,) = block["comparisons"]
    assert comparison["verdict"] in ("treatment wins", "control wins", "no significant difference")
    # This sample has a few dozen shoppers, so new users (the only ones the weights move) thin out by the day.
    both = [c for c in block["cohorts"] if min(c["users"]) > 0]
    assert comparison["periods_used"] == len(both) >= 2, [c["users"] for c in block["cohorts"]]
    assert json.dumps(block)  # JSON-ready
