"""A real Celery worker in its own process, on the configured broker, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from django.db import connection

from tests.support import REPO


@contextmanager
def worker_process(timeout: float = 60.0, queues: str | None = None) -> Iterator[str]:
    """Start `celery worker` on `queues` (default: a fresh queue); yield the queue names; stop it afterwards.

    The worker gets the test database's URL, so it reads what a transactional test committed.
    A test that uses the real queue names (e.g. "training") purges them first.
    """
    with worker(timeout, queues) as (queue, _):
        yield queue


@contextmanager
def worker(
    timeout: float = 60.0, queues: str | None = None, env: dict[str, str] | None = None, *, purge: bool = True
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`worker_process`, yielding (queue names, the worker's process) so a test can kill it; `env` adds
    environment variables; `purge=False` keeps the messages already in the named queues."""
    queue = queues or f"test-{uuid.uuid4().hex[:12]}"
    if queues and purge:
        from abplatform.celery import app

        with app.connection_for_write() as broker:
            channel = broker.default_channel
            for name in queues.split(","):
                channel.queue_declare(name, durable=True, auto_delete=False)
                channel.queue_purge(name)
    env = {**os.environ, "DATABASE_URL": database_url(), **(env or {})}
    command = [sys.executable, "-m", "celery", "-A", "abplatform", "worker", "--pool", "solo", "-Q", queue,
               "--without-mingle", "--without-gossip", "--loglevel", "INFO",
               "-n", f"{uuid.uuid4().hex[:8]}@%h"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_ready(process, timeout)
        yield queue, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def database_url() -> str:
    """The test database's URL (a socket folder, as the embedded server has, percent-encoded as the host)."""
    settings = connection.settings_dict
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings["PASSWORD"] else ""
    host = quote(settings["HOST"] or "127.0.0.1", safe="")
    return f"postgres://{settings['USER']}{password}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def _wait_until_ready(process: subprocess.Popen[str], timeout: float) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if " ready." in line:
            return
    process.kill()
    raise RuntimeError("The Celery worker did not start:\n" + "".join(seen[-40:]))
