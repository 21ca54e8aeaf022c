"""One test behind each verdict: p < alpha exactly when the interval beside it excludes 0, whatever the
method, the stop, the surface (API, CSV, JSON, page); every chosen metric and guardrail is reported."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.results_types import results_data
from analysis.services.results import experiment_results
from engine.stats import Proportion, RatioSample, SampleMean, sequential_test
from engine.verdicts import CONTROL_WINS, NOT_ENOUGH_DATA, TREATMENT_WINS, decide, guardrail
from experiments.models import Arm, Experiment, VerdictOverride
from experiments.services.lifecycle import record_early_read, transition
from simulation.services.runs import run_simulation
from simulation.tasks import queue_simulation
from tests.experiments.factories import client_for, held_out_experiment, product_manager
from tests.experiments.traffic import NO_LAG, running_experiment, simulate

WINS = (TREATMENT_WINS, CONTROL_WINS)


def _agrees(verdict: str, p_value: float | None, low: float | None, high: float | None, alpha: float) -> bool:
    """The contract: significant <=> p < alpha <=> the interval excludes 0 (and no test: no numbers)."""
    if verdict == NOT_ENOUGH_DATA:
        return p_value is None and low is None and high is None
    assert p_value is not None
    assert low is not None
    assert high is not None
    excludes = low > 0 or high < 0
    return (p_value < alpha) == excludes == (verdict in WINS)


proportions = st.builds(lambda n, rate: Proportion(n, round(n * rate)), st.integers(50, 200_000), st.floats(0.001, 0.6))
means = st.builds(
    lambda n, mean, spread: SampleMean(n, n * mean, n * (mean * mean + spread * spread)),
    st.integers(20, 100_000), st.floats(0.5, 40.0), st.floats(0.1, 30.0),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    pair=st.one_of(st.tuples(proportions, proportions), st.tuples(means, means)),
    method=st.sampled_from(["sequential", "fixed_horizon"]),
    treatments=st.integers(1, 4),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_the_verdicts_p_value_and_interval_always_agree(
    pair: tuple[Proportion | SampleMean, Proportion | SampleMean], method: str, treatments: int, alpha: float
) -> None:
    verdict = decide(*pair, method=method, alpha=alpha, treatments=treatments, n_star=5_000)
    assert _agrees(verdict.verdict, verdict.p_value, verdict.ci_low, verdict.ci_high, alpha)


def test_a_ratio_metric_verdict_is_the_relative_lift_test_with_bonferroni_on_both_p_and_interval() -> None:
    rng = np.random.default_rng(5)
    views = rng.poisson(5, (2, 4_000)) + 1
    control = RatioSample.from_values(rng.binomial(views[0], 0.05), views[0])
    treatment = RatioSample.from_values(rng.binomial(views[1], 0.056), views[1])
    alone = decide(control, treatment, method="sequential", alpha=0.05, n_star=8_000)
    three = decide(control, treatment, method="sequential", alpha=0.05, treatments=3, n_star=8_000)
    at_level = sequential_test(control, treatment, alpha=0.05 / 3, difference="log", n_star=8_000)
    assert (three.ci_low, three.ci_high) == (math.expm1(at_level.ci_low), math.expm1(at_level.ci_high))
    assert three.p_value == pytest.approx(min(1.0, 3 * at_level.p_value), rel=1e-12)
    assert alone.ci_high - alone.ci_low < three.ci_high - three.ci_low  # type: ignore[operator]


def test_a_fixed_horizon_verdict_waits_for_the_horizon_and_says_why() -> None:
    verdict = decide(Proportion(500, 20), Proportion(500, 60), method="fixed_horizon", alpha=0.05,
                     horizon_reached=False, horizon_note="500 of the 2,000 users per arm the plan needs")  # fmt: skip
    assert (verdict.verdict, verdict.p_value, verdict.ci_low, verdict.reason) == (
        NOT_ENOUGH_DATA, None, None, "500 of the 2,000 users per arm the plan needs")  # fmt: skip
    assert verdict.label == "Needs more data"


def test_a_guardrail_is_breached_ok_or_inconclusive_by_the_one_sided_always_valid_bound() -> None:
    harmed = guardrail("conversion_rate", Proportion(20_000, 2_000), Proportion(20_000, 1_600), alpha=0.05)
    assert (harmed.status, harmed.ci_high < 0) == ("breached", True)
    tolerated = guardrail("conversion_rate", Proportion(20_000, 2_000), Proportion(20_000, 1_960), alpha=0.05,
                          tolerance=0.2)  # fmt: skip
    assert (tolerated.status, tolerated.ci_low > -0.2) == ("ok", True)
    unsure = guardrail("conversion_rate", Proportion(300, 30), Proportion(300, 28), alpha=0.05)
    assert unsure.status == "inconclusive"
    assert "contains 0" in unsure.reason


@pytest.mark.django_db
def test_stop_keeps_the_sequential_verdict_and_warns_that_it_stopped_before_the_plan() -> None:
    experiment, control, treatment = running_experiment()
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.3, minimum_detectable_effect=0.2)
    simulate(experiment, (control, treatment), users_per_arm=120)
    from analysis.services.rollups import fold

    fold(experiment.pk, lag=NO_LAG)
    experiment.refresh_from_db()
    before = results_data(experiment_results(experiment))
    transition(experiment, "stop", product_manager())
    experiment.refresh_from_db()
    after = results_data(experiment_results(experiment))

    keys = ("verdict", "verdict_basis", "verdict_p_value", "verdict_ci_low", "verdict_ci_high")
    assert [after["comparisons"][0][k] for k in keys] == [before["comparisons"][0][k] for k in keys]
    assert after["comparisons"][0]["verdict_basis"] == "sequential"
    codes = [w["code"] for w in after["warnings"]]
    assert "stopped_early" in codes
    assert "before_plan" in [w["code"] for w in before["warnings"]]
    stopped = next(w for w in after["warnings"] if w["code"] == "stopped_early")
    assert stopped["message"].startswith("stopped before the plan's sample size (120 of the 963 users per arm")
    comparison = after["comparisons"][0]
    assert _agrees(comparison["verdict"], comparison["verdict_p_value"], comparison["verdict_ci_low"],
                   comparison["verdict_ci_high"], after["alpha"])  # fmt: skip


@pytest.mark.django_db
def test_fixed_horizon_needs_the_plan_or_an_early_read_which_the_report_shows() -> None:
    experiment, control, treatment = running_experiment()
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.3, minimum_detectable_effect=0.2,
                                                       analysis_method="fixed_horizon")  # fmt: skip
    simulate(experiment, (control, treatment), users_per_arm=120)
    from analysis.services.rollups import fold

    fold(experiment.pk, lag=NO_LAG)
    experiment.refresh_from_db()
    (waiting,) = results_data(experiment_results(experiment))["comparisons"]
    assert (waiting["verdict"], waiting["verdict_p_value"], waiting["verdict_ci_low"]) == (NOT_ENOUGH_DATA, None, None)
    assert waiting["verdict_reason"] == "120 of the 963 users per arm the plan needs"

    pm = product_manager()
    record_early_read(experiment, pm, "the season ends; we accept the risk")
    (read,) = results_data(experiment_results(experiment))["comparisons"]
    assert read["verdict"] != NOT_ENOUGH_DATA
    assert read["override"]["reason"] == "the season ends; we accept the risk"
    assert _agrees(read["verdict"], read["verdict_p_value"], read["verdict_ci_low"], read["verdict_ci_high"], 0.05)
    report = client_for(pm).get(reverse("experiment_pages:report", args=[experiment.key])).content.decode()
    report = " ".join(html.unescape(report).split())
    assert "Verdict read before the plan's sample size by pm" in report
    assert "the season ends; we accept the risk" in report
    assert experiment.changes.filter(action="early_read").count() == 1
    assert VerdictOverride.objects.filter(experiment=experiment).count() == 1


@pytest.mark.django_db
def test_the_api_csv_json_and_page_carry_the_same_verdict_numbers_and_every_chosen_metric() -> None:
    experiment, control, treatment = running_experiment()
    Experiment.objects.filter(pk=experiment.pk).update(
        primary_metric="ctr", secondary_metrics=["clicks_per_user"], guardrail_metrics=["conversion_rate"],
        guardrail_tolerance=0.05,
    )  # fmt: skip
    Arm.objects.create(experiment=experiment, name="third", position=2)
    simulate(experiment, (control, treatment, Arm.objects.get(name="third")), users_per_arm=90)
    from analysis.services.rollups import fold

    fold(experiment.pk, lag=NO_LAG)
    pm = product_manager()
    client = client_for(pm)
    api = client.get(f"/api/v1/experiments/{experiment.key}/results/").json()
    document = json.loads(client.get(reverse("experiment_pages:export-json", args=[experiment.key])).content)
    rows = list(csv.DictReader(io.StringIO(
        client.get(reverse("experiment_pages:export-csv", args=[experiment.key])).content.decode())))  # fmt: skip
    page = html.unescape(client.get(reverse("experiment_pages:results", args=[experiment.key])).content.decode())

    assert document["results"]["comparisons"] == api["comparisons"]
    for comparison in api["comparisons"]:
        assert comparison["verdict_adjustment"] == "bonferroni"  # two treatments share the control
        assert _agrees(comparison["verdict"], comparison["verdict_p_value"], comparison["verdict_ci_low"],
                       comparison["verdict_ci_high"], api["alpha"])  # fmt: skip
        (row,) = [r for r in rows if r["arm"] == comparison["arm"] and r["metric"] == "ctr"]
        for key in ("verdict_p_value", "verdict_ci_low", "verdict_ci_high", "verdict_effect"):
            assert float(row[key]) == comparison[key]  # unrounded: the same float
        assert row["verdict"] == comparison["verdict"]
        assert f"[{comparison['verdict_ci_low'] * 100:+.1f} %, {comparison['verdict_ci_high'] * 100:+.1f} %]" in page
        assert comparison["verdict_label"] in page
        # Every chosen metric: the primary, the secondary and the guardrail, each with its relative test.
        assert {m: comparison["metrics"][m]["role"] for m in ("ctr", "clicks_per_user", "conversion_rate")} == {
            "ctr": "primary", "clicks_per_user": "secondary", "conversion_rate": "guardrail"}  # fmt: skip
        assert comparison["metrics"]["clicks_per_user"]["relative"]["p_value"] is not None
        (guard,) = comparison["guardrails"]
        assert (guard["metric"], guard["tolerance"]) == ("conversion_rate", 0.05)
        assert guard["status"] in ("ok", "breached", "inconclusive")
        (csv_guard,) = [r for r in rows if r["arm"] == comparison["arm"] and r["metric"] == "conversion_rate"]
        assert csv_guard["guardrail_status"] == guard["status"]
    assert api["chosen_metrics"] == ["ctr", "clicks_per_user", "conversion_rate"]
    assert 'id="chart-forest"' in page
    assert 'id="guardrails"' in page
    assert 'data-guardrail="conversion_rate"' in page
    for metric in ("ctr", "clicks_per_user", "conversion_rate"):
        assert f'data-metric-row="{metric}"' in page


@pytest.mark.django_db
def test_the_same_variant_in_two_arms_and_a_538_day_plan_raise_notices(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = held_out_experiment(tmp_path)
    knn = experiment.arms.get(name="knn")
    knn.variant = experiment.arms.get(name="control").variant
    knn.save()
    # 1.5 % -> 1.65 % needs 108,093 users per arm: at 400 users a day, 541 days.
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.015, minimum_detectable_effect=0.1,
                                                       expected_daily_users=400)  # fmt: skip
    experiment.refresh_from_db()
    warnings = {w["code"]: w["message"] for w in results_data(experiment_results(experiment))["warnings"]}
    assert warnings["same_variant"].startswith("arms control and knn serve the same variant version: an A/A test")
    assert warnings["underpowered"].startswith("the plan needs 541 days at 400 users a day")


@pytest.mark.django_db
def test_on_simulated_traffic_both_methods_give_agreeing_verdicts(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = held_out_experiment(tmp_path, primary_metric="ctr", secondary_metrics=["conversion_rate"])
    run = queue_simulation(experiment, {"daily_users": 300, "days": 4, "seed": 2}, send=False)
    run_simulation(run.pk)
    for method, source in (("sequential", "platform"), ("fixed_horizon", "imported")):
        Experiment.objects.filter(pk=experiment.pk).update(analysis_method=method, source=source)
        experiment.refresh_from_db()
        results = results_data(experiment_results(experiment))
        (comparison,) = results["comparisons"]
        assert comparison["verdict_basis"] == method
        assert comparison["verdict"] != NOT_ENOUGH_DATA
        assert _agrees(comparison["verdict"], comparison["verdict_p_value"], comparison["verdict_ci_low"],
                       comparison["verdict_ci_high"], results["alpha"])  # fmt: skip
        last = results["lift_history"]["knn"][-1]  # the chart's band ends on the verdict's interval
        assert (last["ci_low"], last["ci_high"], last["p_value"]) == pytest.approx(
            (comparison["verdict_ci_low"], comparison["verdict_ci_high"], comparison["verdict_p_value"]), rel=1e-9
        )


@pytest.mark.django_db
def test_the_api_records_one_early_read_for_product_managers_of_fixed_horizon_experiments() -> None:
    from rest_framework.test import APIClient

    from accounts.roles import REVIEWERS
    from tests.recommenders.factories import user_with_role

    experiment, _, _ = running_experiment()
    pm, reviewer = APIClient(), APIClient()
    pm.force_authenticate(product_manager())
    reviewer.force_authenticate(user_with_role("rev", REVIEWERS))
    url = f"/api/v1/experiments/{experiment.key}/early-read/"

    refused = pm.post(url, {"reason": "the season ends"}, format="json")
    assert (refused.status_code, refused.json()) == (400, {"reason": "only a fixed-horizon experiment waits for "
                                                           "its plan: this one is sequential, its verdict may be "
                                                           "read at any time"})  # fmt: skip
    Experiment.objects.filter(pk=experiment.pk).update(analysis_method="fixed_horizon")
    assert reviewer.post(url, {"reason": "x"}, format="json").status_code == 403
    assert pm.post(url, {"reason": " "}, format="json").json() == {
        "reason": "say why the verdict is read before the plan's sample size"}  # fmt: skip
    created = pm.post(url, {"reason": "the season ends"}, format="json")
    assert created.status_code == 201
    assert (created.json()["by"], created.json()["reason"]) == ("pm", "the season ends")
    again = pm.post(url, {"reason": "again"}, format="json")
    assert (again.status_code, again.json()["detail"]) == (409, "an early read of rollup-ab was already recorded by pm")
