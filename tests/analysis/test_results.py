"""Results from rollups: per arm figures, the engine's tests on the rollup sums, Holm, SRM, verdicts."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from analysis.results_types import results_data
from analysis.services.horizon import sequential_n_stars
from analysis.services.results import experiment_results
from analysis.services.rollups import fold
from engine.stats import Proportion, RatioSample, SampleMean, proportion_test, ratio_test, sequential_test
from engine.stats.sequential import DEFAULT_N_STAR
from experiments.models import Arm, Experiment
from serving.models import Exposure
from tests.experiments.traffic import DAY1, NO_LAG, expose, running_experiment, send, simulate


@pytest.mark.django_db
def test_results_are_the_engine_tests_on_the_per_user_values() -> None:
    experiment, control, treatment = running_experiment()
    # An imported log analysed by the fixed-horizon test: its horizon is the complete log.
    experiment.status, experiment.source, experiment.analysis_method = "stopped", "imported", "fixed_horizon"
    experiment.save()
    data = simulate(experiment, (control, treatment), users_per_arm=60)
    fold(experiment.pk, lag=NO_LAG)

    results = results_data(experiment_results(experiment))
    json.dumps(results, allow_nan=False)  # JSON-ready, no NaN

    c, t = data["control"], data["treatment"]
    arm = {a["name"]: a for a in results["arms"]}
    assert arm["control"]["users"] == 60
    assert arm["control"]["impressions"] == int(c["imp"].sum())
    assert arm["treatment"]["clicks"] == int(t["clk"].sum())
    assert arm["treatment"]["purchasers"] == int(t["pur"].sum())
    assert arm["treatment"]["conversion_rate"] == pytest.approx(t["pur"].mean(), abs=1e-12)
    assert arm["treatment"]["revenue"] == pytest.approx(t["rev"].sum(), abs=1e-9)
    assert arm["control"]["ctr"] == pytest.approx(c["clk"].sum() / c["imp"].sum(), abs=1e-12)

    (comparison,) = results["comparisons"]
    metrics = comparison["metrics"]
    # CTR: the delta-method ratio test on per-user values, as computed from raw arrays.
    expected_ctr = ratio_test(RatioSample.from_values(c["clk"], c["imp"]), RatioSample.from_values(t["clk"], t["imp"]))
    assert metrics["ctr"]["absolute"]["p_value"] == pytest.approx(expected_ctr.p_value, abs=1e-9)
    # Revenue and clicks per user: Welch's t-test over all exposed users (scipy, independently).
    for metric, column in (("revenue_per_user", "rev"), ("clicks_per_user", "clk")):
        welch = stats.ttest_ind(t[column], c[column], equal_var=False)
        assert metrics[metric]["absolute"]["p_value"] == pytest.approx(welch.pvalue, abs=1e-9)
        assert metrics[metric]["absolute"]["effect"] == pytest.approx(t[column].mean() - c[column].mean(), abs=1e-9)
    assert SampleMean.from_values(t["rev"]).sum == pytest.approx(arm["treatment"]["revenue"], abs=1e-9)

    # Holm over 2 arms x 5 metrics = 5 comparisons; the verdict is on the primary metric (CTR).
    assert [row["metric"] for row in results["multiple_testing"]["tests"]] == [
        "conversion_rate", "add_to_cart_rate", "ctr", "revenue_per_user", "clicks_per_user"]  # fmt: skip
    assert [row["primary"] for row in results["multiple_testing"]["tests"]] == [False, False, True, False, False]
    # The verdict: the same test on the relative lift, with that test's own interval.
    relative_ctr = ratio_test(RatioSample.from_values(c["clk"], c["imp"]), RatioSample.from_values(t["clk"], t["imp"]),
                              difference="log")  # fmt: skip
    assert comparison["verdict_basis"] == "fixed_horizon"
    assert comparison["verdict_p_value"] == pytest.approx(relative_ctr.p_value, abs=1e-9)
    # tested on the log ratio, shown as the relative lift: exp(.) - 1 of the log interval
    assert (comparison["verdict_ci_low"], comparison["verdict_ci_high"]) == pytest.approx(
        (math.expm1(relative_ctr.ci_low), math.expm1(relative_ctr.ci_high)), abs=1e-12
    )
    assert comparison["verdict"] == "treatment wins"  # the treatment clicks more (0.45 against 0.25 a view)
    assert relative_ctr.p_value < 0.05
    assert relative_ctr.ci_low > 0
    assert comparison["sequential"]["p_value"] >= comparison["metrics"]["ctr"]["relative"]["p_value"]
    assert results["srm"]["mismatch"] is False
    assert sum(d["new_users"] for d in results["daily"]["control"]) == 60


@pytest.mark.django_db
def test_an_experiment_without_traffic_answers_not_enough_data() -> None:
    experiment, control, _ = running_experiment()
    expose(experiment, control, "only-one")
    send(experiment, ("1", "only-one", "impression", DAY1))
    fold(experiment.pk, lag=NO_LAG)

    results = results_data(experiment_results(experiment))

    json.dumps(results, allow_nan=False)
    (comparison,) = results["comparisons"]
    assert comparison["verdict"] == "not enough data"
    assert comparison["verdict_basis"] == "sequential"  # the default analysis method
    assert comparison["metrics"]["ctr"]["absolute"] is None
    assert "Proportion.n" in comparison["metrics"]["conversion_rate"]["error"]
    assert [a["users"] for a in results["arms"]] == [1, 0]
    assert results["multiple_testing"]["tests"] == []


@pytest.mark.django_db
def test_a_sample_ratio_mismatch_is_flagged_and_conversion_tested() -> None:
    experiment, control, treatment = running_experiment()
    experiment.primary_metric = "conversion_rate"
    experiment.status, experiment.source, experiment.analysis_method = "stopped", "imported", "fixed_horizon"
    experiment.save()
    when = datetime(2026, 11, 24, tzinfo=UTC)
    Exposure.objects.bulk_create(
        [Exposure(experiment=experiment, arm=control, user_id=f"c{i}", bucket=0, first_exposed_at=when)
         for i in range(600)]
        + [Exposure(experiment=experiment, arm=treatment, user_id=f"t{i}", bucket=0, first_exposed_at=when)
           for i in range(400)]
    )  # fmt: skip
    send(experiment, *[(f"c{i}", f"c{i}", "purchase", when, "10.00") for i in range(30)],
         *[(f"t{i}", f"t{i}", "purchase", when, "10.00") for i in range(60)])  # fmt: skip
    fold(experiment.pk, lag=NO_LAG)

    results = results_data(experiment_results(experiment))

    assert results["srm"]["mismatch"] is True
    assert results["srm"]["p_value"] == pytest.approx(stats.chisquare([600, 400]).pvalue, rel=1e-9)
    assert results["warnings"][0]["code"] == "srm"
    assert results["warnings"][0]["message"].startswith("sample ratio mismatch")
    (comparison,) = results["comparisons"]
    # 30/600 against 60/400: treatment converts 3x as often.

    expected = proportion_test(Proportion(600, 30), Proportion(400, 60))
    assert comparison["metrics"]["conversion_rate"]["test"] == "fixed_horizon"
    assert comparison["metrics"]["conversion_rate"]["absolute"]["p_value"] == pytest.approx(expected.p_value, abs=1e-12)
    assert comparison["metrics"]["conversion_rate"]["relative"]["effect"] == pytest.approx(2.0, abs=1e-12)
    assert comparison["verdict"] == "treatment wins"
    assert comparison["bayesian"]["chance_to_win"] > 0.99


@pytest.mark.django_db
def test_cuped_uses_the_shoppers_history_before_the_start(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    """Real customers of the data set; their clicks in the experiment follow their earlier purchases."""
    from collections import Counter

    from engine.stats import CovariateSample, cuped_adjust, mean_test
    from experiments.services.lifecycle import transition
    from recommenders.models import Interaction
    from tests.experiments.factories import draft_experiment, product_manager, trained_variants

    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    trained_variants(tmp_path, rows=3000)
    pm = product_manager()
    experiment = transition(draft_experiment(pm), "start", pm)
    history = Counter(Interaction.objects.values_list("user_id", flat=True))
    arms = list(experiment.arms.order_by("position"))
    rng = random.Random(3)
    values: dict[int, tuple[list[float], list[float]]] = {arm.pk: ([], []) for arm in arms}
    events = []
    for i, (user, earlier) in enumerate(sorted(history.items())):
        arm = arms[i % 2]
        expose(experiment, arm, user)
        clicks = earlier // 4 + rng.randint(0, 2) + (1 if arm.is_control is False else 0)
        values[arm.pk][0].append(float(clicks))
        values[arm.pk][1].append(float(earlier))
        events += [(f"{user}-{c}", user, "click", DAY1) for c in range(clicks)]
    send(experiment, *events)
    fold(experiment.pk, lag=NO_LAG)

    results = results_data(experiment_results(experiment))
    cuped = results["comparisons"][0]["metrics"]["clicks_per_user"]["cuped"]
    expected = cuped_adjust(
        CovariateSample.from_values(values[arms[0].pk][0], values[arms[0].pk][1]),
        CovariateSample.from_values(values[arms[1].pk][0], values[arms[1].pk][1]),
    )
    test = mean_test(expected.control_adjusted, expected.treatment_adjusted)
    assert cuped["variance_reduction"] == pytest.approx(expected.variance_reduction, rel=1e-9)
    assert cuped["p_value"] == pytest.approx(test.p_value, rel=1e-6)
    assert cuped["variance_reduction"] > 0.3  # history explains much of the clicks here
    plain = results["comparisons"][0]["metrics"]["clicks_per_user"]["absolute"]
    assert cuped["ci_high"] - cuped["ci_low"] < plain["ci_high"] - plain["ci_low"]


@pytest.mark.django_db
def test_the_lift_history_is_the_sequential_test_on_each_days_cumulative_data() -> None:
    experiment, control, treatment = running_experiment()
    data = simulate(experiment, (control, treatment), users_per_arm=60)
    fold(experiment.pk, lag=NO_LAG)

    (history,) = results_data(experiment_results(experiment))["lift_history"].values()

    # simulate() exposes everyone on DAY1 (09:00) and sends user u's events at 09:00 + (u % 30) h:
    # users 0-14 of every 30 act on day 1, the others on day 2.
    day1 = (np.arange(60) % 30) < 15
    c, t = data["control"], data["treatment"]
    expected = [
        sequential_test(RatioSample.from_values(c["clk"] * mask, c["imp"] * mask),
                        RatioSample.from_values(t["clk"] * mask, t["imp"] * mask), difference="log")
        for mask in (day1, np.ones(60, dtype=bool))
    ]  # fmt: skip
    assert [look["day"] for look in history] == ["2026-11-24", "2026-11-25"]
    for look, test in zip(history, expected, strict=True):
        assert look["effect"] == pytest.approx(math.expm1(test.effect), rel=1e-9)
        assert (look["ci_low"], look["ci_high"]) == (
            pytest.approx(math.expm1(test.ci_low), rel=1e-9),
            pytest.approx(math.expm1(test.ci_high), rel=1e-9),
        )


@pytest.mark.django_db
def test_the_always_valid_test_is_tightest_at_the_plans_users_of_the_two_arms() -> None:
    experiment, control, treatment = running_experiment()
    data = simulate(experiment, (control, treatment), users_per_arm=60)
    fold(experiment.pk, lag=NO_LAG)
    c, t = data["control"], data["treatment"]
    ctr = (RatioSample.from_values(c["clk"], c["imp"]), RatioSample.from_values(t["clk"], t["imp"]))

    # Without planning fields: the engine's default N* (30,000 users), said so.
    (comparison,) = results_data(experiment_results(experiment))["comparisons"]
    default = sequential_test(*ctr, difference="log")
    assert (comparison["sequential"]["n_star"], comparison["sequential"]["n_star_source"]) == (30_000, "default")
    assert comparison["sequential"]["p_value"] == pytest.approx(default.p_value, rel=1e-12)

    # With them: 30 % -> 36 % (+20 %) at alpha 0.05 and power 0.8 needs 963 users per arm (Cohen's h, solved
    # by statsmodels here), so with equal weights the test is tightest at 963 + 963 users of the two arms.
    n_per_arm = math.ceil(NormalIndPower().solve_power(proportion_effectsize(0.36, 0.30), alpha=0.05, power=0.8))
    assert n_per_arm == 963
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.3, minimum_detectable_effect=0.2)
    experiment.refresh_from_db()
    results = results_data(experiment_results(experiment))
    (comparison,) = results["comparisons"]
    planned = sequential_test(*ctr, n_star=2 * n_per_arm, difference="log")
    assert (comparison["sequential"]["n_star"], comparison["sequential"]["n_star_source"]) == (1_926, "plan")
    assert comparison["sequential"]["p_value"] == pytest.approx(planned.p_value, rel=1e-12)
    assert (comparison["sequential"]["ci_low"], comparison["sequential"]["ci_high"]) == (
        pytest.approx(math.expm1(planned.ci_low), rel=1e-12),
        pytest.approx(math.expm1(planned.ci_high), rel=1e-12),
    )
    # N* moves the always-valid p (here 120 users are nearer 1,926 than 30,000: the sequence is narrower).
    assert 0 < planned.p_value < default.p_value < 1
    assert planned.ci_high - planned.ci_low < default.ci_high - default.ci_low
    assert comparison["verdict_basis"] == "sequential"
    assert comparison["verdict_p_value"] == pytest.approx(planned.p_value, rel=1e-12)  # one treatment: no adjustment
    # The lift over time is the same test, day by day: its last day (all the data) uses the plan's N* too.
    last = results["lift_history"]["treatment"][-1]
    relative = sequential_test(*ctr, difference="log", n_star=1_926)
    assert (last["p_value"], last["ci_low"], last["ci_high"]) == (
        pytest.approx(relative.p_value, rel=1e-12),
        pytest.approx(math.expm1(relative.ci_low), rel=1e-12),
        pytest.approx(math.expm1(relative.ci_high), rel=1e-12),
    )

    # Control weighted 3 : 1: the treatment reaches 963 users when the control has 3 x 963 = 2,889.
    Arm.objects.filter(pk=control.pk).update(weight=3.0)
    (comparison,) = results_data(experiment_results(experiment))["comparisons"]
    assert (comparison["sequential"]["n_star"], comparison["sequential"]["n_star_source"]) == (3_852, "plan")
    expected_p = sequential_test(*ctr, n_star=3_852, difference="log").p_value
    assert comparison["sequential"]["p_value"] == pytest.approx(expected_p, rel=1e-12)


@pytest.mark.django_db
def test_each_treatment_gets_the_plans_users_of_its_own_two_arms() -> None:
    experiment, control, treatment = running_experiment()
    other = Arm.objects.create(experiment=experiment, name="other", position=2, weight=0.5)
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.3, minimum_detectable_effect=0.2)
    experiment.refresh_from_db()
    arms = [control, treatment, other]

    # 963 users per arm; the smallest arm (weight 0.5) sets the pace, so control and treatment get 1,926 each.
    assert sequential_n_stars(experiment, arms) == {treatment.pk: (3_852.0, "plan"), other.pk: (2_889.0, "plan")}


@pytest.mark.parametrize(
    ("fields", "treatment_weight"),
    [
        ({}, 1.0),  # no planning fields
        ({"baseline_rate": 0.3}, 1.0),  # incomplete
        ({"baseline_rate": 0.95, "minimum_detectable_effect": 0.2}, 1.0),  # impossible: 95 % -> 114 %
        ({"baseline_rate": 0.3, "minimum_detectable_effect": 0.2}, 0.0),  # an arm that never gets users
    ],
)
@pytest.mark.django_db
def test_without_a_plan_that_can_be_met_the_default_n_star_is_used(
    fields: dict[str, float], treatment_weight: float
) -> None:
    experiment, control, treatment = running_experiment()
    Experiment.objects.filter(pk=experiment.pk).update(**fields)
    Arm.objects.filter(pk=treatment.pk).update(weight=treatment_weight)
    experiment.refresh_from_db()
    treatment.refresh_from_db()

    assert sequential_n_stars(experiment, [control, treatment]) == {treatment.pk: (DEFAULT_N_STAR, "default")}
