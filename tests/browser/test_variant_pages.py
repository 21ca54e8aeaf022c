"""A data scientist registers a hybrid variant in a real browser and watches it train on a real
Celery worker (headless Chromium, live server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import DATA_SCIENTISTS
from recommenders.models import Variant
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from tests.browser.conftest import Screens, log_in
from tests.celery_worker import worker_process
from tests.recommenders.factories import retail_sample, user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_data_scientist_registers_a_hybrid_and_watches_it_train(
    page: Page, live_server: Any, screens: Screens, tmp_path: Path
) -> None:
    dataset = retail_sample(tmp_path, rows=4000)
    components = {}
    for name, algorithm in (("pop", "popularity"), ("knn", "item_knn")):
        variant = register_variant(VariantSpec(name, algorithm, dataset.name, {}))
        run_training(queue_training(variant, send=False).pk)
        components[name] = variant
    user_with_role("dana", DATA_SCIENTISTS)
    log_in(page, live_server, "dana")

    page.goto(f"{live_server.url}/variants/")
    expect(page.locator("#variants")).to_contain_text("knn")
    screens.shoot(page, "variants")
    page.goto(f"{live_server.url}/variants/new/?algorithm=hybrid&dataset={dataset.name}")
    page.fill("#register-form input[name=name]", "pop-knn-blend")
    for name, weight in (("pop", "0.3"), ("knn", "0.7")):
        pk = components[name].pk
        page.check(f"#component-{pk}")
        # A range input: set the value as the user's drag would, firing the input event.
        page.locator(f"#hybrid-components input[type=range][name=weight_{pk}]").evaluate(
            "(slider, value) => { slider.value = value; slider.dispatchEvent(new Event('input')); }", weight
        )
    expect(page.locator("tr.component[data-variant='knn@1'] output")).to_have_text("0.7")
    screens.shoot(page, "register-hybrid")

    with worker_process(queues="training"):
        page.click("#register-form button[type=submit]")
        expect(page.locator("#variant-status")).to_be_visible()
        screens.shoot(page, "training")
        # The page polls the training run and reloads when it ends.
        expect(page.locator("#variant-status")).to_have_text("Trained", timeout=180_000)
    screens.shoot(page, "trained")

    hybrid = Variant.objects.get(name="pop-knn-blend")
    assert hybrid.algorithm == "hybrid"
    assert hybrid.status == Variant.Status.TRAINED
    # Registering resolves each component variant into its algorithm and parameters.
    weights = {c["algorithm"]: c["weight"] for c in hybrid.params["components"]}
    assert weights == {"popularity": 0.3, "item_knn": 0.7}
