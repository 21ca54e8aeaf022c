"""Fixtures of the operations tests: fresh readiness per test, and a real multi-process web server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from ops.services import health
from tests.celery_worker import database_url
from tests.support import REPO


@pytest.fixture(autouse=True)
def _fresh_readiness() -> Iterator[None]:
    health.forget()  # the checks' result is kept a second per process
    yield
    health.forget()


@dataclass(frozen=True)
class WebServer:
    url: str
    artifacts: Path
    metrics_dir: Path
    stderr: Path  # the platform's log lines (granian's own go to stdout)
    worker_queue: str  # the queue /readyz wants a live worker for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def web_server(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """granian with two worker processes, as the image runs it (the lean path in front of Django), on the test
    database, with JSON logs, its own metrics folder, and readiness wanting a worker on a queue of its own."""
    root = tmp_path_factory.mktemp("web")
    port = _free_port()
    server = WebServer(f"http://127.0.0.1:{port}", root / "artifacts", root / "prometheus", root / "stderr.log",
                       f"ops-{uuid.uuid4().hex[:10]}")  # fmt: skip
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ABPLATFORM_ARTIFACT_DIR": str(server.artifacts),
        "PROMETHEUS_MULTIPROC_DIR": str(server.metrics_dir),
        "ABPLATFORM_LOG_FORMAT": "json",
        "ABPLATFORM_READY_WORKER_QUEUES": server.worker_queue,
        "ABPLATFORM_WORKER_HEARTBEAT_SECONDS": "1",
        "DJANGO_DEBUG": "false",
        "DJANGO_STATIC_ROOT": str(root / "static"),
    }
    (root / "static").mkdir()
    subprocess.run([sys.executable, "manage.py", "clear_metrics"], cwd=REPO, env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "abplatform.wsgi:application",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--blocking-threads", "2"]  # fmt: skip
    with open(server.stderr, "w") as stderr, open(root / "stdout.log", "w") as stdout:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
    try:
        _wait_until_live(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_live(server: WebServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the web server did not start:\n" + server.stderr.read_text()[-4000:])


@dataclass
class WebhookReceiver:
    """A real HTTP server on loopback that records the JSON bodies POSTed to it and answers `status` (the
    codes in turn; the last one for good)."""

    url: str
    bodies: list[dict[str, Any]]
    status: list[int]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[dict[str, Any]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(status.pop(0) if len(status) > 1 else status[0])
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies, status)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def deliveries_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivery tasks run in this process (Celery's apply: the task's own code, retries included) instead of
    going to the broker."""
    from ops.tasks import deliver_alert_task

    monkeypatch.setattr(deliver_alert_task, "delay", lambda *args: deliver_alert_task.apply(args=args))
