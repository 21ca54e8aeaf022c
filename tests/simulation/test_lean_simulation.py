"""`simulate --http` against the lean path, whose serving logs land a moment after each answer."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import connection

from serving.lean import LeanDispatcher
from serving.models import Event, ServedRequest
from serving.services import serve
from serving.services.serving_log import LogBuffer
from serving.services.tokens import create_token
from simulation.models import SimulationRun
from tests.experiments.factories import held_out_experiment


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the test's output is the assertions
        pass


@pytest.fixture
def lean_server() -> Iterator[str]:
    """A real HTTP server on loopback running the lean path with a buffered log (flushed every 0.3 s)."""
    buffer = LogBuffer(flush_seconds=0.3)
    server: WSGIServer = make_server(
        "127.0.0.1", 0, LeanDispatcher(get_wsgi_application(), log=buffer.add), handler_class=_Quiet
    )

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            connection.close()  # the server thread's own connection, or the test database cannot be dropped

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    buffer.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_http_simulation_through_the_lean_path_waits_for_the_buffered_logs(
    lean_server: str, tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    experiment = held_out_experiment(tmp_path)
    _, secret = create_token("load-test", ["serve", "ingest", "simulate"])

    call_command("simulate", experiment.key, "--http", lean_server, "--token", secret, "--users", "25",
                 "--days", "2", "--seed", "5", stdout=io.StringIO())  # fmt: skip

    run = SimulationRun.objects.get()
    assert run.status == "succeeded", run.error
    assert ServedRequest.objects.filter(simulation=run).count() == run.sessions > 20
    assert Event.objects.filter(simulation=run, type="impression").count() == run.impressions > 0
    clicks = Event.objects.filter(simulation=run, type="click")
    assert clicks.count() == run.clicks > 0
    assert not clicks.filter(arm__isnull=True).exists()  # each click found its request's arm
