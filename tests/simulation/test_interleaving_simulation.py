"""Simulated shoppers on an interleaving experiment, in-process and through a live server's HTTP API:
team-draft lists of both arms, the simulator's click model, clicks credited to the contributing arm by
the fold, and a verdict in the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db.models import F

from analysis.models import InterleavingSession
from analysis.results_types import results_data
from analysis.services.results import experiment_results
from engine.interleaving import Tally, interleaving_test, sequential_sign_test
from experiments.models import Experiment
from serving.models import Event, Exposure, ServedRequest
from serving.services import serve
from serving.services.tokens import create_token
from simulation.services.http_traffic import run_http_simulation
from simulation.services.runs import run_simulation
from simulation.tasks import queue_simulation
from tests.experiments.factories import held_out_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(tmp_path: Path, settings: Any) -> Experiment:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    return held_out_experiment(tmp_path, key="sim-duel", design="interleaving")


def test_a_simulation_of_an_interleaving_experiment_yields_credited_sessions_and_a_verdict(
    experiment: Experiment,
) -> None:
    simulation = queue_simulation(experiment, {"daily_users": 300, "days": 3, "seed": 5, "k": 6}, send=False)
    run_simulation(simulation.pk)
    simulation.refresh_from_db()
    assert simulation.status == "succeeded", simulation.traceback

    control, knn = experiment.arms.order_by("position")
    served = ServedRequest.objects.filter(simulation=simulation)
    assert served.count() == simulation.sessions > 600
    assert set(served.values_list("arm_id", flat=True)) == {control.pk}  # the request and exposure hold team A
    assert set(Exposure.objects.filter(simulation=simulation).values_list("arm_id", flat=True)) == {control.pk}
    impressions = Event.objects.filter(simulation=simulation, type="impression")
    assert set(impressions.values_list("arm_id", flat=True)) == {control.pk, knn.pk}  # both arms' items shown
    clicks = Event.objects.filter(simulation=simulation, type="click")
    assert clicks.count() == simulation.clicks > 0

    sessions = InterleavingSession.objects.filter(experiment=experiment)
    assert sessions.count() == simulation.sessions
    assert set(sessions.values_list("simulated", flat=True)) == {True}
    credited_a = sum(sessions.values_list("clicks_a", flat=True))
    credited_b = sum(sessions.values_list("clicks_b", flat=True))
    assert credited_a == clicks.filter(arm_id=control.pk).count()
    assert credited_b == clicks.filter(arm_id=knn.pk).count()
    wins_a = sessions.filter(clicks_a__gt=F("clicks_b")).count()
    wins_b = sessions.filter(clicks_b__gt=F("clicks_a")).count()

    block = results_data(experiment_results(experiment, traffic="simulated"))["interleaving"]
    tally = Tally(wins_a, wins_b, simulation.sessions - wins_a - wins_b)
    expected, sequential = interleaving_test(tally), sequential_sign_test(tally)
    assert (block["sessions"], block["wins_a"], block["wins_b"]) == (simulation.sessions, wins_a, wins_b)
    assert (block["p_value"], block["delta"]) == (expected.p_value, expected.delta)
    assert (block["verdict_basis"], block["verdict_p_value"]) == ("sequential", sequential.p_value)  # still running
    assert block["verdict"] != "not enough data"
    assert block["verdict"] == ("no significant difference" if sequential.preferred is None
                                else f"{'control' if sequential.preferred == 'A' else 'knn'} wins")  # fmt: skip
    assert results_data(experiment_results(experiment, traffic="live"))["interleaving"]["sessions"] == 0


@pytest.mark.slow
def test_the_http_simulation_of_an_interleaving_experiment_reacts_to_the_served_lists_and_is_credited_by_the_server(
    transactional_db: None, live_server: Any, tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    experiment = held_out_experiment(tmp_path, key="http-duel", design="interleaving")
    _, secret = create_token("load-test", ["serve", "ingest", "simulate"])

    result = run_http_simulation(experiment, {"daily_users": 60, "days": 2, "seed": 7, "k": 6,
                                              "injected_effect": 0.5}, live_server.url, secret)  # fmt: skip

    run = result.simulation
    assert run.status == "succeeded", (run.error, run.message)
    control, knn = experiment.arms.order_by("position")
    served = ServedRequest.objects.filter(simulation=run)
    # One request per session, each an interleaved list logged by the server under team A (the control).
    assert served.count() == run.sessions == result.requests > 80
    assert set(served.values_list("arm_id", flat=True)) == {control.pk}
    impressions = Event.objects.filter(simulation=run, type="impression")
    assert impressions.count() == run.impressions
    assert set(impressions.values_list("arm_id", flat=True)) == {control.pk, knn.pk}
    clicks = list(Event.objects.filter(simulation=run, type="click").values_list("request_id", "item_id"))
    assert len(clicks) == run.clicks > 0
    assert Event.objects.filter(simulation__isnull=True).count() == 0  # everything marked as the run's

    # The server's fold credits each click to the arm whose impression of that request showed the item.
    team_of = {(r, item): arm for r, item, arm in impressions.values_list("request_id", "item_id", "arm_id")}
    expected_a = sum(team_of[click] == control.pk for click in clicks)
    sessions = InterleavingSession.objects.filter(experiment=experiment)
    assert sessions.count() == run.sessions
    assert set(sessions.values_list("simulated", flat=True)) == {True}
    assert sum(sessions.values_list("clicks_a", flat=True)) == expected_a
    assert sum(sessions.values_list("clicks_b", flat=True)) == len(clicks) - expected_a
    block = results_data(experiment_results(experiment, traffic="simulated"))["interleaving"]
    assert (block["sessions"], block["uncredited_clicks"]) == (run.sessions, 0)
    assert block["wins_a"] == sessions.filter(clicks_a__gt=F("clicks_b")).count()
    assert block["wins_b"] == sessions.filter(clicks_b__gt=F("clicks_a")).count()
    assert results_data(experiment_results(experiment, traffic="live"))["interleaving"]["sessions"] == 0
