"""The report's setup block for each design (rendered with Django's test client)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from serving.services import serve
from tests.experiments.factories import client_for, draft_experiment, product_manager, trained_variants

pytestmark = pytest.mark.django_db
PLANNED = {"baseline_rate": 0.3, "minimum_detectable_effect": 0.2, "expected_daily_users": 500}


@pytest.fixture
def variants(tmp_path: Path, settings: Any) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serve.clear_cache()
    trained_variants(tmp_path)


def _setup_fact(page: str, element_id: str) -> str:
    found = re.search(rf'<dd id="{element_id}">(.*?)</dd>', page, re.S)
    assert found is not None, element_id
    return found.group(1)


def test_the_report_states_an_interleaving_plan_in_sessions_and_an_ab_plan_in_users(variants: None) -> None:
    pm = product_manager()
    draft_experiment(pm, "duel", design="interleaving", **PLANNED)
    draft_experiment(pm, "split", **PLANNED)
    client = client_for(pm)

    duel = client.get("/experiments/duel/report/").content.decode()
    split = client.get("/experiments/split/report/").content.decode()

    # plan_interleaving(0.3, 0.2, daily_users=500): 3,158 sessions, 948 decided, B wins 1.2 / 2.2 = 54.55 %,
    # 7 days (the wizard's calculator shows the same); it used to read "users per arm for 30.00 % → –".
    assert _setup_fact(duel, "report-plan") == (
        "3,158 sessions (interleaved lists), about 948 of them decided by a click, for team B winning "
        "54.55 % of decided sessions, about 7 days"
    )
    assert _setup_fact(duel, "report-design") == "Interleaving of two rankers (one blended list per request)"
    # Two proportions 0.30 -> 0.36 at alpha 0.05 and power 0.8: about 963 per arm; 1,926 / 500 a day -> 4 days.
    assert _setup_fact(split, "report-plan") == "963 users per arm for 30.00 % → 36.00 %, about 4 days"
