"""Interleaving experiments end to end: two arms only, one team-draft list per exposed request, clicks
credited to the contributing arm, sessions folded incrementally (= a recompute) and the verdict of
the sign test in the results."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.roles import PRODUCT_MANAGERS
from analysis.models import InterleavingDaily, InterleavingSession, InterleavingState
from analysis.services.rollups import fold, recompute
from engine import bucketing
from engine.interleaving import Tally, interleave, interleaving_test, sequential_sign_test, sessions_for_power
from experiments.models import Experiment
from experiments.services.lifecycle import (
    ArmSpec,
    ExperimentError,
    ExperimentSpec,
    create_experiment,
    update_experiment,
)
from recommenders.serving import recommend
from serving.lean import LeanDispatcher
from serving.models import Event, Exposure, ServedRequest
from serving.services import serve, tokens
from serving.services.interleaving import request_key
from serving.services.serving_log import LogBuffer
from serving.services.tokens import create_token
from tests.experiments.factories import client_for, draft_experiment, trained_variants, wizard_data
from tests.recommenders.factories import user_with_role
from tests.serving.wsgi import DJANGO, _call, _keep

pytestmark = pytest.mark.django_db
NO_LAG = timedelta(0)
KEY = "ranker-duel"
INTERLEAVED = {
    "key": KEY, "name": "kNN against popularity, interleaved", "design": "interleaving", "traffic_percent": 100,
    "arms": [{"name": "control", "variant": "pop@1", "is_control": True}, {"name": "knn", "variant": "knn@1"}],
}  # fmt: skip


@pytest.fixture
def variants(tmp_path: Path, settings: Any) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    trained_variants(tmp_path)


def _pm() -> APIClient:
    client = APIClient()
    user = User.objects.filter(username="pm").first() or user_with_role("pm", PRODUCT_MANAGERS)
    client.force_authenticate(user)
    return client


def _token(scope: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(f'shop-{scope}', [scope])[1]}")
    return client


def _running(traffic: int = 100) -> Experiment:
    pm = _pm()
    created = pm.post("/api/v1/experiments/", {**INTERLEAVED, "traffic_percent": traffic}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["design"] == "interleaving"
    assert pm.post(f"/api/v1/experiments/{KEY}/start/").status_code == 200
    return Experiment.objects.get(key=KEY)


def test_an_interleaving_experiment_has_exactly_two_arms_in_the_service_api_and_wizard(variants: None) -> None:
    _pm()
    owner = User.objects.get(username="pm")
    three = [ArmSpec("control", "pop@1", 1.0, True), ArmSpec("knn", "knn@1"), ArmSpec("pop2", "pop@1")]
    message = "an interleaving experiment has exactly two arms (control = A, the other = B), got 3"
    with pytest.raises(ExperimentError) as refused:
        create_experiment(ExperimentSpec(key="three", name="three", arms=three, design="interleaving"), owner)
    assert refused.value.errors == {"arms": message}

    answer = _pm().post("/api/v1/experiments/", {**INTERLEAVED, "arms": [*INTERLEAVED["arms"],  # type: ignore[list-item]
                                                 {"name": "pop2", "variant": "pop@1"}]}, format="json")  # fmt: skip
    assert (answer.status_code, answer.json()) == (400, {"arms": message})
    assert _pm().post("/api/v1/experiments/", {**INTERLEAVED, "design": "duel"}, format="json").json() == {
        "design": ['"duel" is not a valid choice.']
    }

    page = client_for(User.objects.get(username="pm")).post(reverse("experiment_pages:create"), wizard_data(
        design="interleaving", **{"arm-2-name": "pop2", "arm-2-variant": "pop@1", "arm-2-weight": "1"}))  # fmt: skip
    assert page.status_code == 200
    assert message in page.content.decode()

    draft = draft_experiment(owner, key="ab-three", design="ab")
    update_experiment(draft, {}, owner, arms=three)  # an A/B test may have three arms
    with pytest.raises(ExperimentError) as switched:
        update_experiment(draft, {"design": "interleaving"}, owner)
    assert switched.value.errors == {"arms": message}
    assert Experiment.objects.get(key="ab-three").design == "ab"
    assert not Experiment.objects.filter(key__in=["three", KEY, "home-knn"]).exists()


def test_an_interleaving_experiment_takes_no_exploration_share(variants: None) -> None:
    reason = ("an interleaving experiment takes no exploration share (use an A/B or bandit experiment to log "
              "exploration traffic)")  # fmt: skip
    answer = _pm().post("/api/v1/experiments/", {**INTERLEAVED, "exploration_percent": 5}, format="json")
    assert (answer.status_code, answer.json()) == (400, {"exploration_percent": reason})
    owner = User.objects.get(username="pm")
    two = [ArmSpec("control", "pop@1", 1.0, True), ArmSpec("knn", "knn@1")]
    draft = create_experiment(ExperimentSpec(key="explores", name="explores", arms=two, exploration_percent=5), owner)
    with pytest.raises(ExperimentError) as switched:
        update_experiment(draft, {"design": "interleaving"}, owner)
    assert switched.value.errors == {"exploration_percent": reason}
    assert not Experiment.objects.filter(key=KEY).exists()
    assert Experiment.objects.get(key="explores").design == "ab"


def test_an_exposed_user_gets_one_team_draft_list_of_both_arms_reproducible_from_the_request_id(
    variants: None,
) -> None:
    experiment = _running()
    answer = _token("serve").post(f"/api/v1/experiments/{KEY}/recommendations", {"user_id": "17850", "k": 6},
                                  format="json").json()  # fmt: skip

    assert (answer["arm"], answer["exposed"], answer["teams"]) == ("interleaved", True, {"A": "control", "B": "knn"})
    assert answer["arm_probability"] == 1.0
    ranking_a = [r.item_id for r in recommend("pop@1", "17850", 6)]
    ranking_b = [r.item_id for r in recommend("knn@1", "17850", 6)]
    rebuilt = interleave(ranking_a, ranking_b, 6, request_key(experiment.salt, "17850", answer["request_id"]))
    items = answer["items"]
    assert [(i["item_id"], i["team"]) for i in items] == list(zip(rebuilt.items, rebuilt.teams, strict=True))
    assert [i["position"] for i in items] == [1, 2, 3, 4, 5, 6]
    assert {i["team"] for i in items} == {"A", "B"}
    assert all(i["arm"] == {"A": "control", "B": "knn"}[i["team"]] for i in items)
    assert all(i["item_id"] in (ranking_a if i["team"] == "A" else ranking_b) for i in items)

    control, knn = experiment.arms.order_by("position")
    served = ServedRequest.objects.get(request_id=answer["request_id"])
    assert (served.arm_id, served.exposed, served.k) == (control.pk, True, 6)
    assert Exposure.objects.get(experiment=experiment, user_id="17850").arm_id == control.pk
    impressions = Event.objects.filter(request_id=answer["request_id"], type="impression").order_by("position")
    assert [(e.item_id, e.arm_id, e.event_id) for e in impressions] == [
        (i["item_id"], control.pk if i["team"] == "A" else knn.pk, f"imp:{answer['request_id']}:{i['position']}")
        for i in items
    ]


def test_users_outside_the_traffic_share_get_the_control_list_unexposed(variants: None) -> None:
    experiment = _running(traffic=50)
    allocation = serve._config(KEY).allocation
    outside = next(
        f"u{i}" for i in range(100) if not bucketing.assign(allocation, experiment.salt, f"u{i}").in_experiment
    )
    answer = _token("serve").post(f"/api/v1/experiments/{KEY}/recommendations", {"user_id": outside, "k": 4},
                                  format="json").json()  # fmt: skip
    assert (answer["arm"], answer["exposed"], answer["arm_probability"]) == ("control", False, 0.5)
    assert [i["item_id"] for i in answer["items"]] == [r.item_id for r in recommend("pop@1", outside, 4)]
    assert "team" not in answer["items"][0]
    assert not Exposure.objects.filter(user_id=outside).exists()


def _click(event_id: str, user: str, request_id: str, item: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "click", "user_id": user, "request_id": request_id, "item_id": item,
            "experiment": KEY, "timestamp": "2026-11-27T10:00:00Z"}  # fmt: skip


def _rollups(experiment: Experiment) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "sessions": sorted(
            InterleavingSession.objects.filter(experiment=experiment).values_list(
                "request_id", "simulated", "day", "shown", "clicks_a", "clicks_b"
            )
        ),
        "daily": sorted(
            InterleavingDaily.objects.filter(experiment=experiment).values_list(
                "day", "simulated", "sessions", "wins_a", "wins_b", "ties", "clicks_a", "clicks_b"
            )
        ),
        "state": list(
            InterleavingState.objects.filter(experiment=experiment).values_list("event_watermark", "uncredited_clicks")
        ),
    }


def test_clicks_are_credited_to_the_contributing_arm_and_folds_equal_a_recompute(variants: None) -> None:
    experiment = _running()
    shop, ingest = _token("serve"), _token("ingest")
    expected = {"A": 0, "B": 0, "tie": 0}
    credited = {"A": 0, "B": 0}
    for i in range(24):
        answer = shop.post(f"/api/v1/experiments/{KEY}/recommendations", {"user_id": f"u{i}", "k": 4},
                           format="json").json()  # fmt: skip
        by_team = {team: [x["item_id"] for x in answer["items"] if x["team"] == team] for team in ("A", "B")}
        request = answer["request_id"]
        if i % 4 == 0:  # one click on A's first pick: A wins
            clicks = [_click(f"c{i}", f"u{i}", request, by_team["A"][0])]
            expected["A"] += 1
        elif i % 4 == 1:  # two clicks on B's picks and one on A's: B wins 2-1
            clicks = [_click(f"c{i}-{j}", f"u{i}", request, item)
                      for j, item in enumerate([by_team["B"][0], by_team["B"][1], by_team["A"][0]])]  # fmt: skip
            expected["B"] += 1
        elif i % 4 == 2:  # one click each: a tie
            clicks = [_click(f"c{i}-{j}", f"u{i}", request, by_team[t][0]) for j, t in enumerate("AB")]
            expected["tie"] += 1
        else:  # no click: a tie as well
            clicks = []
            expected["tie"] += 1
        for click in clicks:
            credited["A" if click["item_id"] in by_team["A"] else "B"] += 1
        if clicks:
            assert ingest.post("/api/v1/events", clicks, format="json").json()["stored"] == len(clicks)
        if i == 11:
            fold(experiment.pk, lag=NO_LAG, chunk=5)  # a fold half way, in steps of a few events
    ingest.post("/api/v1/events", [_click("stray", "u0", request, "not-shown")], format="json")
    fold(experiment.pk, lag=NO_LAG, chunk=7)
    incremental = _rollups(experiment)
    fold(experiment.pk, lag=NO_LAG)  # folding again changes nothing
    assert _rollups(experiment) == incremental
    recompute(experiment.pk, lag=NO_LAG)
    assert _rollups(experiment) == incremental

    ((_day, simulated, sessions, wins_a, wins_b, ties, clicks_a, clicks_b),) = incremental["daily"]
    assert (simulated, sessions, wins_a, wins_b, ties) == (False, 24, expected["A"], expected["B"], expected["tie"])
    assert (clicks_a, clicks_b) == (credited["A"], credited["B"])
    assert incremental["state"][0][1] == 1  # the click on an item the request did not show

    results = _pm().get(f"/api/v1/experiments/{KEY}/results/").json()
    block = results["interleaving"]
    verdict = interleaving_test(Tally(expected["A"], expected["B"], expected["tie"]), alpha=experiment.alpha)
    assert (block["sessions"], block["wins_a"], block["wins_b"], block["ties"]) == (24, 6, 6, 12)
    assert (block["share_a"], block["delta"], block["p_value"]) == (verdict.share_a, verdict.delta, verdict.p_value)
    assert block["share_a_interval"] == list(verdict.share_a_interval)  # type: ignore[arg-type]
    assert block["delta_interval"] == list(verdict.delta_interval)  # type: ignore[arg-type]
    assert (block["verdict"], block["team_a"], block["team_b"]) == ("no significant difference", "control", "knn")
    assert [arm["sessions_won"] for arm in results["arms"]] == [6, 6]
    assert results["exposed_users"] == 24
    assert (results["comparisons"], results["srm"]["mismatch"]) == ([], False)
    message = "1 clicks named an item their request did not show and were not credited"
    assert results["warnings"] == [{"code": "uncredited_clicks", "message": message}]
    assert _pm().get(f"/api/v1/experiments/{KEY}/results/?traffic=simulated").json()["interleaving"]["sessions"] == 0


def test_results_page_report_and_exports_explain_the_interleaving_verdict(variants: None) -> None:
    experiment = _running()
    shop, ingest = _token("serve"), _token("ingest")
    for i in range(12):  # team B's first pick clicked in every session: B wins all 12
        answer = shop.post(f"/api/v1/experiments/{KEY}/recommendations", {"user_id": f"u{i}", "k": 4},
                           format="json").json()  # fmt: skip
        item = next(x["item_id"] for x in answer["items"] if x["team"] == "B")
        ingest.post("/api/v1/events", [_click(f"c{i}", f"u{i}", answer["request_id"], item)], format="json")
    fold(experiment.pk, lag=NO_LAG)
    client = client_for(User.objects.get(username="pm"))

    # While it runs, the verdict rests on the always-valid test: 12 sessions are too few for it.
    page = client.get(reverse("experiment_pages:results", args=[KEY])).content.decode()
    p_value, sequential = interleaving_test(Tally(0, 12, 0)).p_value, sequential_sign_test(Tally(0, 12, 0))
    low, high = sequential.delta_sequence  # type: ignore[misc]
    assert 'data-verdict="inconclusive"' in page
    assert f"Δ = -1.000 [{low:+.3f}, {high:+.3f}]; no significant preference (always-valid sign test p = " \
           f"{sequential.p_value:.3g})" in page  # fmt: skip
    assert f'<dd data-test="sequential">p = {sequential.p_value:.3f}, Δ in [{low:+.3f}, {high:+.3f}] ' \
           '<span class="badge">verdict basis</span>' in page  # fmt: skip
    assert "<dd data-verdict-text>no significant difference</dd>" in page
    block = _pm().get(f"/api/v1/experiments/{KEY}/results/").json()["interleaving"]
    assert (block["verdict_basis"], block["verdict_p_value"]) == ("sequential", sequential.p_value)
    assert (block["p_value"], block["sequential"]["delta_sequence"]) == (p_value, [low, high])
    assert block["history"][0]["sequential_p_value"] == sequential.p_value
    home = client.get("/").content.decode()  # the home page lists running experiments
    assert '<span class="badge inconclusive" title="knn won 12 and control 0 of 12 sessions' in home
    assert '<td class="num">12</td>' in home  # 12 exposed users, each of whom saw both arms

    # Stopping does not switch the test (that would be optional stopping): the always-valid verdict stays.
    assert _pm().post(f"/api/v1/experiments/{KEY}/stop/").status_code == 200
    serve.clear_cache()
    page = client.get(reverse("experiment_pages:results", args=[KEY])).content.decode()
    assert 'data-verdict="inconclusive"' in page
    # A fixed-horizon design reads the sign test at the plan's sessions, or after a recorded early read.
    Experiment.objects.filter(pk=experiment.pk).update(analysis_method="fixed_horizon")
    page = client.get(reverse("experiment_pages:results", args=[KEY])).content.decode()
    assert 'data-verdict="needs-data"' in page
    assert client.post(reverse("experiment_pages:early-read", args=[KEY]),
                       {"reason": "the shop closes the surface this week"}).status_code == 302  # fmt: skip
    page = client.get(reverse("experiment_pages:results", args=[KEY])).content.decode()
    assert 'data-verdict="winning"' in page
    assert "knn won 12 and control 0 of 12 sessions (0 ties); Δ = -1.000" in page
    assert f"sign test p = {p_value:.3g} &lt; 0.05" in page
    assert "tied sessions carry no preference and are left out of the test" in page
    assert 'id="chart-interleaving"' in page
    assert 'id="summary"' not in page  # no A/B table, no SRM check: every exposed user sees both arms
    assert "SRM" not in page
    assert "<dd data-verdict-text>knn wins</dd>" in page

    report = client.get(reverse("experiment_pages:report", args=[KEY])).content.decode()
    assert 'id="interleaving"' in report
    assert "<dd data-verdict-text>knn wins</dd>" in report
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("experiment_pages:export-csv", args=[KEY])).content
                                           .decode())))  # fmt: skip
    assert [(r["day"] == "all", r["sessions"], r["wins_b"], r["verdict"], r["verdict_basis"]) for r in rows][-1] == (
        True, "12", "12", "knn wins", "fixed_horizon")  # fmt: skip
    assert float(rows[0]["sequential_p_value"]) == pytest.approx(sequential.p_value)
    assert len(rows) == 2  # one day, then the total
    document = json.loads(client.get(reverse("experiment_pages:export-json", args=[KEY])).content)
    assert document["results"]["interleaving"]["wins_b"] == 12
    assert document["experiment"]["design"] == "interleaving"

    # Without planning fields the always-valid mixture is tightest at the default 1,000 decided sessions;
    # with them, at the plan's decided sessions.
    assert document["results"]["interleaving"]["sequential"]["n_star"] == 1000
    experiment.baseline_rate, experiment.minimum_detectable_effect = 0.3, 0.1
    experiment.save(update_fields=["baseline_rate", "minimum_detectable_effect"])
    decided = sessions_for_power(0.3 / 2.1, 0.3 * 1.1 / 2.1).decided
    planned = _pm().get(f"/api/v1/experiments/{KEY}/results/").json()["interleaving"]["sequential"]
    assert planned["n_star"] == decided
    assert planned["p_value"] == sequential_sign_test(Tally(0, 12, 0), n_star=decided).p_value
    assert planned["p_value"] != sequential.p_value
    page = client.get(reverse("experiment_pages:results", args=[KEY])).content.decode()
    assert f"tightest at {decided:,} decided sessions, the plan's" in page


def test_the_plan_of_an_interleaving_experiment_is_in_sessions(variants: None) -> None:
    client = client_for(User.objects.filter(username="pm").first() or user_with_role("pm", PRODUCT_MANAGERS))
    answer = client.get(
        reverse("experiment_pages:plan"),
        {
            "baseline_rate": "0.3",
            "minimum_detectable_effect": "0.1",
            "expected_daily_users": "500",
            "design": "interleaving",
        },
    )
    size = sessions_for_power(0.3 / 2.1, 0.3 * 1.1 / 2.1)
    assert answer.json() == {"design": "interleaving", "sessions": size.sessions, "decided": size.decided,
                             "share_b": 1 - size.share_a, "days": -(-size.sessions // 500)}  # fmt: skip
    refused = client.get(reverse("experiment_pages:plan"), {"baseline_rate": "0.3", "minimum_detectable_effect": "0",
                                                             "design": "interleaving"})  # fmt: skip
    assert refused.status_code == 400
    assert "a positive relative effect" in refused.json()["errors"]["__all__"][0]

    _pm().post("/api/v1/experiments/", {**INTERLEAVED, "baseline_rate": 0.3, "minimum_detectable_effect": 0.1},
               format="json")  # fmt: skip
    detail = client.get(reverse("experiment_pages:detail", args=[KEY])).content.decode()
    assert f"<strong>{size.sessions:,}</strong> sessions (interleaved lists)" in detail


@pytest.mark.django_db(transaction=True)  # the buffer's flusher thread has its own connection
def test_the_lean_path_serves_interleaved_lists_and_its_buffered_log_keeps_each_items_arm(variants: None) -> None:
    tokens.clear_cache()
    experiment = _running()
    buffer = LogBuffer(flush_seconds=0.05)
    try:
        app = LeanDispatcher(DJANGO, log=buffer.add, connection_upkeep=_keep)
        auth = f"Bearer {create_token('lean-shop', ['serve'])[1]}"
        status, _, answer = _call(app, f"/api/v1/experiments/{KEY}/recommendations", {"user_id": "u1", "k": 5},
                                  authorization=auth)  # fmt: skip
        deadline = time.monotonic() + 10
        while Event.objects.filter(request_id=answer["request_id"]).count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        buffer.stop()

    assert (status, answer["arm"], answer["teams"]) == (200, "interleaved", {"A": "control", "B": "knn"})
    control, knn = experiment.arms.order_by("position")
    arm_of = {"A": control.pk, "B": knn.pk}
    impressions = Event.objects.filter(request_id=answer["request_id"], type="impression").order_by("position")
    assert [(e.item_id, e.arm_id) for e in impressions] == [(i["item_id"], arm_of[i["team"]]) for i in answer["items"]]
    assert ServedRequest.objects.get(request_id=answer["request_id"]).arm_id == control.pk
    assert Exposure.objects.get(experiment=experiment, user_id="u1").arm_id == control.pk
