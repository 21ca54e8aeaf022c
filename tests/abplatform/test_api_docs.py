"""The browsable API documentation at /api/docs/ (Swagger UI) and /api/redoc/ (Redoc) works without internet
access (tests/browser/test_api_docs_pages.py renders both with every other host blocked)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

from accounts.roles import PRODUCT_MANAGERS
from tests.recommenders.factories import user_with_role


def _api_docs_page(path: str = "/api/docs/") -> str:
    client = Client()
    client.force_login(user_with_role("paula", PRODUCT_MANAGERS))
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def _static_path(url: str) -> str:
    prefix = "/" + settings.STATIC_URL.lstrip("/")
    assert url.startswith(prefix), f"{url} is not under {prefix}"
    return url.removeprefix(prefix)


@pytest.mark.django_db
def test_api_docs_reference_only_this_servers_assets_never_a_cdn() -> None:
    page = _api_docs_page()
    assert "cdn" not in page.lower()
    script_sources = re.findall(r'<script src="([^"]+)"', page)
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    icons = re.findall(r'<link rel="icon" href="([^"]+)"', page)
    assert script_sources
    assert stylesheets
    assert icons
    for url in [*script_sources, *stylesheets, *icons]:
        assert not url.startswith(("http:", "https:", "//")), url


@pytest.mark.django_db
def test_the_swagger_ui_bundle_the_api_docs_load_is_served_by_the_static_files_finders() -> None:
    page = _api_docs_page()
    bundle = re.search(r'<script src="([^"]*swagger-ui-bundle\.js)"', page)
    assert bundle is not None
    assert _static_path(bundle.group(1)) == "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assets = [
        *re.findall(r'<script src="([^"]+)"', page),
        *re.findall(r'<link rel="(?:stylesheet|icon)" href="([^"]+)"', page),
    ]
    for url in assets:
        if url.startswith("/api/"):  # the page's own initialisation script, served by drf-spectacular
            continue
        assert finders.find(_static_path(url)) is not None, url


@pytest.mark.django_db
def test_redoc_loads_its_bundle_and_icon_from_this_server_and_no_font_from_google() -> None:
    page = _api_docs_page("/api/redoc/")
    assert "cdn" not in page.lower()
    assert "googleapis" not in page
    assert "gstatic" not in page
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls
    for url in urls:
        assert not url.startswith(("http:", "https:", "//")), url
    bundle = re.search(r'<script src="([^"]*redoc\.standalone\.js)"', page)
    assert bundle is not None
    assert _static_path(bundle.group(1)) == "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
    assert finders.find(_static_path(bundle.group(1))) is not None
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon is not None
    assert finders.find(_static_path(icon.group(1))) is not None
    assert '<redoc spec-url="/api/schema/">' in page
