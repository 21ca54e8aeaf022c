"""A product manager and a reviewer at work in a real browser (headless Chromium, live server,
real Celery worker for the simulation)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import PRODUCT_MANAGERS, REVIEWERS
from experiments.models import Decision, Experiment, ExperimentChange
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from tests.browser.conftest import Console, Screens, log_in
from tests.celery_worker import worker_process
from tests.experiments.traffic import NO_LAG, running_experiment, simulate
from tests.recommenders.factories import retail_sample, user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def train(dataset_name: str, name: str, algorithm: str) -> None:
    variant = register_variant(VariantSpec(name, algorithm, dataset_name, {}))
    run_training(queue_training(variant, send=False).pk)


def test_a_product_manager_creates_starts_and_simulates_an_experiment(
    page: Page, live_server: Any, screens: Screens, tmp_path: Path
) -> None:
    dataset = retail_sample(tmp_path, rows=30_000, holdout_fraction=0.3)
    train(dataset.name, "pop", "popularity")
    train(dataset.name, "knn", "item_knn")
    user_with_role("pm", PRODUCT_MANAGERS)
    log_in(page, live_server, "pm")
    screens.shoot(page, "home")

    page.click("#start-experiment")
    page.fill("#id_key", "browser-ab")
    page.fill("#id_name", "Item-kNN against best sellers")
    page.fill("#id_hypothesis", "Similar items get more clicks than best sellers.")
    page.select_option("#id_arm-0-variant", "pop@1")
    page.select_option("#id_arm-1-variant", "knn@1")
    page.fill("#id_arm-1-name", "knn")
    page.fill("#id_baseline_rate", "0.02")
    page.fill("#id_minimum_detectable_effect", "0.1")
    page.fill("#id_expected_daily_users", "2000")
    expect(page.locator("#plan-result")).to_contain_text("80,638 users per arm")
    expect(page.locator("#plan-result")).to_contain_text("about 81 days")
    page.check("input[name=guardrail_metrics][value=conversion_rate]")
    page.fill("#id_guardrail_tolerance", "0.05")
    page.check("input[name=analysis_method][value=fixed_horizon]")
    screens.shoot(page, "wizard")
    page.click("#experiment-form button[type=submit]")

    expect(page.locator("#experiment-status")).to_have_text("Draft")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#action-start")
    expect(page.locator("#experiment-status")).to_have_text("Running")
    expect(page.locator("#audit-trail")).to_contain_text("start")

    with worker_process(queues="training"):
        page.fill("#id_users", "150")
        page.fill("#id_days", "3")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#simulate")
        # The run is shown with its progress bar, or already in the table if the worker was quicker
        # than the redirect.
        expect(page.locator("#simulation-progress progress, #simulations .badge").first).to_be_visible()
        screens.shoot(page, "simulation-progress")
        # The page polls the run's progress and reloads when it ends.
        expect(page.locator("#simulations .badge").first).to_have_text("succeeded", timeout=180_000)
    screens.shoot(page, "experiment")

    page.click("text=Results")
    summary = page.locator("#summary")
    expect(summary.locator("tr[data-arm=knn]")).to_contain_text("%")
    experiment = Experiment.objects.get(key="browser-ab")
    run = experiment.simulations.get()
    assert run.impressions > 0
    assert page.locator("#verdicts .badge").count() == 1
    # The method chosen in the wizard decides: the fixed-horizon test waits for the plan's 80,638 users per arm.
    assert experiment.analysis_method == "fixed_horizon"
    expect(page.locator("#analysis-method")).to_contain_text("Fixed horizon")
    expect(page.locator("#verdicts .badge")).to_have_text("Needs more data")
    expect(page.locator("[data-warning=before_plan]")).to_contain_text("The plan's sample size is not reached yet")
    expect(page.locator("#early-read")).to_be_visible()
    # The guardrail chosen in the wizard is watched, with its status and the always-valid interval.
    guard = page.locator("#guardrails tr[data-guardrail=conversion_rate]")
    expect(guard).to_be_visible()
    assert guard.get_attribute("data-status") in ("ok", "breached", "inconclusive")
    expect(page.locator("#guardrail-tolerance")).to_contain_text("tolerance 5.0 %")
    # The forest plot: one interval bar per chosen metric (CTR, conversion as guardrail) for the treatment.
    expect(page.locator("#chart-forest .main-svg").first).to_be_visible()
    forest = json.loads(page.locator("#chart-forest-data").text_content() or "{}")
    assert [trace["name"] for trace in forest["data"]] == ["knn"]
    assert forest["data"][0]["y"] == ["CTR (primary)", "conversion (guardrail)"]
    for chart in ("chart-cumulative-ctr", "chart-exposures", "chart-forest"):
        assert int(page.locator(f"#{chart}").get_attribute("data-rendered") or 0) >= 1
    screens.shoot(page, "results")


def stopped_experiment_with_traffic() -> Experiment:
    experiment, control, treatment = running_experiment("reviewed-ab")
    simulate(experiment, (control, treatment), users_per_arm=120)
    from analysis.services.rollups import fold

    fold(experiment.pk, lag=NO_LAG)
    Experiment.objects.filter(pk=experiment.pk).update(status="stopped")
    return experiment


def test_a_reviewer_reads_the_report_exports_csv_and_records_a_decision(
    page: Page, live_server: Any, screens: Screens
) -> None:
    experiment = stopped_experiment_with_traffic()
    user_with_role("rita", REVIEWERS)
    log_in(page, live_server, "rita")
    expect(page.locator("#awaiting-decision")).to_contain_text("reviewed-ab")
    page.click("#awaiting-decision a")

    expect(page.locator("#summary tr[data-arm=treatment]")).to_contain_text("%")
    expect(page.locator("#offline-metrics")).to_be_visible()
    expect(page.locator("#sequential-tuning")).to_have_text(" (it is tightest at 30,000 users (default: no plan))")
    screens.shoot(page, "report")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    assert download.suggested_filename == "reviewed-ab-results.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert {row["arm"] for row in rows} == {"control", "treatment"}
    assert len(rows) == 10

    page.check("input[name=outcome][value=ship]")
    page.select_option("#id_winning_arm", "treatment")
    page.fill("#id_rationale", "CTR is up and no guardrail moved.")
    page.click("#decision-form button[type=submit]")
    expect(page.locator("#decisions")).to_contain_text("CTR is up and no guardrail moved.")
    expect(page.locator("#audit-trail")).to_contain_text("decision")
    screens.shoot(page, "decision")
    decision = Decision.objects.get(experiment=experiment)
    assert (decision.outcome, decision.winning_arm.name) == ("ship", "treatment")  # type: ignore[union-attr]
    assert ExperimentChange.objects.filter(experiment=experiment, action="decision").count() == 1


def test_a_reviewer_cannot_start_an_experiment_from_the_page(
    page: Page, live_server: Any, screens: Screens, console: Console
) -> None:
    experiment, _, _ = running_experiment("someone-elses")
    Experiment.objects.filter(pk=experiment.pk).update(status="draft")
    user_with_role("rita", REVIEWERS)
    log_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/experiments/someone-elses/")
    expect(page.locator("#experiment-status")).to_have_text("Draft")
    assert page.locator("#action-start").count() == 0
    screens.shoot(page, "reviewer-experiment-page")
    console.allow("status of 403 (Forbidden)")  # the refusal asserted below
    response = page.goto(f"{live_server.url}/experiments/new/")
    assert response is not None
    assert response.status == 403
