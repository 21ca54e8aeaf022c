"""Roles exist with their permissions; login and logout pages work; the home page needs a login."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS, ROLE_PERMISSIONS
from recommenders.models import Dataset

pytestmark = pytest.mark.django_db


def test_the_data_migration_creates_the_three_roles_with_their_permissions() -> None:
    assert set(Group.objects.values_list("name", flat=True)) == {PRODUCT_MANAGERS, DATA_SCIENTISTS, REVIEWERS}
    for role, codes in ROLE_PERMISSIONS.items():
        held = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=role).permissions.all()}
        assert held == set(codes)


def test_demo_users_get_one_role_each_and_their_credentials_are_printed() -> None:
    out = io.StringIO()
    call_command("create_demo_users", stdout=out)
    call_command("create_demo_users", stdout=io.StringIO())  # running twice changes nothing

    assert User.objects.count() == 3
    assert [g.name for g in User.objects.get(username="pm").groups.all()] == [PRODUCT_MANAGERS]
    assert User.objects.get(username="ds").has_perm("recommenders.import_dataset")
    assert not User.objects.get(username="reviewer").has_perm("recommenders.import_dataset")
    assert "username ds        password ds-demo-2026" in out.getvalue()
    login = Client().post("/accounts/login/", {"username": "reviewer", "password": "reviewer-demo-2026"})
    assert (login.status_code, login["Location"]) == (302, "/")


def test_home_redirects_anonymous_visitors_to_the_login_page(client: Client) -> None:
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/")


def test_login_page_renders_and_a_wrong_password_shows_an_error(client: Client) -> None:
    assert b"Log in" in client.get("/accounts/login/").content
    User.objects.create_user("pm", password="right-password")
    response = client.post("/accounts/login/", {"username": "pm", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_after_login_home_lists_data_sets_and_logout_ends_the_session(client: Client) -> None:
    User.objects.create_user("pm", password="right-password")
    response = client.post("/accounts/login/", {"username": "pm", "password": "right-password"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert b"No data sets yet" in client.get("/").content

    Dataset.objects.create(name="online-retail", source_format="online-retail", user_count=4339)
    page = client.get("/").content.decode()
    assert "online-retail" in page
    assert "4,339" in page  # counts with thousands separators

    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302
