"""An interleaving experiment from the browser (issue 8): a product manager creates it in the wizard
(which refuses a third arm), starts it, the shop's traffic and clicks arrive through the real API,
the beat task folds them, the results and the report show the verdict, and a reviewer decides."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from accounts.roles import PRODUCT_MANAGERS, REVIEWERS
from analysis.models import InterleavingDaily
from analysis.tasks import fold_rollups_task
from engine.interleaving import Tally, interleaving_test, sequential_sign_test
from engine.planning import InterleavingPlan
from experiments.models import Decision, Experiment
from experiments.services.plans import experiment_plan
from experiments.templatetags.numbers import pvalue, signed
from recommenders.models import Dataset
from tests.browser.conftest import Screens, log_in
from tests.browser.shop import customers, shop, switch_user
from tests.recommenders.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KEY = "ranker-duel"
NAME = "Item-kNN against best sellers, interleaved"
THREE_ARMS = "an interleaving experiment has exactly two arms (control = A, the other = B), got 3"


def create_in_the_wizard(page: Page, screens: Screens) -> None:
    page.click("#start-experiment")
    page.fill("#id_key", KEY)
    page.fill("#id_name", NAME)
    page.select_option("#id_design", "interleaving")
    page.select_option("#id_arm-0-variant", "pop@1")
    page.fill("#id_arm-1-name", "knn")
    page.select_option("#id_arm-1-variant", "knn@1")
    page.fill("#id_arm-2-name", "pop2")
    page.select_option("#id_arm-2-variant", "pop@1")
    page.fill("#id_baseline_rate", "0.3")
    page.fill("#id_minimum_detectable_effect", "0.2")
    page.fill("#id_expected_daily_users", "500")
    # Interleaving is planned in sessions, live as the fields change.
    expect(page.locator("#plan-result")).to_contain_text("sessions (interleaved lists)")
    screens.shoot(page, "wizard-three-arms")
    page.click("#experiment-form button[type=submit]")

    expect(page.locator("p.error[data-field=arms]")).to_have_text(THREE_ARMS)
    assert not Experiment.objects.filter(key=KEY).exists()
    screens.shoot(page, "wizard-field-error")
    page.fill("#id_arm-2-name", "")
    page.select_option("#id_arm-2-variant", "")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#experiment-status")).to_have_text("Draft")


def serve_and_click(browser: Browser, live_server: Any, users: list[str]) -> Tally:
    """One interleaved list of 6 per user; clicks on a fixed pattern: 6 in 10 sessions click B's first item,
    1 in 10 A's, 3 in 10 nothing. Returns the tally the clicks imply."""
    wins_a = wins_b = ties = 0
    with shop(browser, live_server) as store:
        clicks = []
        for i, user in enumerate(users):
            answer = store.recommend(KEY, user, 6)
            assert (answer["arm"], answer["teams"]) == ("interleaved", {"A": "control", "B": "knn"})
            first = {team: next((x["item_id"] for x in answer["items"] if x["team"] == team), None) for team in "AB"}
            team = "B" if i % 10 < 6 else "A" if i % 10 == 6 else None
            if team is None or first[team] is None:
                ties += 1
                continue
            clicks.append(store.click(user, answer, first[team]))  # type: ignore[arg-type]
            wins_a, wins_b = wins_a + (team == "A"), wins_b + (team == "B")
        store.send(clicks)
    return Tally(wins_a, wins_b, ties)


def test_a_product_manager_runs_an_interleaving_experiment_and_a_reviewer_decides(
    page: Page, browser: Browser, live_server: Any, screens: Screens, retail_variants: Dataset
) -> None:
    user_with_role("pm", PRODUCT_MANAGERS)
    user_with_role("rita", REVIEWERS)
    log_in(page, live_server, "pm")
    create_in_the_wizard(page, screens)
    expect(page.locator("#design")).to_have_text("Interleaving of two rankers (one blended list per request)")
    expect(page.locator("#plan [data-plan=interleaving]")).to_contain_text("sessions (interleaved lists)")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#action-start")
    expect(page.locator("#experiment-status")).to_have_text("Running")
    screens.shoot(page, "running")

    tally = serve_and_click(browser, live_server, customers(retail_variants, 30))
    fold_rollups_task(lag_seconds=0)  # the beat's task, without waiting out its lag
    assert InterleavingDaily.objects.get().sessions == 30
    verdict = interleaving_test(tally, alpha=0.05)
    assert verdict.preferred == "B"  # the clicks favour knn clearly: 18 sessions against 3
    # ... but 21 decided sessions are too few for the always-valid test, the verdict's basis while running.
    # The wizard's planning fields give a plan; its decided sessions set where the mixture is tightest.
    plan = experiment_plan(Experiment.objects.get(key=KEY))
    assert isinstance(plan, InterleavingPlan)
    sequential = sequential_sign_test(tally, alpha=0.05, n_star=plan.decided)
    assert not sequential.significant

    # The home page lists the running experiment with its current verdict and leads to its results.
    page.get_by_role("link", name="Home", exact=True).click()
    running = page.locator("#running-experiments tr", has_text=KEY)
    expect(running.locator(".badge.winning")).to_have_count(0)
    expect(running.locator(".badge", has_text="knn: ")).to_have_text("knn: No significant difference")
    expect(running.locator("td.num")).to_have_text("30")  # users exposed: each saw both arms
    screens.shoot(page, "home")
    running.get_by_role("link", name=NAME).click()
    expect(page.locator("#verdicts .badge")).not_to_have_text("Winning")
    expect(page.locator("#verdicts")).to_contain_text(f"knn won {tally.wins_b} and control {tally.wins_a} of 30")
    expect(page.locator("#verdicts")).to_contain_text(f"always-valid sign test p = {sequential.p_value:.3g}")
    expect(page.locator("#interleaving tr[data-team=A] td").nth(2)).to_have_text(str(tally.wins_a))
    expect(page.locator("#interleaving tr[data-team=B] td").nth(2)).to_have_text(str(tally.wins_b))
    expect(page.locator("#interleaving tr[data-team=tie] td").nth(1)).to_have_text(str(tally.ties))
    fixed = page.locator("#interleaving-verdict [data-test=fixed_horizon]")
    expect(fixed).to_have_text(f"p = {pvalue(verdict.p_value)} at α = 0.05")  # significant, but not the basis yet
    always_valid = page.locator("#interleaving-verdict [data-test=sequential]")
    expect(always_valid).to_contain_text(f"p = {pvalue(sequential.p_value)}")
    expect(always_valid.locator(".badge")).to_have_text("verdict basis")
    expect(page.locator("#interleaving-verdict")).to_contain_text(signed(verdict.delta, 3))
    expect(page.locator("[data-verdict-text]")).to_have_text("no significant difference")
    expect(page.locator("#chart-interleaving .main-svg").first).to_be_visible()
    # the confidence sequence and its edge, the sign-test band and its edge, Δ
    assert page.locator("#chart-interleaving").get_attribute("data-rendered") == "5"
    expect(page.locator("#chart-interleaving .gtitle")).to_have_text(
        "Interleaving preference Δ over time (cumulative sessions)"
    )
    expect(page.locator("#chart-interleaving path.yerror")).to_have_count(1)  # one day: the interval as a bar
    ticks = page.locator("#chart-interleaving .ytick text").all_text_contents()
    assert ticks
    assert all(re.fullmatch(r"[−-]?\d\.\d\d", tick) for tick in ticks), ticks  # formatted, not raw floats
    screens.shoot(page, "results")

    page.get_by_role("link", name="Experiment", exact=True).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#action-stop")
    expect(page.locator("#experiment-status")).to_have_text("Stopped")

    switch_user(page, live_server, "rita")
    expect(page.locator("#awaiting-decision")).to_contain_text(NAME)
    page.click(f"#awaiting-decision a[href='/experiments/{KEY}/report/']")
    expect(page.locator("h1")).to_contain_text("Experiment report")
    expect(page.locator("#report-plan")).to_contain_text("sessions (interleaved lists)")
    # Stopping does not switch to the fixed-horizon sign test (significant here): the verdict stays the
    # always-valid one the experiment was designed with, so stopping when a p-value dips wins nothing.
    expect(page.locator("#verdicts .badge")).to_have_text("No significant difference")
    expect(page.locator("[data-verdict-text]")).to_have_text("no significant difference")
    expect(page.locator("#chart-interleaving .main-svg").first).to_be_visible()
    screens.shoot(page, "report")
    page.check("input[name=outcome][value=iterate]")
    page.fill("#id_rationale", "Shoppers leaned to item-kNN, but the always-valid test has not decided: run it longer.")
    page.click("#decision-form button[type=submit]")
    expect(page.locator("#decisions")).to_contain_text("run it longer")
    screens.shoot(page, "decision")
    decision = Decision.objects.get(experiment__key=KEY)
    assert (decision.outcome, decision.winning_arm) == ("iterate", None)
