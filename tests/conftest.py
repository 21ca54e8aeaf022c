"""Session-wide checks: the configured servers must answer before any test runs."""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI"):
        # In CI the suite runs against the real servers; refuse the embedded defaults.
        for variable, scheme in (("DATABASE_URL", "postgres"), ("CELERY_BROKER_URL", "redis")):
            if not os.environ.get(variable, "").startswith(scheme):
                raise pytest.UsageError(f"CI is set but {variable} is not a {scheme}:// URL; .ci/run sets it.")


@pytest.fixture(scope="session", autouse=True)
def _broker_answers() -> None:
    """Fail fast with a clear message when the broker is down (pytest-django reports a database that is)."""
    from abplatform.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=2)
    except Exception as error:  # any transport error: the message says which broker and why
        pytest.exit(f"The Celery broker {app.conf.broker_url} does not answer: {error}", returncode=3)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # The production hasher is deliberately slow; tests only need passwords to round-trip.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
