"""The base layout every page extends."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client


@pytest.mark.django_db
def test_every_page_links_an_icon_that_exists_so_browsers_do_not_log_a_favicon_404() -> None:
    page = Client().get("/accounts/login/").content.decode()
    link = re.search(r'<link rel="icon" type="image/svg\+xml" href="/static/([^"]+)">', page)
    assert link is not None
    assert link.group(1) == "favicon.svg"
    assert finders.find(link.group(1)) is not None
