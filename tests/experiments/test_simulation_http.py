"""`simulate --http`: the same simulated traffic through the real HTTP API of a live server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Event, Exposure, ServedRequest, SimulationRun
from experiments.services import serving
from experiments.services.results import experiment_results
from experiments.services.tokens import create_token
from tests.experiments.factories import held_out_experiment


def test_http_mode_refuses_hosts_other_than_this_machine(db) -> None:  # type: ignore[no-untyped-def]
    from experiments.services.simulation import SimulationRefused
    from experiments.services.simulation_http import loopback_target

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
    serving.clear_cache()
    experiment = held_out_experiment(tmp_path)
    _, secret = create_token("load-test", ["serve", "ingest"])
    with pytest.raises(CommandError, match=r"refusing to send simulated traffic to 192\.0\.2\.1"):
        call_command("simulate", experiment.key, "--http", "http://192.0.2.1/", "--token", secret)

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
    assert sum(arm["users"] for arm in experiment_results(experiment, traffic="simulated")["arms"]) == users > 0
    assert sum(arm["users"] for arm in experiment_results(experiment, traffic="live")["arms"]) == 0
    assert f"Simulation run {run.pk} over HTTP: {run.sessions:,} recommendation requests" in out.getvalue()
