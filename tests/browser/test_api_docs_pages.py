"""The API documentation renders with the network off: Swagger UI at /api/docs/ and Redoc at /api/redoc/,
loaded by a signed-in user in headless Chromium while every request to another host than the live server is
aborted, show the schema's operations, and no request leaves the machine."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from playwright.sync_api import Page, Request, Route, expect

from accounts.roles import PRODUCT_MANAGERS
from tests.browser.conftest import Console, Screens, log_in
from tests.recommenders.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class Offline:
    """Aborts every request of the page's browser context to a host other than the live server's, and keeps
    what the context asked for (documents, scripts, the schema, images, workers' fetches) and what the pages'
    own Content-Security-Policy refused before it reached the network."""

    def __init__(self, page: Page, live_server: Any) -> None:
        self.host = urlsplit(live_server.url).netloc
        self.requested: list[str] = []
        self.blocked: list[str] = []
        self.refused_by_the_page: list[str] = []
        page.context.on("request", self._seen)
        page.context.on("requestfailed", self._failed)
        page.context.route("**/*", self._route)

    def _seen(self, request: Request) -> None:
        self.requested.append(request.url)

    def _failed(self, request: Request) -> None:
        # Chromium names a request its page's Content-Security-Policy blocked "csp" (net::ERR_BLOCKED_BY_CSP).
        if request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP"):
            self.refused_by_the_page.append(request.url)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if self.is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob") or (parts.scheme in ("http", "https") and parts.netloc == self.host)

    def left_the_machine(self) -> list[str]:
        """The requests to another host: those the route aborted, and any that neither it nor the page's policy
        stopped (none should be either)."""
        stopped = {*self.blocked, *self.refused_by_the_page}
        return self.blocked + [url for url in self.requested if not self.is_local(url) and url not in stopped]


def _operations(user: str) -> dict[str, tuple[str, str]]:
    """The schema's operations: {operationId: (METHOD, path)}."""
    client = Client()
    client.force_login(user_with_role(user, None))
    schema = client.get("/api/schema/?format=json").json()
    return {
        operation["operationId"]: (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_swagger_ui_renders_every_operation_with_the_network_off(
    page: Page, live_server: Any, screens: Screens
) -> None:
    operations = _operations("schema-reader")
    user_with_role("paula", PRODUCT_MANAGERS)
    offline = Offline(page, live_server)
    log_in(page, live_server, "paula")

    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("abplatform API")
    for method, path in (("GET", "/api/v1/experiments/"), ("POST", "/api/v1/experiments/"),
                         ("POST", "/api/v1/events"), ("POST", "/api/v1/variants/{id}/recommend/")):  # fmt: skip
        block = page.locator(f".opblock-{method.lower()}").filter(
            has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
        )
        expect(block).to_have_count(1)
        expect(block).to_be_visible()
    expect(page.locator(".swagger-ui .opblock")).to_have_count(len(operations))
    screens.shoot(page, "swagger-ui")

    # The recommend operation, opened: its body's fields, its answer's schema and its refusals.
    recommend = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/v1/variants/{id}/recommend/"]')
    )
    recommend.locator(".opblock-summary").click()
    for code in ("200", "400", "403", "404", "409"):
        expect(recommend.locator(f'.responses-table tr.response[data-code="{code}"]')).to_have_count(1)
    expect(recommend.locator(".opblock-section-request-body")).to_contain_text("user_id")
    screens.shoot(page, "swagger-ui-recommend")

    assert offline.left_the_machine() == []
    assert any(url.startswith(f"{live_server.url}/api/schema/") for url in offline.requested)
    assert any("swagger-ui-bundle.js" in url for url in offline.requested)


def test_redoc_renders_every_operation_with_the_network_off(
    page: Page, live_server: Any, screens: Screens, console: Console
) -> None:
    # Redoc's side menu always shows a logo from cdn.redoc.ly; the page's Content-Security-Policy (images from
    # this server only) makes the browser refuse it before any request, and say so in the console.
    console.allow("'https://cdn.redoc.ly/redoc/logo-mini.svg' violates the following Content Security Policy")
    operations = _operations("schema-reader")
    user_with_role("paula", PRODUCT_MANAGERS)
    offline = Offline(page, live_server)
    log_in(page, live_server, "paula")

    page.goto(f"{live_server.url}/api/redoc/")
    expect(page.locator(".api-info h1")).to_contain_text("abplatform API")
    for operation_id in ("v1_experiments_list", "v1_events_create", "v1_variants_recommend_create"):
        section = page.locator(f'[data-section-id$="operation/{operation_id}"]')
        expect(section.locator("h2")).to_be_visible()
    expect(page.locator('[data-section-id*="operation/"] h2')).to_have_count(len(operations))
    recommend = page.locator('[data-section-id$="operation/v1_variants_recommend_create"]')
    for code in ("200", "400", "403", "404", "409"):
        expect(recommend.get_by_role("button", name=code, exact=False).first).to_be_visible()
    screens.shoot(page, "redoc")

    assert offline.left_the_machine() == []
    assert any(url.startswith(f"{live_server.url}/api/schema/") for url in offline.requested)
    assert any("redoc.standalone.js" in url for url in offline.requested)
