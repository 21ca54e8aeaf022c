"""Simulated shoppers on an interleaving experiment: team-draft lists of both arms, the simulator's click
model, clicks credited to the contributing arm by the fold, and a verdict on the results page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db.models import F

from experiments.interleaving import Tally, interleaving_test
from experiments.models import Event, Experiment, Exposure, InterleavingSession, ServedRequest
from experiments.services.results import experiment_results
from experiments.services.simulation import SimulationRefused, queue_simulation, run_simulation
from experiments.services.simulation_http import run_http_simulation
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

    block = experiment_results(experiment, traffic="simulated")["interleaving"]
    expected = interleaving_test(Tally(wins_a, wins_b, simulation.sessions - wins_a - wins_b))
    assert (block["sessions"], block["wins_a"], block["wins_b"]) == (simulation.sessions, wins_a, wins_b)
    assert (block["p_value"], block["delta"]) == (expected.p_value, expected.delta)
    assert block["verdict"] != "not enough data"
    assert block["verdict"] == ("no significant difference" if expected.preferred is None
                                else f"{'control' if expected.preferred == 'A' else 'knn'} wins")  # fmt: skip
    assert experiment_results(experiment, traffic="live")["interleaving"]["sessions"] == 0


def test_the_http_simulation_refuses_interleaving_experiments_clearly(experiment: Experiment) -> None:
    with pytest.raises(SimulationRefused, match="does not simulate interleaving experiments yet"):
        run_http_simulation(experiment, {"daily_users": 10, "days": 1}, "http://127.0.0.1:8000", "token")
