"""Session-wide checks: the configured servers must answer before any test runs."""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not os.environ.get("ABPLATFORM_CI_EMBEDDED"):
        # In CI the first run is against the machine's servers; refuse the embedded defaults there
        # (.ci/run's second run sets ABPLATFORM_CI_EMBEDDED and leaves both URLs unset on purpose).
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


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Each test starts with empty serving caches: the experiment configurations, sticky bandit arms and
    tokens a process remembers are keyed by names (experiment keys, secrets) that tests reuse."""
    from recommenders import serving as recommender_serving
    from serving.services import serve, tokens

    serve.clear_cache()
    tokens.clear_cache()
    recommender_serving.clear_cache()
