"""The typed results: one serialiser (results_data) for every edge, and the API schema built from the same types."""

from __future__ import annotations

import math
from datetime import date
from functools import cache
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator

from analysis.models import InterleavingDaily
from analysis.results_types import (
    ABSENT_WHEN_NULL,
    BanditComparison,
    CupedTest,
    MetricResult,
    results_data,
)
from analysis.services.results import experiment_results
from analysis.services.rollups import fold
from experiments.models import Experiment
from tests.experiments.factories import client_for, product_manager
from tests.experiments.traffic import NO_LAG, running_experiment, simulate
from tests.recommenders.factories import user_with_role


def _metric(cuped: CupedTest | None, cuped_error: str | None) -> MetricResult:
    return MetricResult(True, "primary", "sequential", None, None, "no users", None, "no users", cuped=cuped,
                        cuped_error=cuped_error)  # fmt: skip


def test_a_metric_has_cuped_keys_only_when_cuped_was_tried() -> None:
    (untried, refused) = (results_data(_metric(None, None)), results_data(_metric(None, "no variance")))  # type: ignore[arg-type]

    assert not set(ABSENT_WHEN_NULL) & set(untried)
    assert (refused["cuped"], refused["cuped_error"]) == (None, "no variance")
    assert list(untried) == ["primary", "role", "test", "absolute", "relative", "error", "bayesian",
                             "bayesian_error", "p_value_adjusted"]  # fmt: skip


def test_results_data_is_json_tuples_as_lists_and_no_float_that_is_not_finite() -> None:
    comparison = BanditComparison(
        arm="knn", control="control", arm_rate=0.1, control_rate=0.0, effect=0.1, std_error=0.01, ci_low=0.08,
        ci_high=0.12, wald_p_value=0.001, batched_z=math.inf, batched_p_value=0.0, batched_periods=2,
        p_value_adjusted=0.0, lift=None, lift_ci_low=None, lift_ci_high=None, confidence=0.95, users=40,
        periods_used=2, periods_skipped=0, verdict="treatment wins",
    )  # fmt: skip

    data = results_data(comparison)  # type: ignore[arg-type]

    assert data["batched_z"] is None
    assert data["lift"] is None


@cache
def _api_schema() -> dict[str, Any]:
    schema: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return schema


def _schema_of(component: str) -> dict[str, Any]:
    """The API schema's `component` as JSON Schema: OpenAPI 3.0's `nullable` becomes a union with null."""
    components = _api_schema()["components"]["schemas"]

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        converted = {key: convert(value) for key, value in node.items() if key not in ("nullable", "discriminator")}
        return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted

    return {"$ref": f"#/components/schemas/{component}", "components": {"schemas": convert(components)}}


def _answer(client: Client, experiment: Experiment) -> dict[str, Any]:
    response = client.get(f"/api/v1/experiments/{experiment.key}/results/")
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    assert answer == results_data(experiment_results(experiment))  # the API answers results_data
    return answer


@pytest.mark.django_db
def test_every_design_answers_what_the_api_schema_describes() -> None:
    validator = Draft202012Validator(_schema_of("ExperimentResults"))
    client = client_for(product_manager())
    tested, _, _ = running_experiment("tested-ab")
    simulate(tested, list(tested.arms.order_by("position")), users_per_arm=60)
    fold(tested.pk, lag=NO_LAG)
    answers = [_answer(client, tested), _answer(client, running_experiment("empty-ab")[0])]
    bandit, _, _ = running_experiment("bandit")
    Experiment.objects.filter(pk=bandit.pk).update(design="bandit", primary_metric="conversion_rate")
    bandit.refresh_from_db()
    answers.append(_answer(client, bandit))
    for key, tally in (("interleaving", (40, 25, 35)), ("interleaving-empty", None)):
        experiment, _, _ = running_experiment(key)
        Experiment.objects.filter(pk=experiment.pk).update(design="interleaving")
        experiment.refresh_from_db()
        if tally:
            InterleavingDaily.objects.create(experiment=experiment, day=date(2026, 11, 24), sessions=sum(tally),
                                             wins_a=tally[0], wins_b=tally[1], ties=tally[2], clicks_a=tally[0],
                                             clicks_b=tally[1])  # fmt: skip
        answers.append(_answer(client, experiment))

    for answer in answers:
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(answer)
        ]
        assert errors == [], answer["experiment"]
    assert not validator.is_valid({**answers[0], "arms": [{**answers[0]["arms"][0], "users": "60"}]})
    assert not validator.is_valid({**answers[3], "interleaving": {**answers[3]["interleaving"], "team_a": None}})
    assert answers[0]["comparisons"][0]["metrics"]["ctr"]["absolute"]["n_star"] == 30_000  # a SequentialResult
    assert answers[1]["comparisons"][0]["verdict"] == "not enough data"
    assert answers[2]["bandit"]["error"] == "no exposed users in any period yet"
    assert answers[3]["interleaving"]["sessions"] == 100
    assert answers[4]["interleaving"]["share_a"] is None


@pytest.mark.django_db
def test_the_results_endpoints_refusals_are_the_documented_ones() -> None:
    experiment, _, _ = running_experiment()
    pm = client_for(product_manager())
    documented = _api_schema()["paths"]["/api/v1/experiments/{key}/results/"]["get"]["responses"]
    answers = {
        400: pm.get(f"/api/v1/experiments/{experiment.key}/results/?traffic=fake"),
        403: client_for(user_with_role("nobody", None)).get(f"/api/v1/experiments/{experiment.key}/results/"),
        404: pm.get("/api/v1/experiments/no-such-key/results/"),
    }

    assert set(documented) == {"200", "400", "403", "404"}
    for code, response in answers.items():
        assert response.status_code == code
        component = documented[str(code)]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        Draft202012Validator(_schema_of(component)).validate(response.json())
    assert answers[400].json() == {"traffic": ["use one of all, live, simulated"]}
