"""Exploration and off-policy estimates from the browser (issue 8): a product manager gives an experiment
an exploration share in the wizard, the shop's traffic is logged with propensities through the real API,
and a data scientist queues a "Predicted online CTR" estimate on a variant page; a real Celery worker
computes it and the card shows IPS, SNIPS and DR with their intervals, the ESS and the method."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from recommenders.models import Dataset
from serving.models import ServedRequest
from tests.browser.conftest import Screens, log_in
from tests.browser.shop import customers, shop, switch_user
from tests.celery_worker import worker_process
from tests.recommenders.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KEY = "explore-recs"


def create_in_the_wizard(page: Page, screens: Screens) -> None:
    page.click("#start-experiment")
    page.fill("#id_key", KEY)
    page.fill("#id_name", "Best sellers against item-kNN, exploring")
    page.select_option("#id_arm-0-variant", "pop@1")
    page.fill("#id_arm-1-name", "knn")
    page.select_option("#id_arm-1-variant", "knn@1")
    page.fill("#id_exploration_percent", "25")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("p.error[data-field=exploration_percent]")).to_have_text(
        "must lie in [0, 20] %: every explored request shows a random ordering, which costs CTR"
    )
    assert not Experiment.objects.filter(key=KEY).exists()
    screens.shoot(page, "wizard-field-error")
    page.fill("#id_exploration_percent", "20")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#experiment-status")).to_have_text("Draft")
    expect(page.locator("#exploration")).to_contain_text("20 % of exposed requests get a random ordering")


def serve_and_click(browser: Browser, live_server: Any, users: list[str]) -> int:
    """Three requests of five items per user; every third answer gets a click on its first item.
    Returns how many requests explored."""
    explored = 0
    with shop(browser, live_server) as store:
        clicks = []
        for i, user in enumerate(users * 3):
            answer = store.recommend(KEY, user, 5)
            explored += answer["explored"]
            if i % 3 == 0:
                clicks.append(store.click(user, answer, answer["items"][0]["item_id"]))
        store.send(clicks)
    return explored


def queue_estimate(page: Page) -> None:
    page.select_option("#id_experiment", KEY)
    page.fill("#id_seed", "7")
    page.click("#estimate-button")


def test_a_data_scientist_predicts_a_variants_ctr_from_an_exploring_experiments_log(
    page: Page, browser: Browser, live_server: Any, screens: Screens, retail_variants: Dataset
) -> None:
    user_with_role("pm", PRODUCT_MANAGERS)
    user_with_role("dana", DATA_SCIENTISTS)
    log_in(page, live_server, "pm")
    create_in_the_wizard(page, screens)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#action-start")
    expect(page.locator("#experiment-status")).to_have_text("Running")

    # Before any traffic the estimate is refused with the reason.
    switch_user(page, live_server, "dana")
    page.goto(f"{live_server.url}/variants/knn/1/")
    expect(page.locator("#predicted-ctr-empty")).to_be_visible()
    queue_estimate(page)
    expect(page.locator(".message.error")).to_contain_text(
        f"No estimate: {KEY} logged no request with an exploration share"
    )
    screens.shoot(page, "refused-without-traffic")

    explored = serve_and_click(browser, live_server, customers(retail_variants, 20))
    assert explored == ServedRequest.objects.filter(experiment__key=KEY, explored=True).count()
    assert 3 <= explored <= 24  # about 20 % of 60 requests

    with worker_process(timeout=90, queues="training"):
        # Read the message from the page the form redirects to: a fast worker ends the estimate and the card
        # reloads the page (the flash message gone) before a locator may look.
        variant_page = page.url

        def redirected(response: Response) -> bool:
            return response.url == variant_page and response.request.method == "GET"

        with page.expect_response(redirected) as answer:
            queue_estimate(page)
        assert f"of knn@1 from {KEY} queued" in answer.value.text()
        screens.shoot(page, "estimate-queued")
        # The card polls the estimate and reloads the page when it ends.
        expect(page.locator("#predicted-ctr-table")).to_be_visible(timeout=120_000)
    estimate = OffPolicyEstimate.objects.get()
    assert estimate.status == "succeeded", estimate.error
    card = page.locator("#predicted-ctr")
    expect(card).to_contain_text(f"From the log of {KEY}: {estimate.n:,} impressions of {estimate.requests:,} requests")
    assert estimate.requests == 60
    expect(card.locator("thead th")).to_have_text(["Estimator", "CTR", "95 % interval", "Effective sample size"])
    for name in ("IPS", "SNIPS", "DR"):
        row = estimate.result[name]
        cells = card.locator(f"tr[data-estimator={name}] td")
        expect(cells).to_have_text([
            name, f"{row['estimate']:.4f}", f"[{row['ci_lower']:.4f}, {row['ci_upper']:.4f}]",
            f"{round(row['effective_sample_size']):,}",
        ])  # fmt: skip
    expect(page.locator("#predicted-ctr-method")).to_have_text(estimate.method)
    expect(page.locator("#predicted-ctr-method")).to_contain_text("Position-wise slate IPS, SNIPS and DR.")
    screens.shoot(page, "estimate")
