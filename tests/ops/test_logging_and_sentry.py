"""Log format per environment (JSON lines in production, text in development) and Sentry only with a DSN.

Each case is a fresh process: the settings are read once, at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import REPO

PROBE = """
import json, logging, sys, django
django.setup()
from core import request_context
with request_context.bound("probe-1"):
    logging.getLogger("probe").warning("hello %s", "there")
print(json.dumps({"sentry_loaded": "sentry_sdk" in sys.modules,
                  "sentry_active": "sentry_sdk" in sys.modules and sys.modules["sentry_sdk"].get_client().is_active()}))
"""
PRODUCTION = {
    "ABPLATFORM_ENV": "production",
    "DJANGO_SECRET_KEY": "p7Jw2-q9Zx_LmN4vR8tY1sK6bH3dF0gC5eA-uI2oP7wQ9zX4cV8nM1",
    "DJANGO_ALLOWED_HOSTS": "ab.example.com",
}


def _run(**env: str) -> tuple[dict[str, bool], list[str], str]:
    """(what the probe printed, its log lines, its stderr) for a process started with `env`."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DJANGO_", "ABPLATFORM_ENV", "ABPLATFORM_LOG_FORMAT", "SENTRY_"))}  # fmt: skip
    environment |= {"DJANGO_SETTINGS_MODULE": "abplatform.settings", **env}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "hello there" in line]
    return json.loads(done.stdout.strip().splitlines()[-1]), lines, done.stderr


def test_production_logs_json_lines_carrying_the_request_id() -> None:
    _, lines, _ = _run(**PRODUCTION)
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {k: record[k] for k in ("level", "logger", "message", "request_id")} == {
        "level": "WARNING", "logger": "probe", "message": "hello there", "request_id": "probe-1"
    }  # fmt: skip
    assert record["time"].endswith("+00:00")


def test_development_logs_text_unless_json_is_asked_for() -> None:
    _, lines, _ = _run()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING probe [probe-1] hello there")
    _, lines, _ = _run(ABPLATFORM_LOG_FORMAT="json")
    assert json.loads(lines[0])["request_id"] == "probe-1"
    _, lines, _ = _run(**PRODUCTION, ABPLATFORM_LOG_FORMAT="text")
    assert lines[0].endswith("WARNING probe [probe-1] hello there")


def test_sentry_is_not_even_imported_without_a_dsn_and_initialised_with_one() -> None:
    printed, _, _ = _run()
    assert printed == {"sentry_loaded": False, "sentry_active": False}
    printed, _, _ = _run(SENTRY_DSN="http://public@127.0.0.1:9/1", SENTRY_TRACES_SAMPLE_RATE="0")
    assert printed == {"sentry_loaded": True, "sentry_active": True}


def test_bad_values_stop_start_up_naming_the_variable() -> None:
    environment = {**os.environ, "ABPLATFORM_LOG_FORMAT": "yaml"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert "ABPLATFORM_LOG_FORMAT='yaml' is not allowed; use one of json, text." in done.stderr
    environment = {**os.environ, "ABPLATFORM_METRICS_ALLOW": "10.0.0.0/8,localhost"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "ABPLATFORM_METRICS_ALLOW: 'localhost' is not an IP network" in done.stderr
