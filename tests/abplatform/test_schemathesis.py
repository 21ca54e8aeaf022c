"""The OpenAPI schema matches the live server: schemathesis sends every operation of /api/schema/ a bounded number
of generated requests (deterministic) against pytest-django's live server, with real data behind them (trained
variants, a running experiment, a product manager's session, an API token with the serve and ingest scopes; the
lean path in front of Django, as in production), and every answer must be no server error and match the schema:
its status code, content type, body and headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.roles import DATA_SCIENTISTS, REVIEWERS
from experiments.models import Experiment
from experiments.services.lifecycle import transition
from recommenders.models import TrainingRun
from serving.lean import LeanDispatcher
from serving.services.serve import write_log
from serving.services.tokens import create_token
from simulation.models import SimulationRun
from tests.experiments.factories import draft_experiment, product_manager, trained_variants

pytestmark = pytest.mark.slow

# Generated requests per operation: positive ones (valid for the schema; the path's ids replaced by real objects'
# in about half, see _real_ids) and negative ones (invalid for the schema: the refusal must be documented too).
POSITIVE, NEGATIVE = 30, 15
CHECKS = [
    schemathesis.checks.not_a_server_error,  # type: ignore[attr-defined]
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# The operations that take an API token rather than a session (the shops' endpoints).
TOKEN_OPERATIONS = {"/api/v1/experiments/{key}/recommendations", "/api/v1/events"}
# Run last, in this order: they end the experiment the others use (a transition refused in the new state is a 409,
# which the schema documents, so they stay in).
LAST = ["pause", "resume", "stop", "conclude", "archive"]
# The operations whose schema says all that the server checks in a request: a request valid for the schema is not
# refused with a 400 (before, the schema allowed "" and " " as user_id, which the server refuses). Elsewhere a
# valid request may still be refused by the service (e.g. an arm naming no variant, an event in the future).
ACCEPTS_VALID = {"/api/v1/experiments/{key}/recommendations", "/api/v1/variants/{id}/recommend/"}
# Nothing is excluded: every operation of the schema is sent its examples. Those that queue a job (train, evaluate,
# simulations, off-policy estimates) queue it on the test broker with no worker listening: nothing runs (a later
# worker finds no such job: the tables are emptied after the test).
EXCLUDED: dict[tuple[str, str], str] = {}


def _order(operation: Any) -> tuple[int, str]:
    tail = operation.path.rstrip("/").rsplit("/", 1)[-1]
    return (LAST.index(tail) + 1 if tail in LAST else 0, f"{operation.path} {operation.method}")


@pytest.fixture
def lean_live_server(live_server: Any) -> Iterator[Any]:
    """The live server as production serves: the lean path (serving/lean.py, abplatform/wsgi.py) in front of
    Django, answering the plainly valid token requests for recommendations and events itself. (Served answers
    are written at once rather than through the process's buffer, whose thread would outlive the test.)"""
    httpd = live_server.thread.httpd
    django_app = httpd.get_app()
    httpd.set_app(LeanDispatcher(django_app, log=write_log))
    yield live_server
    httpd.set_app(django_app)


@pytest.fixture
def world(lean_live_server: Any, tmp_path: Path) -> dict[str, Any]:
    control, _ = trained_variants(tmp_path, rows=600)
    # The session's user: a product manager who is also a data scientist and a reviewer, so that each operation
    # is reached by a role that may do it (not only refused with a 403).
    pm = product_manager()
    pm.groups.add(*Group.objects.filter(name__in=[DATA_SCIENTISTS, REVIEWERS]))
    experiment = transition(draft_experiment(pm, "recs-ab"), "start", pm)
    SimulationRun.objects.create(experiment=experiment, config={"daily_users": 50, "days": 1, "seed": 5})  # queued
    _, secret = create_token("shop", ["serve", "ingest"])
    return {"pm": pm, "experiment": experiment, "variant": control, "secret": secret, "url": lean_live_server.url}


def _session_headers(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    csrf = "a" * 32
    session = client.cookies["sessionid"].value
    return {"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf}


def _real_ids(world: dict[str, Any], path: str) -> dict[str, Any]:
    """The ids of real objects for the path's parameters (the generated ones mostly name nothing: a 404)."""
    ids: dict[str, Any] = {"key": world["experiment"].key}
    if "/variants/{id}" in path:
        ids["id"] = world["variant"].pk
    elif "/training-runs/{id}" in path:
        ids["id"] = TrainingRun.objects.filter(variant=world["variant"]).values_list("pk", flat=True).first()
    ids["run_id"] = SimulationRun.objects.filter(experiment=world["experiment"]).values_list("pk", flat=True).first()
    return ids


def valid_requests_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request valid for the schema is not refused as invalid (a 400)."""
    if case.meta.generation.mode.is_positive and response.status_code == 400:
        raise AssertionError(f"a request valid for the schema was refused: {response.text[:300]}")
    return None


def _fuzz(operation: Any, url: str, headers: dict[str, str], real: dict[str, Any], seen: set[int]) -> None:
    """Send the operation POSITIVE requests valid for the schema, the path's ids replaced by real ones in about
    half, then NEGATIVE invalid ones."""
    checks = CHECKS + ([valid_requests_accepted] if operation.path in ACCEPTS_VALID else [])
    bounded = settings(
        derandomize=True,  # the same requests on every run
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )

    @settings(bounded, max_examples=POSITIVE)
    @given(case=operation.as_strategy(GenerationMode.POSITIVE), use_real=st.booleans())
    def positive(case: Any, use_real: bool) -> None:
        if use_real and case.path_parameters:
            case.path_parameters = {name: real.get(name, value) for name, value in case.path_parameters.items()}
        seen.add(case.call_and_validate(base_url=url, headers=headers, checks=checks).status_code)

    @settings(bounded, max_examples=NEGATIVE)
    @given(case=operation.as_strategy(GenerationMode.NEGATIVE))
    def negative(case: Any) -> None:
        seen.add(case.call_and_validate(base_url=url, headers=headers, checks=CHECKS).status_code)

    positive()
    if operation.method in {"post", "patch", "put"} or operation.query or operation.path_parameters:
        negative()


def test_every_operation_answers_as_the_schema_says(world: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{world['url']}/api/schema/")
    session = _session_headers(world["pm"])
    token = {"Authorization": f"Bearer {world['secret']}"}
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    assert len(operations) >= 30
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        if (operation.method, operation.path) in EXCLUDED:
            continue
        headers = token if operation.path in TOKEN_OPERATIONS else session
        real = _real_ids(world, operation.path)

        try:
            _fuzz(operation, world["url"], headers, real, statuses.setdefault(name, set()))
        except (Exception, BaseExceptionGroup) as error:  # recorded; the other operations still run
            failures[name] = str(error)[:3000]

    print("\n".join(f"{name}: {sorted(seen)}" for name, seen in statuses.items()))  # shown with -s
    assert not failures, "\n\n".join(f"== {name}\n{text}" for name, text in failures.items())
    assert len(statuses) == len(operations) - len(EXCLUDED)
    # The session and the token were taken: every operation answered something besides a refusal of who asks.
    assert not [name for name, seen in statuses.items() if seen <= {401, 403}], statuses
    assert Experiment.objects.get(key="recs-ab").status in {"stopped", "concluded", "archived"}
