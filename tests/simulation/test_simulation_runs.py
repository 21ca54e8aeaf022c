"""Simulated traffic through a running experiment: stored like live traffic, marked, deletable."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.results_types import results_data
from analysis.services.results import experiment_results
from experiments.models import Experiment
from experiments.services.lifecycle import transition
from recommenders.importers.online_retail import parse_online_retail
from recommenders.models import Dataset
from recommenders.services.datasets import save_dataset
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from serving.models import Event, Exposure, ServedRequest
from simulation.models import SimulationRun
from simulation.services.runs import SimulationRefused, delete_simulation, run_simulation
from simulation.tasks import queue_simulation
from tests.experiments.factories import held_out_experiment
from tests.support import ONLINE_RETAIL

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(tmp_path: Path, settings) -> Experiment:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    return held_out_experiment(tmp_path)


def test_a_simulation_stores_marked_traffic_that_the_results_count_and_deletion_removes(experiment) -> None:  # type: ignore[no-untyped-def]
    Event.objects.create(event_id="live-1", type="click", user_id="17850", item_id="85123A", experiment=experiment,
                         timestamp="2010-12-01T10:00:00Z")  # fmt: skip
    run = queue_simulation(experiment, {"daily_users": 150, "days": 3, "seed": 4}, send=False)
    run_simulation(run.pk)
    run_simulation(run.pk)  # a redelivered message does nothing

    run.refresh_from_db()
    assert (run.status, run.progress) == ("succeeded", 100), run.traceback
    assert run.sessions > 300
    assert run.impressions == Event.objects.filter(simulation=run, type="impression").count() > 0
    assert run.clicks == Event.objects.filter(simulation=run, type="click").count()
    assert ServedRequest.objects.filter(simulation=run).count() == run.sessions
    users = set(Exposure.objects.filter(simulation=run).values_list("user_id", flat=True))
    assert all(user.startswith(f"sim{run.pk}:") for user in users)

    results = results_data(experiment_results(experiment))
    assert sum(arm["users"] for arm in results["arms"]) == len(users)
    assert sum(arm["impressions"] for arm in results["arms"]) == run.impressions
    # CUPED reads each simulated shopper's own history (the "sim<run>:" prefix is stripped).
    assert results["comparisons"][0]["metrics"]["clicks_per_user"]["cuped"]["variance_reduction"] != 0

    run_id = run.pk
    delete_simulation(run)
    assert Event.objects.filter(simulation_id=run_id).count() == 0
    assert Exposure.objects.count() == ServedRequest.objects.count() == 0
    assert list(Event.objects.values_list("event_id", flat=True)) == ["live-1"]
    assert sum(arm["users"] for arm in results_data(experiment_results(experiment))["arms"]) == 0


def test_the_same_seed_gives_the_same_traffic(experiment) -> None:  # type: ignore[no-untyped-def]
    counts = []
    for _ in range(2):
        run = queue_simulation(experiment, {"daily_users": 100, "days": 2, "seed": 9}, send=False)
        run_simulation(run.pk)
        run.refresh_from_db()
        counts.append((run.sessions, run.impressions, run.clicks, run.purchases))
    assert counts[0] == counts[1]


def test_bad_settings_and_states_are_refused(experiment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SimulationRefused, match="unknown setting 'visitors'"):
        queue_simulation(experiment, {"visitors": 10})
    with pytest.raises(SimulationRefused, match="days"):
        queue_simulation(experiment, {"days": 0})
    pm = experiment.owner
    transition(experiment, "pause", pm)
    with pytest.raises(CommandError, match="recs-ab is paused: start it before simulating traffic"):
        call_command("simulate", "recs-ab", "--inline", stdout=io.StringIO())
    assert SimulationRun.objects.count() == 0


def test_simulate_command_inline_prints_the_totals(experiment) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("simulate", "recs-ab", "--users", "80", "--days", "2", "--inline", stdout=out)
    assert "Simulated " in out.getvalue()
    assert "Results: /api/v1/experiments/recs-ab/results/" in out.getvalue()


def test_the_demo_experiment_is_created_started_and_simulated_once(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from simulation.services.demo import KEY, run_demo_experiment
    from tests.recommenders.factories import user_with_role

    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    sample = tmp_path / "sample.csv"
    with gzip.open(ONLINE_RETAIL, "rt", encoding="utf-8", newline="") as source:
        sample.write_text("".join(next(source) for _ in range(20_001)), encoding="utf-8")
    dataset = save_dataset(parse_online_retail(sample), "online-retail", holdout_fraction=0.3)
    user_with_role("pm", "Product managers")
    assert (
        run_demo_experiment()
        == "demo experiment not created: retail-popularity, retail-ease, retail-item-knn not trained"
    )
    for name, algorithm in (
        ("retail-popularity", "popularity"),
        ("retail-ease", "ease"),
        ("retail-item-knn", "item_knn"),
    ):
        variant = register_variant(VariantSpec(name, algorithm, dataset.name, {}))
        run_training(queue_training(variant, send=False).pk)

    summary = run_demo_experiment()
    experiment = Experiment.objects.get(key=KEY)
    assert experiment.status == "running"
    assert summary.startswith(f"{KEY}: ")
    assert "simulated sessions" in summary
    results = results_data(experiment_results(experiment))
    assert [arm["name"] for arm in results["arms"]] == ["best-sellers", "ease", "item-knn"]
    assert all(arm["impressions"] > 0 for arm in results["arms"]), summary
    assert run_demo_experiment() == f"{KEY} has simulated traffic already"


def test_a_run_cancelled_while_running_stops_before_its_next_day_and_keeps_what_it_stored(  # type: ignore[no-untyped-def]
    experiment, monkeypatch
) -> None:
    from simulation.services import storage as simulation_storage
    from simulation.services.runs import cancel_simulation

    run = queue_simulation(experiment, {"daily_users": 60, "days": 4, "seed": 2}, send=False)
    store = simulation_storage.RunWriter.store

    def store_then_cancel(writer, batch):  # type: ignore[no-untyped-def]
        # A product manager cancels while the worker stores its first day.
        stored = store(writer, batch)
        if batch.day == 0:
            cancel_simulation(SimulationRun.objects.get(pk=run.pk))
        return stored

    monkeypatch.setattr(simulation_storage.RunWriter, "store", store_then_cancel)
    run_simulation(run.pk)

    run.refresh_from_db()
    assert (run.status, run.progress, run.message) == ("cancelled", 25, "cancelled after 1 of 4 days")
    assert run.impressions == Event.objects.filter(simulation=run, type="impression").count() > 0
    assert (
        sum(a["impressions"] for a in results_data(experiment_results(experiment, traffic="simulated"))["arms"])
        == run.impressions
    )
    with pytest.raises(SimulationRefused, match=f"simulation run {run.pk} has already cancelled"):
        cancel_simulation(run)


def test_simulations_over_the_api_list_detail_and_cancel_for_product_managers_only(experiment) -> None:  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    from accounts.roles import REVIEWERS
    from tests.recommenders.factories import user_with_role

    pm, reviewer = APIClient(), APIClient()
    pm.force_authenticate(experiment.owner)
    reviewer.force_authenticate(user_with_role("rev", REVIEWERS))
    base = f"/api/v1/experiments/{experiment.key}/simulations"

    assert reviewer.post(base, {"days": 2}, format="json").status_code == 403
    created = pm.post(base, {"daily_users": 50, "days": 2, "seed": 3}, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    assert created.json()["status"] == "queued"
    assert [r["id"] for r in reviewer.get(base).json()] == [run_id]

    assert reviewer.post(f"{base}/{run_id}/cancel").status_code == 403
    cancelled = pm.post(f"{base}/{run_id}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    run_simulation(run_id)  # the queued message arrives after the cancel: nothing runs
    detail = reviewer.get(f"{base}/{run_id}").json()
    assert (detail["status"], detail["message"], detail["impressions"]) == (
        "cancelled", "cancelled before it started", 0)  # fmt: skip
    assert pm.post(f"{base}/{run_id}/cancel").status_code == 409
    assert pm.get(f"/api/v1/experiments/{experiment.key}/results/?traffic=simulated").json()["traffic"] == "simulated"
    assert pm.get(f"/api/v1/experiments/{experiment.key}/results/?traffic=bots").status_code == 400

    finished = queue_simulation(experiment, {"daily_users": 50, "days": 1, "seed": 3}, send=False)
    run_simulation(finished.pk)
    detail = reviewer.get(f"{base}/{finished.pk}").json()
    assert (detail["status"], detail["progress"], detail["message"]) == ("succeeded", 100, "simulated 1 of 1 days")
    assert detail["impressions"] > 0


def test_simulate_command_cancels_a_queued_run(experiment) -> None:  # type: ignore[no-untyped-def]
    run = queue_simulation(experiment, {"days": 2}, send=False)
    out = io.StringIO()
    call_command("simulate", "recs-ab", "--cancel", str(run.pk), stdout=out)
    assert f"Simulation run {run.pk}: cancelled, cancelled before it started." in out.getvalue()
    with pytest.raises(CommandError, match="has already cancelled"):
        call_command("simulate", "recs-ab", "--cancel", str(run.pk), stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_days_are_stored_on_a_second_connection_with_the_same_result(  # type: ignore[no-untyped-def]
    experiment,
) -> None:
    from simulation.services.storage import DayQueue

    with DayQueue(lambda batch: 0) as queue:  # this test exercises the second connection's path
        assert queue._pool is not None
    runs = []
    for _ in range(2):
        run = queue_simulation(experiment, {"daily_users": 80, "days": 3, "seed": 11}, send=False)
        run_simulation(run.pk)
        run.refresh_from_db()
        assert run.status == "succeeded", run.traceback
        runs.append(run)
    first, second = runs
    assert (first.sessions, first.impressions, first.clicks) == (second.sessions, second.impressions, second.clicks)
    assert ServedRequest.objects.filter(simulation=first).count() == first.sessions
    kinds = sorted(Event.objects.filter(simulation=first).values_list("type", flat=True))
    assert kinds.count("impression") == first.impressions
    assert kinds.count("click") == first.clicks

    # The same seed gives the same events up to the run's id in their request ids.
    def keys(run):  # type: ignore[no-untyped-def]
        rows = Event.objects.filter(simulation=run).values_list("event_id", "type", "item_id", "position", "revenue")
        return sorted((e.split(":", 1)[0][20:], *rest) for e, *rest in rows)

    assert keys(first) == keys(second)
    assert sum(a["impressions"] for a in results_data(experiment_results(experiment, traffic="simulated"))["arms"]) == (
        2 * first.impressions
    )


def test_simulate_command_with_spread_arrivals_brings_new_shoppers_every_day(experiment) -> None:  # type: ignore[no-untyped-def]
    from simulation.management.commands.simulate import Command

    help_text = " ".join(Command().create_parser("manage.py", "simulate").format_help().split())
    assert "--arrivals {at-start,uniform,first-purchase}" in help_text
    assert "new shoppers keep arriving until the end" in help_text

    call_command("simulate", "recs-ab", "--users", "60", "--days", "4", "--inline", stdout=io.StringIO())
    call_command("simulate", "recs-ab", "--users", "60", "--days", "4", "--arrivals", "uniform", "--seed", "1",
                 "--inline", stdout=io.StringIO())  # fmt: skip
    at_start, uniform = SimulationRun.objects.order_by("pk")
    assert "arrivals" not in at_start.config  # the default keeps the stored settings of earlier runs
    assert uniform.config["arrivals"] == "uniform"

    start = Dataset.objects.get(name="retail-held-out").holdout_from  # simulated day 0 starts there

    def new_shoppers_per_day(run: SimulationRun) -> list[int]:
        first = Exposure.objects.filter(simulation=run).values_list("first_exposed_at", flat=True)
        days = [(at - start).days for at in first]
        return [days.count(d) for d in range(4)]

    # The sample has 34 shoppers. At start (60 sessions a day) nearly all come on the first days: measured
    # 29, 4, 1, 0. Spread, about a quarter of them arrive each day: measured 9, 11, 5, 9.
    assert new_shoppers_per_day(at_start) == [29, 4, 1, 0]
    assert new_shoppers_per_day(uniform) == [9, 11, 5, 9]


def test_arrivals_over_the_api_are_stored_and_bad_ones_refused_with_a_field_error(experiment) -> None:  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    pm = APIClient()
    pm.force_authenticate(experiment.owner)
    base = f"/api/v1/experiments/{experiment.key}/simulations"

    refused = pm.post(base, {"days": 2, "arrivals": "sometimes"}, format="json")
    assert refused.status_code == 400
    assert "arrivals" in refused.json()
    created = pm.post(base, {"days": 2, "arrivals": "first-purchase"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["config"] == {"days": 2, "arrivals": "first-purchase"}
    assert SimulationRun.objects.count() == 1


def test_the_simulate_form_offers_arrivals_and_queues_the_chosen_mode(experiment) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(experiment.owner)
    page = client.get(reverse("experiment_pages:detail", args=[experiment.key])).content.decode()
    assert 'name="arrivals"' in page
    assert '<option value="first-purchase">' in page

    url = reverse("experiment_pages:simulate", args=[experiment.key])
    refused = client.post(url, {"users": 50, "days": 2, "seed": 1, "arrivals": "sometimes"}, follow=True)
    assert "arrivals: Select a valid choice" in refused.content.decode()
    assert SimulationRun.objects.count() == 0
    client.post(url, {"users": 50, "days": 2, "seed": 1, "arrivals": "uniform"})
    client.post(url, {"users": 50, "days": 2, "seed": 2, "arrivals": "at-start"})
    runs = list(SimulationRun.objects.order_by("pk"))
    assert [run.config.get("arrivals") for run in runs] == ["uniform", None]


def test_a_scaled_population_stores_each_replica_as_its_own_user_under_the_real_shoppers_id(experiment) -> None:  # type: ignore[no-untyped-def]
    from analysis.models import CupedRollup
    from recommenders.models import Interaction

    out = io.StringIO()
    call_command("simulate", "recs-ab", "--users", "150", "--days", "3", "--arrivals", "uniform",
                 "--population-scale", "3", "--inline", stdout=out)  # fmt: skip
    run = SimulationRun.objects.get()
    assert run.status == "succeeded", run.traceback
    assert run.config["population_scale"] == 3

    users = list(Exposure.objects.filter(simulation=run).values_list("user_id", flat=True))
    # The sample's 34 shoppers, three times (450 expected sessions bring every one of the 102 by uniform arrivals).
    assert len(users) == len(set(users)) == 3 * 34
    prefixes = {user.partition(":")[0] for user in users}
    assert prefixes == {f"sim{run.pk}", f"sim{run.pk}.1", f"sim{run.pk}.2"}
    shoppers = {user.partition(":")[2] for user in users}
    assert len(shoppers) == 34
    results = results_data(experiment_results(experiment))
    assert sum(arm["users"] for arm in results["arms"]) == 102

    # CUPED's covariate of a replica is its real shopper's pre-period activity, as for the shopper.
    dataset = Dataset.objects.get(name="retail-held-out")
    history = Interaction.objects.filter(dataset=dataset, timestamp__lt=experiment.started_at)
    expected = sum(history.filter(user_id=user.partition(":")[2]).count() for user in users)
    stored = CupedRollup.objects.filter(experiment=experiment, simulated=True, metric="clicks_per_user")
    assert sum(row.sum_x for row in stored) == expected > 0

    from simulation.management.commands.simulate import Command

    help_text = " ".join(Command().create_parser("manage.py", "simulate").format_help().split())
    assert "--population-scale S" in help_text
    assert "Not with --http" in help_text


def test_a_population_scale_is_refused_over_http_and_checked_by_the_api_and_the_form(experiment) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client
    from django.urls import reverse
    from rest_framework.test import APIClient

    from simulation.services.http_traffic import run_http_simulation

    with pytest.raises(SimulationRefused, match="population scale above 1"):
        run_http_simulation(experiment, {"days": 1, "population_scale": 2}, "http://127.0.0.1:8000", "token")
    with pytest.raises(SimulationRefused, match="population_scale: must be a whole number from 1 to 20"):
        queue_simulation(experiment, {"population_scale": 21}, send=False)

    pm = APIClient()
    pm.force_authenticate(experiment.owner)
    base = f"/api/v1/experiments/{experiment.key}/simulations"
    refused = pm.post(base, {"days": 2, "population_scale": 0}, format="json")
    assert refused.status_code == 400
    assert "population_scale" in refused.json()
    created = pm.post(base, {"days": 2, "population_scale": 4}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["config"] == {"days": 2, "population_scale": 4}

    SimulationRun.objects.all().delete()  # the API's queued run would hide the form
    client = Client()
    client.force_login(experiment.owner)
    page = client.get(reverse("experiment_pages:detail", args=[experiment.key])).content.decode()
    assert 'name="population_scale"' in page
    url = reverse("experiment_pages:simulate", args=[experiment.key])
    refused_page = client.post(url, {"users": 50, "days": 2, "seed": 1, "population_scale": 21}, follow=True)
    assert "population_scale: Ensure this value is less than or equal to 20" in refused_page.content.decode()
    assert SimulationRun.objects.count() == 0
    client.post(url, {"users": 50, "days": 2, "seed": 1, "population_scale": 2})
    client.post(url, {"users": 50, "days": 2, "seed": 2, "population_scale": 1})
    assert [run.config.get("population_scale") for run in SimulationRun.objects.order_by("pk")] == [2, None]


def test_the_simulate_card_says_the_data_sets_shoppers_and_the_shop_size_the_plan_needs(experiment) -> None:  # type: ignore[no-untyped-def]
    import math
    import re

    from django.test import Client
    from django.urls import reverse

    from engine.planning import plan_experiment
    from simulation.services.population import population_advice

    client = Client()
    client.force_login(experiment.owner)
    url = reverse("experiment_pages:detail", args=[experiment.key])

    def hint() -> str:
        page = client.get(url).content.decode()
        start = page.index('id="simulated-population"')
        return " ".join(re.sub(r"<[^>]+>", "", page[start : page.index("</p>", start)]).split())

    # The sample's 34 shoppers: the customers with a purchase before the hold-out time and one after it.
    assert "The data set has 34 shoppers to simulate" in hint()
    assert "The plan needs" not in hint()

    def planned(baseline: float, effect: float) -> int:
        Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=baseline, minimum_detectable_effect=effect)
        return plan_experiment(baseline, effect, weights=[1.0, 1.0]).total_users

    users = planned(0.3, 0.5)  # a few hundred users: more than 34, fewer than 20 x 34
    scale = math.ceil(users / 34)
    assert 1 < scale <= 20
    assert f"The plan needs {users:,} users: set Shop size to {scale} or more" in hint()
    advice = population_advice(Experiment.objects.get(pk=experiment.pk))
    assert advice is not None
    assert (advice.shoppers, advice.plan_users, advice.scale) == (34, users, scale)

    users = planned(0.05, 0.05)  # tens of thousands
    assert users > 20 * 34
    assert f"The plan needs {users:,} users: even the largest shop size (680 shoppers) is short of it" in hint()

    assert planned(0.1, 8.0) <= 34  # 10 users: 10 % against 90 %
    assert "users: enough." in hint()
