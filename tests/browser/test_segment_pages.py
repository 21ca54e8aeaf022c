"""Results by segment in a real browser: the forest plots draw, the picker switches the dimension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import REVIEWERS
from tests.browser.conftest import Screens, log_in
from tests.experiments.factories import simulated_retail_experiment
from tests.recommenders.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_reads_a_simulated_experiment_by_country_and_by_search(
    page: Page, live_server: Any, screens: Screens, tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    simulated_retail_experiment(tmp_path, key="segments-ab")
    user_with_role("rita", REVIEWERS)
    log_in(page, live_server, "rita")

    page.goto(f"{live_server.url}/experiments/segments-ab/segments/")

    expect(page.locator("#exploratory-banner")).to_contain_text("not a verdict")
    expect(page.locator("#forest-ctr")).to_have_attribute("data-rendered", "1")  # one trace: one treatment arm
    expect(page.locator('#segments-ctr tr[data-segment="United Kingdom"][data-arm="knn"]')).to_contain_text("%")
    expect(page.locator("#other-members")).to_contain_text("Germany")
    screens.shoot(page, "by-country")

    page.select_option("#segment-filter select[name=by]", "session_type")
    expect(page.locator('#segments-ctr tr[data-segment="search"][data-arm="knn"]')).to_be_visible()
    expect(page.locator("#forest-ctr")).to_have_attribute("data-rendered", "1")
    screens.shoot(page, "by-session-type")
