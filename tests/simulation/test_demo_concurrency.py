"""The demo under concurrency: a product manager's lifecycle actions through the pages of a real HTTP
server never fail while a simulation's traffic is being folded into the rollups at the same time."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

from analysis.models import RollupState
from analysis.services.rollups import fold, recompute
from experiments.models import Experiment, ExperimentChange
from simulation.services.runs import run_simulation
from simulation.tasks import queue_simulation
from tests.experiments.factories import draft_experiment, held_out_experiment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 4
ACTIONS_PER_CLIENT = 25  # 100 in all


def _logged_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30).raise_for_status()
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": "pw", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        timeout=30,
    )
    assert response.url.rstrip("/") == base, "the log-in did not land on the home page"
    return session


def _script(client: int) -> list[tuple[str, str, dict[str, str]]]:
    """(experiment key, action, form data): a start of the client's own draft, then pause, resume and ramps."""
    steps: list[tuple[str, str, dict[str, str]]] = [(f"draft-{client}", "actions/start", {})]
    cycle = [("actions/pause", {}), ("actions/resume", {}), ("ramp", {"traffic_percent": str(40 + 10 * client)}),
             ("ramp", {"traffic_percent": "100"})]  # fmt: skip
    while len(steps) < ACTIONS_PER_CLIENT:
        action, data = cycle[(len(steps) + client) % len(cycle)]
        steps.append(("recs-ab", action, data))
    return steps


def test_a_hundred_page_actions_during_a_fold_give_no_server_error(live_server: Any, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = held_out_experiment(tmp_path)
    pm = experiment.owner
    pm.set_password("pw")
    pm.save()
    for client in range(CLIENTS):
        draft_experiment(pm, f"draft-{client}")
    run = queue_simulation(experiment, {"daily_users": 400, "days": 4, "seed": 3}, send=False)
    run_simulation(run.pk)
    assert RollupState.objects.get(pk=experiment.pk).folded_events > 1000

    stop = threading.Event()
    folds = Counter[str]()

    def keep_folding() -> None:  # what the worker does while a simulation runs: rebuild and fold the rollups
        try:
            while not stop.is_set():
                recompute(experiment.pk, lag=timedelta(0))
                fold(experiment.pk, lag=timedelta(0))
                folds["folds"] += 1
        finally:
            connection.close()

    def act(client: int) -> list[tuple[str, int]]:
        session = _logged_in(live_server.url, pm.username)
        statuses = []
        for key, action, data in _script(client):
            response = session.post(
                f"{live_server.url}/experiments/{key}/{action}/",
                data={**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                timeout=60,
            )
            statuses.append((f"{key} {action}", response.status_code))  # the detail page it redirects to
        return statuses

    folder = threading.Thread(target=keep_folding)
    folder.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = [status for statuses in pool.map(act, range(CLIENTS)) for status in statuses]
    finally:
        stop.set()
        folder.join(timeout=120)

    assert len(results) == CLIENTS * ACTIONS_PER_CLIENT == 100
    failures = [(action, status) for action, status in results if status != 200]
    assert failures == []
    assert folds["folds"] >= 1
    assert set(Experiment.objects.filter(key__startswith="draft-").values_list("status", flat=True)) == {"running"}
    # Every pause and resume that took effect is in the audit trail, and the two alternate.
    changes = list(
        ExperimentChange.objects.filter(experiment=experiment, action__in=("pause", "resume"))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert changes, "no pause or resume took effect"
    assert all(a != b for a, b in pairwise(changes))
    experiment.refresh_from_db()
    assert experiment.status in ("running", "paused")
