"""With the database unreachable, pages and the API answer 503 with Retry-After, not a 500.

Each case runs a fresh process whose DATABASE_URL names a port nothing listens on: a real refused
connection, as when PostgreSQL is down or restarting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "a-session-the-database-would-know"
answers = {}
for path in ("/experiments/", "/api/v1/experiments/"):
    response = client.get(path, HTTP_AUTHORIZATION="Bearer abp_x" if path.startswith("/api/") else "")
    answers[path] = [response.status_code, response.get("Retry-After"), response.content.decode()[:300]]
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def answers() -> dict[str, list[object]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ABPLATFORM_ENV", "DJANGO_DEBUG")}
    env |= {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "DJANGO_DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "abplatform.settings"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=Path(settings.BASE_DIR), capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_page_answers_503_with_retry_after_when_the_database_is_unreachable(answers: dict[str, list[object]]) -> None:
    status, retry_after, body = answers["/experiments/"]
    assert status == 503
    assert retry_after == "15"
    assert "The database is unavailable" in str(body)


def test_the_api_answers_503_json_with_retry_after_when_the_database_is_unreachable(
    answers: dict[str, list[object]],
) -> None:
    status, retry_after, body = answers["/api/v1/experiments/"]
    assert status == 503
    assert retry_after == "15"
    assert json.loads(str(body))["detail"].startswith("The database is unavailable")
