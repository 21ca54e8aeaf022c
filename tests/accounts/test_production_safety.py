"""Production safety of the demo helpers and the compose file: nothing guessable reaches production."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings


@pytest.mark.django_db
def test_create_demo_users_refuses_to_run_in_production_and_creates_nobody() -> None:
    with override_settings(PRODUCTION=True), pytest.raises(CommandError, match="ABPLATFORM_ENV=production"):
        call_command("create_demo_users")
    assert not User.objects.filter(username__in=["pm", "ds", "reviewer"]).exists()


@pytest.mark.django_db
def test_create_demo_users_makes_one_user_per_role_in_development() -> None:
    call_command("create_demo_users")
    assert sorted(User.objects.values_list("username", flat=True)) == ["ds", "pm", "reviewer"]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((Path(settings.BASE_DIR) / "docker-compose.yml").read_text())


def test_the_compose_file_defaults_to_production_and_requires_its_secrets() -> None:
    compose = _compose()
    environment = compose["x-platform"]["environment"]
    assert environment["ABPLATFORM_ENV"] == "${ABPLATFORM_ENV:-production}"
    # ${VAR:?message}: docker compose refuses to start when the variable is unset or empty.
    assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert environment["DJANGO_ALLOWED_HOSTS"].startswith("${DJANGO_ALLOWED_HOSTS:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "abplatform:abplatform@" not in (Path(settings.BASE_DIR) / "docker-compose.yml").read_text()


def test_the_compose_web_server_is_published_on_the_loopback_interface_by_default() -> None:
    assert _compose()["services"]["web"]["ports"] == ["${ABPLATFORM_PUBLISH:-127.0.0.1:8000}:8000"]
