"""The shop's side of the browser tests: what a shop's server sends to the platform while the people
in the browser work. It calls the real HTTP API of the live server with API tokens (made as
`manage.py create_api_token` makes them), from a browser context of its own (no session cookie)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone
from playwright.sync_api import APIRequestContext, Browser, Page

from recommenders.models import Dataset, Interaction
from serving.services.tokens import create_token
from tests.browser.conftest import log_in


class Shop:
    def __init__(self, api: APIRequestContext, serve_token: str, ingest_token: str) -> None:
        self.api = api
        self.serve_headers = {"Authorization": f"Bearer {serve_token}"}
        self.ingest_headers = {"Authorization": f"Bearer {ingest_token}"}
        self.clicks = 0

    def recommend(self, key: str, user_id: str, k: int) -> dict[str, Any]:
        """POST /api/v1/experiments/KEY/recommendations; the answer (asserted 200)."""
        response = self.api.post(f"/api/v1/experiments/{key}/recommendations", data={"user_id": user_id, "k": k},
                                 headers=self.serve_headers)  # fmt: skip
        assert response.status == 200, response.text()
        return response.json()  # type: ignore[no-any-return]

    def click(self, user_id: str, answer: dict[str, Any], item_id: str) -> dict[str, Any]:
        """The user's click on `item_id` of a served answer (to send in a batch)."""
        assert item_id in [item["item_id"] for item in answer["items"]]
        self.clicks += 1
        return {"event_id": f"click-{self.clicks}", "type": "click", "user_id": user_id,
                "request_id": answer["request_id"], "item_id": item_id, "experiment": answer["experiment"],
                "timestamp": timezone.now().isoformat()}  # fmt: skip

    def send(self, events: list[dict[str, Any]]) -> None:
        """POST /api/v1/events with one batch; asserts every event was stored."""
        response = self.api.post("/api/v1/events", data=events, headers=self.ingest_headers)
        assert response.status == 200, response.text()
        assert response.json()["stored"] == len(events), response.json()


@contextmanager
def shop(browser: Browser, live_server: Any) -> Iterator[Shop]:
    context = browser.new_context(base_url=live_server.url)
    try:
        _, serve = create_token("shop-serving", ["serve"])
        _, ingest = create_token("shop-events", ["ingest"])
        yield Shop(context.request, serve, ingest)
    finally:
        context.close()


def customers(dataset: Dataset, count: int) -> list[str]:
    """`count` customers of the data set (known to every trained variant), in a fixed order."""
    users = Interaction.objects.filter(dataset=dataset).values_list("user_id", flat=True).distinct().order_by("user_id")
    found = list(users[:count])
    assert len(found) == count, f"{dataset.name} has only {len(found)} customers"
    return found


def switch_user(page: Page, live_server: Any, username: str) -> None:
    """Log out with the header's button and log in as `username`."""
    page.click("header form button:has-text('Log out')")
    page.wait_for_load_state()
    log_in(page, live_server, username)
