"""A bandit experiment from the browser (issue 8): a product manager sets its floor, burn-in and update
interval in the wizard (a floor above 1/arms is refused on the field), starts it, the shop's traffic and
clicks arrive through the real API, the weight update the beat runs moves traffic toward the better arm,
and the experiment, results and report pages show the weights history and the explanation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from accounts.roles import PRODUCT_MANAGERS
from analysis.services.bandit_results import update_weights
from analysis.tasks import fold_rollups_task
from experiments.models import BanditUpdate, Experiment
from experiments.templatetags.numbers import percent
from recommenders.models import Dataset
from tests.browser.conftest import Screens, log_in
from tests.browser.shop import customers, shop
from tests.recommenders.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KEY = "bandit-recs"
FLOOR_TOO_HIGH = "must lie in [0, 0.5]: 2 arms cannot each get more"


def create_in_the_wizard(page: Page, screens: Screens) -> None:
    page.click("#start-experiment")
    page.fill("#id_key", KEY)
    page.fill("#id_name", "Earn while learning: item-kNN or best sellers")
    page.select_option("#id_design", "bandit")
    page.select_option("#id_arm-0-variant", "pop@1")
    page.fill("#id_arm-1-name", "knn")
    page.select_option("#id_arm-1-variant", "knn@1")
    page.select_option("#id_primary_metric", "ctr")
    page.fill("#id_bandit_min_share", "0.7")
    page.fill("#id_bandit_burn_in_trials", "20")
    page.fill("#id_bandit_burn_in_periods", "0")
    page.fill("#id_bandit_update_minutes", "60")
    page.click("#experiment-form button[type=submit]")

    expect(page.locator("p.error[data-field=bandit_min_share]")).to_have_text(FLOOR_TOO_HIGH)
    assert not Experiment.objects.filter(key=KEY).exists()
    screens.shoot(page, "wizard-field-error")
    page.fill("#id_bandit_min_share", "0.1")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#experiment-status")).to_have_text("Draft")


def serve_and_click(browser: Browser, live_server: Any, users: list[str]) -> dict[str, int]:
    """Five items per user; knn's users click two of them, the control's users one in four clicks one.
    Returns the users served per arm."""
    served = {"control": 0, "knn": 0}
    with shop(browser, live_server) as store:
        clicks = []
        for i, user in enumerate(users):
            answer = store.recommend(KEY, user, 5)
            assert answer["arm_probability"] == 0.5  # period 0: equal weights
            served[answer["arm"]] += 1
            items = [item["item_id"] for item in answer["items"]]
            if answer["arm"] == "knn":
                clicks += [store.click(user, answer, items[0]), store.click(user, answer, items[1])]
            elif i % 4 == 0:
                clicks.append(store.click(user, answer, items[0]))
        store.send(clicks)
    return served


def plotted_weights(page: Page) -> dict[str, list[float]]:
    """The weights chart's lines as plotly.js holds them: {arm: weight per period}."""
    return page.locator("#chart-bandit-weights").evaluate(  # type: ignore[no-any-return]
        "chart => Object.fromEntries(chart.data.map(trace => [trace.name, trace.y]))"
    )


def test_a_product_manager_runs_a_bandit_and_sees_its_weights_move(
    page: Page, browser: Browser, live_server: Any, screens: Screens, retail_variants: Dataset
) -> None:
    user_with_role("pm", PRODUCT_MANAGERS)
    log_in(page, live_server, "pm")
    create_in_the_wizard(page, screens)
    expect(page.locator("#bandit-settings")).to_have_text(
        "at least 10 % per arm; burn-in 20 trials and 0 periods; weights updated every 60 min"
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#action-start")
    expect(page.locator("#experiment-status")).to_have_text("Running")
    expect(page.locator("#chart-bandit-weights .main-svg").first).to_be_visible()
    assert plotted_weights(page) == {"control": [0.5], "knn": [0.5]}  # period 0, stored at the start

    served = serve_and_click(browser, live_server, customers(retail_variants, 30))
    assert min(served.values()) >= 5  # a random salt splits 30 users; fewer than 5 in an arm: p < 0.001
    fold_rollups_task(lag_seconds=0)  # the beat's fold, without waiting out its lag
    experiment = Experiment.objects.get(key=KEY)
    period_0 = BanditUpdate.objects.get(experiment=experiment, period=0)
    # The beat's update_bandits_task calls this once the interval (60 min) has elapsed since period 0 began.
    period_1 = update_weights(experiment.pk, at=period_0.starts_at + timedelta(minutes=60))
    assert period_1 is not None
    assert (period_1.period, period_1.burn_in) == (1, False)
    assert period_1.weights == pytest.approx([0.1, 0.9])  # knn is almost surely better: the floor holds control

    page.reload()
    expect(page.locator("#chart-bandit-weights .main-svg").first).to_be_visible()
    assert plotted_weights(page) == {"control": [0.5, period_1.weights[0]], "knn": [0.5, period_1.weights[1]]}
    expect(page.locator("#bandit-history")).to_contain_text("returning users keep their first arm")
    # Locked once running: the page offers no field for them, and the API refuses the change with the reason.
    assert page.locator("#bandit-settings input, #arms input").count() == 0
    # The arms' own weights are ignored by a bandit: the table does not show them as the split.
    expect(page.locator("#arms tbody td.num")).to_have_text(["by the bandit", "by the bandit"])
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.patch(f"{live_server.url}/api/v1/experiments/{KEY}/", data={"bandit_min_share": 0.2},
                                 headers={"X-CSRFToken": csrf, "Referer": live_server.url})  # fmt: skip
    assert (refused.status, refused.json()) == (409, {"detail": f"{KEY} is running: bandit_min_share can only "
                                                                 "change in a draft."})  # fmt: skip
    screens.shoot(page, "experiment")

    for name in ("Results", "Report"):
        page.get_by_role("link", name=name, exact=True).first.click()
        explanation = page.locator("#bandit-explanation")
        expect(explanation).to_contain_text("Why the usual comparison is not used")
        expect(explanation).to_contain_text("The SRM check")
        for arm, weight in zip(("control", "knn"), period_1.weights, strict=True):
            expect(page.locator(f"[data-arm-weight={arm}]")).to_have_text(f"{arm} {percent(weight, 1)}")
        expect(page.locator("#bandit-comparisons tr[data-arm=knn]")).to_contain_text("knn vs control")
        expect(page.locator("#summary tr[data-arm=knn]")).to_contain_text(
            "(batched test within cohorts of first exposure)"
        )
        expect(page.locator("#bandit-srm")).to_contain_text("SRM against the served weights")
        expect(page.locator("#chart-bandit-weights .main-svg").first).to_be_visible()
        assert plotted_weights(page) == {"control": [0.5, period_1.weights[0]], "knn": [0.5, period_1.weights[1]]}
        # Pooled lift and posterior would be biased under changing weights: not drawn for a bandit.
        assert page.locator("#chart-lift, #chart-posterior").count() == 0
        screens.shoot(page, name.lower())
        if name == "Results":
            page.get_by_role("link", name="Experiment", exact=True).click()
