"""Password guessing is stopped: repeated wrong passwords lock the login with 429 and Retry-After."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from accounts.roles import REVIEWERS
from tests.recommenders.factories import user_with_role

PASSWORD = "a-right-password-2026"


def _login(client: Client, password: str) -> int:
    return client.post("/accounts/login/", {"username": "rita", "password": password}).status_code


@pytest.fixture
def rita() -> None:
    user = user_with_role("rita", REVIEWERS)
    user.set_password(PASSWORD)
    user.save()


@pytest.mark.django_db
def test_the_login_locks_after_the_failure_limit_even_for_the_right_password(rita: None) -> None:
    client = Client()
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "guess") == 200  # the form again, with its error
    locked = client.post("/accounts/login/", {"username": "rita", "password": "guess"})
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert "Logging in as rita from this address is locked for 15 minutes after 5 wrong passwords" in (
        locked.content.decode()
    )
    assert _login(client, PASSWORD) == 429  # locked whatever the password
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_right_password_before_the_limit_logs_in_and_resets_the_count(rita: None) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "guess") == 200
    assert _login(client, PASSWORD) == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "guess") == 200  # counted from zero again
    assert _login(client, PASSWORD) == 302
