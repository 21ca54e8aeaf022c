"""Off-policy estimates end to end: logged exploring traffic, the estimate task (its body directly and once on
a real worker), equality with the core on the same rows, refusals, the API, the command and the variant page."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template.defaultfilters import floatformat
from django.test import Client
from rest_framework.test import APIClient

from abplatform.celery import app
from accounts.roles import DATA_SCIENTISTS, REVIEWERS
from engine.offpolicy import EstimatorConfig, SlateLog, evaluate_ranking_target
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from offpolicy.services.estimates import OffPolicyRefused, run_estimate
from offpolicy.tasks import queue_estimate
from recommenders.models import Variant
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.serving import model_for_run
from serving.models import Event, ServedRequest
from serving.services import serve
from tests.celery_worker import worker_process
from tests.experiments.factories import USERS, exploring, trained_variants
from tests.recommenders.factories import user_with_role

K = 5
SETTINGS = {"seed": 7, "n_bootstrap": 200}


@pytest.fixture
def variants(tmp_path: Path, settings: Any) -> tuple[Variant, Variant]:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    return trained_variants(tmp_path)


def logged_traffic(key: str = "explore-ab") -> Experiment:
    """An experiment with 20 % exploration, 100 served requests of 5 items, and clicks on a fixed pattern."""
    experiment = exploring(20.0, key)
    answers = [serve.serve(experiment.key, user, K) for _ in range(10) for user in USERS]
    when = datetime(2026, 11, 28, tzinfo=UTC)
    clicks = [
        Event(event_id=f"click:{i}", type="click", user_id=answer["items"] and USERS[i % len(USERS)],
              item_id=answer["items"][i % K]["item_id"], request_id=answer["request_id"], experiment=experiment,
              timestamp=when)
        for i, answer in enumerate(answers) if i % 3 == 0
    ]  # fmt: skip
    Event.objects.bulk_create(clicks)
    return experiment


def core_evaluation(experiment: Experiment, candidate: Variant) -> Any:
    """The core estimators on the same rows, built here from the ORM and `Recommender.recommend`."""
    clicked = set(Event.objects.filter(experiment=experiment, type="click").values_list("request_id", "item_id"))
    rows = list(
        Event.objects.filter(experiment=experiment, type="impression").order_by("request_id", "position")
        .values_list("request_id", "user_id", "item_id", "position", "propensity")
    )  # fmt: skip
    model = model_for_run(candidate.latest_successful_run())  # type: ignore[arg-type]
    vocabulary = sorted({r[2] for r in rows} | set(model.item_ids))
    index = {item: j for j, item in enumerate(vocabulary)}
    lists = {user: [rec.item_id for rec in model.recommend(user, K)] for user in USERS}
    target = [index[lists[user][position - 1]] if position <= len(lists[user]) else -1
              for _, user, _, position, _ in rows]  # fmt: skip
    users = {user: u for u, user in enumerate(dict.fromkeys(r[1] for r in rows))}
    log = SlateLog(
        items=np.array([index[r[2]] for r in rows]), positions=np.array([r[3] - 1 for r in rows]),
        rewards=np.array([float((r[0], r[2]) in clicked) for r in rows]), propensities=np.array([r[4] for r in rows]),
        n_items=len(vocabulary), n_positions=K, clusters=np.array([users[r[1]] for r in rows]),  # users resampled
    )  # fmt: skip
    config = EstimatorConfig(n_bootstrap=200, seed=7, interval="bca")
    return evaluate_ranking_target(log, np.array(target), config), log


@pytest.mark.django_db
def test_the_estimate_equals_the_core_estimators_on_the_same_rows(variants: tuple[Variant, Variant]) -> None:
    _, knn = variants
    experiment = logged_traffic()
    estimate = queue_estimate(knn, experiment, SETTINGS, send=False)
    run_estimate(estimate.pk)
    estimate.refresh_from_db()

    assert estimate.status == "succeeded", estimate.error
    assert (estimate.progress, estimate.n, estimate.requests) == (100, 500, 100)
    evaluation, log = core_evaluation(experiment, knn)
    for name, core in (("IPS", evaluation.ips), ("SNIPS", evaluation.snips), ("DR", evaluation.dr)):
        stored = estimate.result[name]
        assert (stored["estimate"], stored["ci_lower"], stored["ci_upper"]) == (core.estimate, core.ci_lower,
                                                                                 core.ci_upper)  # fmt: skip
        assert stored["effective_sample_size"] == core.effective_sample_size
    assert estimate.effective_sample_size == evaluation.ips.effective_sample_size
    assert estimate.result["logged_ctr"] == log.rewards.sum() / 500 == 34 / 500
    assert estimate.result["unlogged_target_mass"] == evaluation.unlogged_target_mass
    assert estimate.result["explored_requests"] == ServedRequest.objects.filter(explored=True).count()
    assert "position-wise (independent-item)" in estimate.method
    assert "pi(item, position | request) = 1" in estimate.method
    assert estimate.warnings == list(dict.fromkeys([*evaluation.warnings, *evaluation.ips.warnings,
                                                    *evaluation.snips.warnings, *evaluation.dr.warnings]))  # fmt: skip

    run_estimate(estimate.pk)  # a redelivered message finds it finished and changes nothing
    assert OffPolicyEstimate.objects.get(pk=estimate.pk).finished_at == estimate.finished_at


@pytest.mark.django_db
def test_traffic_without_exploration_is_refused_with_the_reason(variants: tuple[Variant, Variant]) -> None:
    _, knn = variants
    plain = exploring(0.0, key="plain-ab")
    serve.serve(plain.key, "17850", K)
    with pytest.raises(OffPolicyRefused, match="plain-ab logged no request with an exploration share"):
        queue_estimate(knn, plain, send=False)
    with pytest.raises(OffPolicyRefused, match="unknown setting 'confidence'"):
        queue_estimate(knn, plain, {"confidence": 0.9}, send=False)
    assert not OffPolicyEstimate.objects.exists()


@pytest.mark.django_db
def test_untrained_candidates_are_refused(variants: tuple[Variant, Variant]) -> None:
    fresh = register_variant(VariantSpec("fresh", "popularity", variants[0].dataset.name, {}))
    with pytest.raises(OffPolicyRefused, match="fresh@1 has no successful training run: train it first"):
        queue_estimate(fresh, logged_traffic(), send=False)


def imported_log(key: str, items: tuple[str, ...], propensity: float | None) -> Experiment:
    owner = User.objects.get_or_create(username="importer")[0]
    experiment = Experiment.objects.create(key=key, name=key, owner=owner, salt=key,
                                           source=Experiment.Source.IMPORTED, status="stopped")  # fmt: skip
    arm = experiment.arms.create(name="random", is_control=True)
    when = datetime(2019, 11, 24, tzinfo=UTC)
    Event.objects.bulk_create(
        Event(event_id=f"{key}:{j}", type="impression", user_id=f"unit-{j}", item_id=item, experiment=experiment,
              arm=arm, position=1 + j % 3, propensity=propensity, timestamp=when)
        for j, item in enumerate(items)
    )  # fmt: skip
    return experiment


@pytest.mark.django_db
def test_imported_logs_of_another_catalogue_or_without_propensities_are_refused(
    variants: tuple[Variant, Variant],
) -> None:
    _, knn = variants
    zozo = imported_log("obd-men", ("zozo-1", "zozo-2", "zozo-3", "zozo-1"), 1 / 34)
    with pytest.raises(OffPolicyRefused) as unknown:
        queue_estimate(knn, zozo, send=False)
    assert str(unknown.value) == (
        "none of the 3 items in obd-men's log is in data set 'retail-sample', which knn@1 was trained on: it can "
        "never show them, so these logs say nothing about its choices (an imported log from another catalogue "
        "cannot evaluate this variant)"
    )
    bare = imported_log("no-propensities", ("85123A", "71053"), None)
    with pytest.raises(OffPolicyRefused, match="no imported impression with a propensity in \\(0, 1\\]"):
        queue_estimate(knn, bare, send=False)


@pytest.mark.django_db
def test_an_imported_log_of_known_items_is_estimated(variants: tuple[Variant, Variant]) -> None:
    pop, _ = variants
    top = [rec.item_id for rec in model_for_run(pop.latest_successful_run()).recommend("unit-0", 3)]  # type: ignore[arg-type]
    log = imported_log("retail-random", (top[0], top[1], top[2], top[0], "no-such-item", top[2]), 0.25)
    Event.objects.create(event_id="retail-random:click", type="click", user_id="unit-0", item_id=top[0],
                         experiment=log, position=1, propensity=0.25,
                         timestamp=datetime(2019, 11, 24, tzinfo=UTC))  # fmt: skip
    estimate = queue_estimate(pop, log, SETTINGS, send=False)
    run_estimate(estimate.pk)
    estimate.refresh_from_db()
    # Units are cold-start users: popularity shows top[0], top[1], top[2] at positions 1-3 to each of them.
    # Matched (w = 4): unit-0 (top[0] at 1, clicked), unit-1, unit-2, unit-3 and unit-5; unit-4's item is unknown.
    assert estimate.status == "succeeded", estimate.error
    assert estimate.n == 6
    assert estimate.result["IPS"]["estimate"] == pytest.approx((1 / 0.25) / 6)
    assert estimate.result["SNIPS"]["estimate"] == pytest.approx(4 / 20)
    assert "1 logged item(s) are not in the candidate's catalogue: it never shows them (weight 0)" in estimate.warnings


@pytest.mark.django_db
def test_a_log_that_lost_its_exploring_requests_fails_with_the_reason(variants: tuple[Variant, Variant]) -> None:
    _, knn = variants
    experiment = logged_traffic()
    estimate = queue_estimate(knn, experiment, SETTINGS, send=False)
    ServedRequest.objects.filter(experiment=experiment).delete()
    run_estimate(estimate.pk)
    estimate.refresh_from_db()
    assert estimate.status == "failed"
    assert estimate.error.startswith("explore-ab logged no request with an exploration share")
    assert estimate.traceback == ""


@pytest.mark.django_db
def test_the_api_queues_and_reads_estimates_and_refuses_with_reasons(variants: tuple[Variant, Variant]) -> None:
    logged_traffic()
    ds = APIClient()
    ds.force_authenticate(user_with_role("ds", DATA_SCIENTISTS))
    reviewer = APIClient()
    reviewer.force_authenticate(user_with_role("rev", REVIEWERS))
    body = {"variant": "knn@1", "experiment": "explore-ab", "seed": 7, "n_bootstrap": 200}
    assert reviewer.post("/api/v1/offpolicy-estimates", body, format="json").status_code == 403
    created = ds.post("/api/v1/offpolicy-estimates", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "queued"
    assert created.json()["config"] == {"seed": 7, "n_bootstrap": 200}
    run_estimate(created.json()["id"])
    read = reviewer.get(f"/api/v1/offpolicy-estimates/{created.json()['id']}").json()
    assert (read["status"], read["variant"], read["experiment"], read["n"]) == ("succeeded", "knn@1", "explore-ab",
                                                                                 500)  # fmt: skip
    assert [e["id"] for e in reviewer.get("/api/v1/offpolicy-estimates?variant=knn@1").json()] == [read["id"]]

    assert ds.post("/api/v1/offpolicy-estimates", {**body, "variant": "nope@1"}, format="json").json() == {
        "variant": ["no variant 'nope@1'"]
    }
    assert ds.post("/api/v1/offpolicy-estimates", {**body, "experiment": "nope"}, format="json").json() == {
        "experiment": ["no experiment with this key"]
    }
    too_few = ds.post("/api/v1/offpolicy-estimates", {**body, "n_bootstrap": 5}, format="json")
    assert too_few.status_code == 400
    assert too_few.json() == {"n_bootstrap": ["Ensure this value is greater than or equal to 100."]}
    exploring(0.0, key="plain-ab")
    refused = ds.post("/api/v1/offpolicy-estimates", {**body, "experiment": "plain-ab"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("plain-ab logged no request with an exploration share")
    assert OffPolicyEstimate.objects.count() == 1


@pytest.mark.django_db
def test_the_command_prints_progress_and_the_table(variants: tuple[Variant, Variant]) -> None:
    logged_traffic()
    out = io.StringIO()
    call_command("estimate_ctr", "knn@1", "--experiment", "explore-ab", "--inline", "--bootstrap", "200",
                 "--seed", "7", stdout=out)  # fmt: skip
    estimate = OffPolicyEstimate.objects.get()
    text = out.getvalue()
    assert f"Estimate {estimate.pk} of knn@1 from the log of explore-ab queued." in text
    assert "100% succeeded: estimated from 500 impressions of 100 requests" in text
    ips = estimate.result["IPS"]
    assert f"IPS       {ips['estimate']:>9.4%}" in text
    assert "method: Position-wise slate IPS, SNIPS and DR." in text
    with pytest.raises(CommandError, match="No experiment 'nope'"):
        call_command("estimate_ctr", "knn@1", "--experiment", "nope")


@pytest.mark.django_db
def test_the_variant_page_shows_the_card_empty_then_filled(variants: tuple[Variant, Variant]) -> None:
    logged_traffic()
    client = Client()
    client.force_login(user_with_role("ds", DATA_SCIENTISTS))
    page = client.get("/variants/knn/1/").content.decode()
    assert 'id="predicted-ctr"' in page
    assert 'id="predicted-ctr-empty"' in page
    assert '<option value="explore-ab">explore-ab · Served by the platform</option>' in page

    queued = client.post("/experiments/offpolicy/knn/1/estimate/", {"experiment": "explore-ab", "seed": "7"})
    assert queued.status_code == 302
    estimate = OffPolicyEstimate.objects.get()
    page = client.get("/variants/knn/1/").content.decode()
    assert f'data-poll-url="/api/v1/offpolicy-estimates/{estimate.pk}"' in page
    run_estimate(estimate.pk)
    estimate.refresh_from_db()
    page = client.get("/variants/knn/1/").content.decode()
    assert 'id="predicted-ctr-empty"' not in page
    for name in ("IPS", "SNIPS", "DR"):
        # The page rounds as Django's floatformat does (half up on the decimal repr), not as f"{:.4f}".
        value = floatformat(estimate.result[name]["estimate"], 4)
        assert f'<tr data-estimator="{name}"><td>{name}</td><td class="num">{value}' in page
    assert "pi(item, position | request) = 1" in page
    assert '<th class="num">95 % interval</th>' in page  # not "0.95 interval"

    refused = client.post("/experiments/offpolicy/knn/1/estimate/", {"experiment": "nope", "seed": "7"}, follow=True)
    assert (
        "Log of experiment: Select a valid choice. nope is not one of the available choices."
        in refused.content.decode()
    )
    reviewer = Client()
    reviewer.force_login(user_with_role("rev", REVIEWERS))
    assert 'id="estimate-form"' not in reviewer.get("/variants/knn/1/").content.decode()
    assert reviewer.post("/experiments/offpolicy/knn/1/estimate/", {"experiment": "explore-ab"}).status_code == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_estimate_runs_on_a_real_worker(variants: tuple[Variant, Variant]) -> None:
    assert app.conf.task_always_eager is False
    _, knn = variants
    experiment = logged_traffic()
    with worker_process(timeout=90, queues="training"):
        estimate = queue_estimate(knn, experiment, SETTINGS)  # queued on commit, routed to "training"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            estimate.refresh_from_db()
            if estimate.status in ("succeeded", "failed"):
                break
            time.sleep(0.5)
    assert estimate.status == "succeeded", estimate.error
    evaluation, _ = core_evaluation(experiment, knn)
    assert estimate.result["IPS"]["estimate"] == evaluation.ips.estimate
    assert estimate.result["DR"]["ci_upper"] == evaluation.dr.ci_upper
