"""Every page carries a Content-Security-Policy that allows scripts from this server only, and no template
needs an exception: no inline script, no inline event handler. (The browser tests, tests/browser/, fail on
any console error, so a page the policy breaks fails there too.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.roles import PRODUCT_MANAGERS
from tests.recommenders.factories import user_with_role


def _policy(header: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/experiments/", "/variants/", "/api/docs/"])
def test_pages_allow_scripts_from_this_server_only_and_may_not_be_framed(path: str) -> None:
    client = Client()
    client.force_login(user_with_role("paula", PRODUCT_MANAGERS))
    response = client.get(path)
    assert response.status_code == 200
    policy = _policy(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    offenders = []
    for template in sorted((Path(settings.BASE_DIR) / "templates").rglob("*.html")):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+=\"", text):
            offenders.append(str(template.relative_to(settings.BASE_DIR)))
    assert offenders == []
