"""Browser tests: a real headless Chromium (Debian's package, installed by .ci/run) driven by
Playwright against pytest-django's live server. Each test saves a screenshot of every page it
visits under artifacts/screenshots/ (kept by CI, ignored by git)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from recommenders.models import Dataset
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from serving.services import serve
from tests.recommenders.factories import retail_sample
from tests.support import REPO, skip_unless

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# page steps are still synchronous and safe, so Django's async guard is lifted for these tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("ABPLATFORM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "artifacts" / "screenshots"
PASSWORD = "pw-for-tests"  # the password tests.recommenders.factories.user_with_role sets


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    skip_unless(Path(CHROMIUM).exists(), f"Chromium is not at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


class Screens:
    """Saves full-page screenshots as artifacts/screenshots/<test>/<nn>-<name>.png."""

    def __init__(self, test_name: str) -> None:
        self.folder = SCREENSHOTS / re.sub(r"[^\w-]", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def shoot(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def screens(request: pytest.FixtureRequest) -> Screens:
    return Screens(request.node.name)


class Console:
    """What the browser saw go wrong on each page: console errors, plotly.js warnings, uncaught exceptions and
    server errors (5xx).

    The `page` fixture fails the test at teardown when any were seen; a test that provokes one on purpose
    (a 403 it asserts) calls `allow` with part of the message first.
    """

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.allowed: list[str] = []
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: uncaught {error}"))
        page.on("response", self._response)

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        # A failed load's message names only the status; its location names the resource.
        text = f"{message.text} ({message.location.get('url', '')})"
        # plotly.js reports what it could not draw (a bad tick format, ...) as console.trace("WARN: ...").
        wrong = message.type == "error" or message.text.startswith("WARN:")
        if wrong and not any(part in text for part in self.allowed):
            self.problems.append(f"{page.url}: console error: {text}")

    def _response(self, response: Response) -> None:
        if response.status >= 500:
            self.problems.append(f"{response.request.method} {response.url}: HTTP {response.status}")

    def allow(self, part: str) -> None:
        self.allowed.append(part)


CONSOLES: dict[int, Console] = {}  # by id(page): the `console` fixture finds the page's own


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    console = CONSOLES[id(page)] = Console(page)
    yield page
    context.close()
    del CONSOLES[id(page)]
    assert not console.problems, "The browser reported problems:\n" + "\n".join(console.problems)


@pytest.fixture
def console(page: Page) -> Console:
    return CONSOLES[id(page)]


def log_in(page: Page, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


@pytest.fixture
def retail_variants(tmp_path: Path, settings: Any) -> Dataset:
    """Popularity ("pop@1") and item-kNN ("knn@1") trained on the first 3,000 Online Retail lines; returns
    their data set. The artifacts go to tmp_path (a Celery worker reads them by their stored path)."""
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    dataset = retail_sample(tmp_path, rows=3000)
    for name, algorithm in (("pop", "popularity"), ("knn", "item_knn")):
        run_training(queue_training(register_variant(VariantSpec(name, algorithm, dataset.name, {})), send=False).pk)
    return dataset
