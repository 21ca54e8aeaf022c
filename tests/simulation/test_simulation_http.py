"""`simulate --http`: the same simulated traffic through the real HTTP API of a live server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.results_types import results_data
from analysis.services.results import experiment_results
from engine import bucketing
from experiments.models import Experiment
from experiments.services import bandit_schedule
from serving.models import Event, Exposure, ServedRequest
from serving.services import serve
from serving.services.tokens import create_token
from simulation.models import SimulationRun
from simulation.services.http_traffic import run_http_simulation
from tests.experiments.factories import held_out_experiment


def test_http_mode_refuses_hosts_other_than_this_machine(db) -> None:  # type: ignore[no-untyped-def]
    from simulation.services.http_traffic import loopback_target
    from simulation.services.runs import SimulationRefused

    assert loopback_target("http://127.0.0.1:8000/") == ("http", "127.0.0.1", 8000)
    assert loopback_target("https://[::1]/") == ("https", "::1", 443)
    with pytest.raises(SimulationRefused, match=r"refusing to send simulated traffic to 10\.1\.2\.3 \(10\.1\.2\.3\)"):
        loopback_target("http://10.1.2.3:8000")
    with pytest.raises(SimulationRefused, match="needs an http:// or https:// URL"):
        loopback_target("ftp://localhost/")


@pytest.mark.slow
def test_http_mode_sends_the_sessions_and_events_through_a_live_server(  # type: ignore[no-untyped-def]
    transactional_db, live_server, tmp_path: Path, settings
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    experiment = held_out_experiment(tmp_path)
    _, secret = create_token("load-test", ["serve", "ingest", "simulate"])
    with pytest.raises(CommandError, match=r"refusing to send simulated traffic to 192\.0\.2\.1"):
        call_command("simulate", experiment.key, "--http", "http://192.0.2.1/", "--token", secret)
    _, shop = create_token("shop", ["serve", "ingest"])  # may not name the run in its requests
    with pytest.raises(CommandError, match="the serve, ingest and simulate scopes; this one lacks simulate"):
        call_command("simulate", experiment.key, "--http", live_server.url, "--token", shop)

    out = io.StringIO()
    call_command("simulate", experiment.key, "--http", live_server.url, "--token", secret, "--users", "25",
                 "--days", "2", "--seed", "5", stdout=out)  # fmt: skip

    run = SimulationRun.objects.get()
    assert run.status == "succeeded", (run.error, out.getvalue())
    # Every session was one real request: the server logged the exposure and the impressions itself.
    assert ServedRequest.objects.filter(simulation=run).count() == run.sessions > 20
    assert Event.objects.filter(simulation=run, type="impression").count() == run.impressions > 0
    assert Event.objects.filter(simulation=run, type="click").count() == run.clicks
    assert Event.objects.filter(simulation=run, type="purchase").count() == run.purchases
    assert Event.objects.filter(simulation__isnull=True).count() == 0
    users = Exposure.objects.filter(simulation=run).count()
    simulated, live = (results_data(experiment_results(experiment, traffic=t)) for t in ("simulated", "live"))
    assert sum(arm["users"] for arm in simulated["arms"]) == users > 0
    assert sum(arm["users"] for arm in live["arms"]) == 0
    assert f"Simulation run {run.pk} over HTTP: {run.sessions:,} recommendation requests" in out.getvalue()


@pytest.mark.slow
def test_http_mode_on_a_bandit_serves_the_runs_own_weights_updated_between_days_and_gives_cohort_results(  # type: ignore[no-untyped-def]
    transactional_db, live_server, tmp_path: Path, settings
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = held_out_experiment(tmp_path, key="http-bandit")
    Experiment.objects.filter(pk=experiment.pk).update(
        design="bandit", primary_metric="ctr", bandit_burn_in_trials=100, bandit_update_minutes=1440,
        salt="http-bandit-fixed",
    )  # fmt: skip
    experiment.refresh_from_db()
    bandit_schedule.start_live_history(experiment)  # as starting a bandit does
    serve.clear_cache()
    _, secret = create_token("load-test", ["serve", "ingest", "simulate"])

    result = run_http_simulation(experiment, {"daily_users": 20, "days": 4, "seed": 3}, live_server.url, secret)

    run = result.simulation
    assert run.status == "succeeded", (run.error, run.message)
    rows = bandit_schedule.history(experiment.pk, run.pk)
    assert [r.period for r in rows] == [0, 1, 2, 3, 4]  # one per simulated day, and the one after the last
    assert [(r.starts_at - rows[0].starts_at).days for r in rows] == [0, 1, 2, 3, 4]
    assert [r.period for r in bandit_schedule.history(experiment.pk)] == [0]  # the live history is untouched
    # CTR: the trials are the impressions of the days before each update (the run's users' ids, and so their
    # arms, depend on the run's id: no exact counts here); burn-in until every arm has 100, then the weights move.
    impressions = Event.objects.filter(simulation=run, type="impression")
    assert sum(rows[-1].trials) == impressions.count()
    assert sum(rows[-1].successes) == Event.objects.filter(simulation=run, type="click").count()
    assert [r.burn_in for r in rows[1:]] == [min(r.trials) < 100 for r in rows[1:]]
    moved = [r.period for r in rows[:4] if r.weights != [0.5, 0.5]]
    assert moved, [r.trials for r in rows]  # some day was served unequal weights (the live history's stay 50/50)
    # Each user was assigned by the server with the weights of the run's period in force at their first
    # (simulated) exposure: the probability it logged is that period's share of their arm.
    starts = [r.starts_at for r in rows]
    exposures = Exposure.objects.filter(simulation=run).values_list("user_id", "arm__position", "first_exposed_at")
    first_probability = {}
    for user, probability in (
        ServedRequest.objects.filter(simulation=run).order_by("served_at").values_list("user_id", "arm_probability")
    ):
        first_probability.setdefault(user, probability)
    periods = []
    for user, position, first_exposed_at in exposures:
        period = max(p for p, start in enumerate(starts) if start <= first_exposed_at)
        allocation = bucketing.Allocation(traffic=1.0, weights=tuple(rows[period].weights))
        assert first_probability[user] == pytest.approx(bucketing.assignment_probability(allocation, position))
        periods.append(period)
    assert sorted(set(periods)) == [0, 1, 2, 3]  # new users arrived on every simulated day

    block = results_data(experiment_results(experiment, traffic="simulated"))["bandit"]
    assert [(h["source"], len(h["updates"])) for h in block["histories"]] == [(f"simulation {run.pk}", 5)]
    assert sum(sum(c["users"]) for c in block["cohorts"]) == len(exposures) > 20
    assert [sum(c["users"]) for c in block["cohorts"]] == [periods.count(p) for p in range(5)]
    (comparison,) = block["comparisons"]
    assert comparison["verdict"] in ("treatment wins", "control wins", "no significant difference")
    assert block["srm"]["mismatch"] is False
    live = results_data(experiment_results(experiment, traffic="live"))
    assert sum(arm["users"] for arm in live["arms"]) == 0
