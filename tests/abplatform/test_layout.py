"""The base layout every page extends, and the repository's landing page (README.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client


@pytest.mark.django_db
def test_every_page_links_an_icon_that_exists_so_browsers_do_not_log_a_favicon_404() -> None:
    page = Client().get("/accounts/login/").content.decode()
    link = re.search(r'<link rel="icon" type="image/svg\+xml" href="/static/([^"]+)">', page)
    assert link is not None
    assert link.group(1) == "favicon.svg"
    assert finders.find(link.group(1)) is not None


@pytest.mark.django_db
def test_favicon_ico_redirects_to_the_layouts_icon() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"


@pytest.mark.django_db
def test_a_forbidden_page_keeps_the_layout_and_says_what_the_roles_do() -> None:
    from accounts.roles import REVIEWERS
    from tests.recommenders.factories import user_with_role

    client = Client()
    client.force_login(user_with_role("rita", REVIEWERS))
    response = client.get("/experiments/new/")
    assert response.status_code == 403
    page = response.content.decode()
    assert '<link rel="icon"' in page
    assert "<h1>Not allowed</h1>" in page
    assert "Product managers create and run experiments" in page


def test_the_readme_is_a_landing_page_of_at_most_12_kib_the_rest_lives_in_docs() -> None:
    readme = Path(settings.BASE_DIR) / "README.md"
    assert readme.stat().st_size <= 12_288
