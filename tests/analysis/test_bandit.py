"""The bandit experiment mode on PostgreSQL: the weight history and its beat task, cohort counts from the
rollups, the results block against the Django-free core, and the pages (no trained models needed)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analysis.results_types import results_data
from analysis.services import bandit_results
from analysis.services.results import experiment_results
from analysis.services.rollups import fold
from analysis.tasks import update_bandits_task
from engine.bandits import (
    ArmCounts,
    PeriodData,
    ThompsonConfig,
    allocation_for,
    bandit_srm,
    served_weights,
    stratified_comparison,
    thompson_update,
)
from experiments.models import Arm, BanditUpdate, Experiment
from experiments.services import bandit_schedule
from serving.models import Event, Exposure
from tests.celery_worker import worker_process
from tests.experiments.factories import product_manager
from tests.experiments.traffic import running_experiment, send

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
NO_LAG = timedelta(0)


def bandit_experiment(started_at: datetime = START, key: str = "bandit-ab") -> tuple[Experiment, Arm, Arm]:
    """A running two-arm bandit on conversion, hourly updates, no trial burn-in, period 0 stored."""
    experiment, control, treatment = running_experiment(key)
    Experiment.objects.filter(pk=experiment.pk).update(
        design="bandit", primary_metric="conversion_rate", started_at=started_at, bandit_burn_in_trials=0,
        bandit_update_minutes=60,
    )  # fmt: skip
    experiment.refresh_from_db()
    bandit_schedule.start_live_history(experiment)
    return experiment, control, treatment


def cohort(experiment: Experiment, arm: Arm, prefix: str, users: int, buyers: int, at: datetime) -> None:
    """`users` new users of `arm` first exposed at `at`, the first `buyers` of them purchasing once."""
    for i in range(users):
        Exposure.objects.create(experiment=experiment, arm=arm, user_id=f"{prefix}{i}", bucket=0, first_exposed_at=at)
    send(experiment, *[(f"{prefix}-buy{i}", f"{prefix}{i}", "purchase", at + timedelta(minutes=5), "10.00")
                       for i in range(buyers)])  # fmt: skip


@pytest.mark.django_db
def test_an_update_stores_thompson_weights_from_the_rollups_once_per_period() -> None:
    experiment, control, treatment = bandit_experiment()
    cohort(experiment, control, "c", 40, 4, START + timedelta(minutes=10))
    cohort(experiment, treatment, "t", 40, 12, START + timedelta(minutes=10))
    fold(experiment.pk, lag=NO_LAG)
    at = START + timedelta(hours=1)

    row = bandit_results.update_weights(experiment.pk, at=at)

    config = ThompsonConfig(min_share=0.05, burn_in_trials=0, burn_in_periods=1)
    expected = thompson_update([ArmCounts(40, 4), ArmCounts(40, 12)], 1, config)
    assert row is not None
    assert (row.period, row.burn_in, row.starts_at) == (1, False, at + bandit_schedule.SWITCH_DELAY)
    assert tuple(row.weights) == expected.weights
    assert bandit_schedule.as_weight_update(row) == expected
    # Not due again until the interval has passed; a retried store keeps the first row.
    assert bandit_results.update_weights(experiment.pk, at=at + timedelta(minutes=30)) is None
    again = bandit_schedule.store_update(experiment.pk, None, replace(expected, weights=(0.5, 0.5)), at)
    assert (again.pk, again.weights) == (row.pk, list(expected.weights))
    assert list(BanditUpdate.objects.filter(experiment=experiment).values_list("period", flat=True)) == [0, 1]


@pytest.mark.django_db
def test_an_update_before_the_interval_or_for_an_ab_test_stores_nothing() -> None:
    experiment, _, _ = bandit_experiment()
    assert bandit_results.update_weights(experiment.pk, at=START + timedelta(minutes=59)) is None
    ab, _, _ = running_experiment("plain-ab")
    assert bandit_results.update_weights(ab.pk, at=START + timedelta(days=3)) is None
    assert BanditUpdate.objects.count() == 1


@pytest.mark.django_db
def test_the_beat_task_updates_due_bandits_and_a_second_run_stores_nothing(settings) -> None:  # type: ignore[no-untyped-def]
    experiment, _, _ = bandit_experiment(started_at=timezone.now() - timedelta(hours=2))
    assert update_bandits_task() == {str(experiment.pk): 1}
    assert update_bandits_task() == {}
    assert BanditUpdate.objects.filter(experiment=experiment).count() == 2
    assert settings.CELERY_BEAT_SCHEDULE["update-bandits"]["task"] == "analysis.tasks.update_bandits_task"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_runs_on_a_real_worker() -> None:
    experiment, _, _ = bandit_experiment(started_at=timezone.now() - timedelta(hours=2))
    with worker_process() as queue:
        first = update_bandits_task.apply_async(queue=queue)
        assert first.get(timeout=60) == {str(experiment.pk): 1}
        assert update_bandits_task.apply_async(queue=queue).get(timeout=60) == {}
    # Period 1 leaves the burn-in (no trial minimum here); with no data both arms are equally likely best.
    assert list(BanditUpdate.objects.filter(experiment=experiment).values_list("period", "burn_in", "weights")) == [
        (0, True, [0.5, 0.5]),
        (1, False, [0.5, 0.5]),
    ]


def _two_periods() -> tuple[Experiment, Arm, Arm, datetime]:
    """Period 0: 30 + 30 users (3 + 1 late and 6 buyers); period 1 (weights of the update): 20 + 50 users (2 and 9)."""
    experiment, control, treatment = bandit_experiment()
    cohort(experiment, control, "a", 30, 3, START + timedelta(minutes=20))
    cohort(experiment, treatment, "b", 30, 6, START + timedelta(minutes=20))
    fold(experiment.pk, lag=NO_LAG)
    row = bandit_results.update_weights(experiment.pk, at=START + timedelta(hours=1))
    assert row is not None
    later = row.starts_at + timedelta(minutes=1)
    cohort(experiment, control, "c", 20, 2, later)
    cohort(experiment, treatment, "d", 50, 9, later)
    # An event of a period-0 user during period 1 counts for their own cohort.
    send(experiment, ("a-late", "a5", "purchase", later, "3.00"))
    fold(experiment.pk, lag=NO_LAG)
    return experiment, control, treatment, row.starts_at


@pytest.mark.django_db
def test_cohort_counts_from_the_rollups_equal_a_count_of_the_raw_rows() -> None:
    experiment, control, treatment, switch = _two_periods()
    arms = [control, treatment]

    counts = bandit_results.cohort_counts(experiment, arms, [START, switch], None)

    direct = []
    for low, high in ((START, switch), (switch, START + timedelta(days=9))):
        users = [
            set(Exposure.objects.filter(arm=arm, first_exposed_at__gte=low, first_exposed_at__lt=high)
                .values_list("user_id", flat=True))
            for arm in arms
        ]  # fmt: skip
        buyers = set(Event.objects.filter(experiment=experiment, type="purchase").values_list("user_id", flat=True))
        direct.append(([len(u) for u in users], [len(u & buyers) for u in users]))
    assert [(list(c.users), list(c.purchasers)) for c in counts] == direct == [([30, 30], [4, 6]), ([20, 50], [2, 9])]
    assert [list(c.impressions) for c in counts] == [[0, 0], [0, 0]]


@pytest.mark.django_db
def test_a_ctr_update_deflates_each_arms_counts_by_the_design_effect_of_its_users() -> None:
    experiment, control, treatment = bandit_experiment()
    Experiment.objects.filter(pk=experiment.pk).update(primary_metric="ctr")
    at = START + timedelta(minutes=10)
    events = []
    # 10 impressions per user. Control's users click 3, 0, 1, 0 times (design effect 20 / 9, see
    # test_ctr_design_effect_of_a_worked_example); treatment's click once each (no excess variance: 1).
    for arm, prefix, clicks in ((control, "c", [3, 0, 1, 0]), (treatment, "t", [1, 1, 1, 1])):
        for u, n in enumerate(clicks):
            user = f"{prefix}{u}"
            Exposure.objects.create(experiment=experiment, arm=arm, user_id=user, bucket=0, first_exposed_at=at)
            events += [(f"{user}-i{j}", user, "impression", at + timedelta(seconds=j)) for j in range(10)]
            events += [(f"{user}-c{j}", user, "click", at + timedelta(seconds=20 + j)) for j in range(n)]
    send(experiment, *events)
    fold(experiment.pk, lag=NO_LAG)

    (counts,) = bandit_results.cohort_counts(experiment, [control, treatment], [START], None)
    row = bandit_results.update_weights(experiment.pk, at=START + timedelta(hours=1))

    assert (counts.impressions, counts.clicks) == ((40, 40), (4, 4))
    assert (counts.clicks_squared, counts.impressions_squared, counts.clicks_impressions) == (
        (10, 4), (400, 400), (40, 40))  # fmt: skip
    config = ThompsonConfig(min_share=0.05, burn_in_trials=0, burn_in_periods=1)
    expected = thompson_update([ArmCounts(40, 4, design_effect=20 / 9), ArmCounts(40, 4)], 1, config)
    assert row is not None
    assert row.posteriors[0]["alpha"] == pytest.approx(1 + 4 * 9 / 20)
    assert row.posteriors[1]["alpha"] == 5.0
    assert tuple(row.weights) == pytest.approx(expected.weights)
    assert row.weights[0] == pytest.approx(0.5676, abs=1e-4)  # without the design effect: a tie at 0.5


@pytest.mark.django_db
def test_results_of_a_bandit_use_the_cohorts_and_the_served_weights() -> None:
    experiment, _, _, _ = _two_periods()
    rows = bandit_schedule.history(experiment.pk)

    results = results_data(experiment_results(experiment))
    block = results["bandit"]

    weights = [served_weights(allocation_for(tuple(r.weights))) for r in rows]
    periods = [PeriodData(0, weights[0], (30, 30), (4, 6)), PeriodData(1, weights[1], (20, 50), (2, 9))]
    (core,) = stratified_comparison(periods, control=0, confidence=0.95)
    srm = bandit_srm(periods, alpha=0.001)
    (comparison,) = block["comparisons"]
    assert (comparison["effect"], comparison["ci_low"], comparison["ci_high"]) == (
        core.effect,
        core.ci_low,
        core.ci_high,
    )
    assert (comparison["batched_z"], comparison["batched_p_value"]) == (core.batched_z, core.batched_p_value)
    assert comparison["p_value_adjusted"] == core.batched_p_value  # one treatment: Holm changes nothing
    assert block["srm"]["p_value"] == srm.pooled.p_value == results["srm"]["p_value"]
    assert block["srm"]["expected"] == {"control": srm.expected[0], "treatment": srm.expected[1]}
    assert block["current_weights"] == {"control": rows[1].weights[0], "treatment": rows[1].weights[1]}
    assert [c["users"] for c in block["cohorts"]] == [[30, 30], [20, 50]]
    assert block["pooled"] == [{"arm": "control", "users": 50, "successes": 6},
                               {"arm": "treatment", "users": 80, "successes": 15}]  # fmt: skip
    # The verdict is the cohort analysis's, not the pooled test's.
    (verdict,) = results["comparisons"]
    assert verdict["verdict_basis"] == "bandit_cohorts"
    assert verdict["verdict_p_value"] == core.batched_p_value
    assert verdict["verdict"] == comparison["verdict"] == "no significant difference"
    simulated = results_data(experiment_results(experiment, traffic="simulated"))
    assert simulated["bandit"]["error"] == "no exposed users in any period yet"


@pytest.mark.django_db
def test_the_pages_and_exports_show_the_bandit_weights_and_cohort_results() -> None:
    experiment, _, _, _ = _two_periods()
    client = Client()
    client.force_login(product_manager())

    detail = client.get(reverse("experiment_pages:detail", args=[experiment.key])).content.decode()
    page = client.get(reverse("experiment_pages:results", args=[experiment.key])).content.decode()
    report = client.get(reverse("experiment_pages:report", args=[experiment.key])).content.decode()

    assert 'id="chart-bandit-weights"' in detail
    assert "plotly.min.js" in detail
    assert detail.count('<td class="num"><span class="muted">by the bandit</span></td>') == 2  # not "1" each
    figure = json.loads(page.split('id="chart-bandit-weights-data" type="application/json">')[1].split("</script>")[0])
    assert [trace["name"] for trace in figure["data"]] == ["control", "treatment"]
    assert figure["data"][1]["x"] == [0, 1]
    assert figure["data"][1]["y"] == [0.5, bandit_schedule.history(experiment.pk)[1].weights[1]]
    assert 'id="chart-posterior"' not in page  # pooled charts are left out for a bandit
    for html in (page, report):
        for fragment in ('id="bandit-explanation"', "pooling all users of an arm", 'id="bandit-comparisons"',
                         'id="bandit-srm"', "what the weights actually served in each period predict"):  # fmt: skip
            assert fragment in html
        # The per-period level is a threshold (alpha / periods tested), printed as set, not as a p-value.
        assert "at α = 0.0005" in html
    exported = client.get(reverse("experiment_pages:export-csv", args=[experiment.key])).content.decode()
    rows = [r for r in csv.DictReader(io.StringIO(exported)) if r["metric"] == "conversion_rate (bandit cohorts)"]
    assert [(r["arm"], r["verdict"]) for r in rows] == [("treatment", "no significant difference")]
    document = json.loads(client.get(reverse("experiment_pages:export-json", args=[experiment.key])).content)
    assert [len(h["updates"]) for h in document["results"]["bandit"]["histories"]] == [2]
