"""What the results pages say in words (Django-free presentation helpers)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from analysis import presentation
from analysis.results_types import (
    ABResults,
    ArmResult,
    AsOf,
    Comparison,
    MetricResult,
    MultipleTesting,
    SequentialLift,
    SrmUnavailable,
)
from engine.stats import SequentialResult
from engine.verdicts import Interval


def _arm(name: str, is_control: bool) -> ArmResult:
    return ArmResult(name, is_control, weight=1.0, users=0, active_users=0, impressions=0, clicks=0, ctr=None,
                     add_to_carts=0, add_to_cart_rate=None, purchases=0, purchasers=0, conversion_rate=None,
                     revenue=0.0, revenue_per_user=None, clicks_per_user=None)  # fmt: skip


def _comparison(arm: str, **fields: Any) -> Comparison:
    """A comparison of `arm` with the control on CTR: +1 % [+0.1 %, +2 %], p = 0.01, winning (or `fields`)."""
    absolute = SequentialResult(0.01, 0.001, 0.02, 0.01, True, 0.005, 0.1, 0.11, 2_000.0, 0.05, "absolute", 30_000.0)
    relative = Interval(0.01, 0.001, 0.02, 0.01, "sequential", 0.95)
    ctr = MetricResult(True, "primary", "sequential", absolute, relative, None, None, None)
    comparison = Comparison(
        arm=arm, control="control", metrics={"ctr": ctr}, bayesian=None, bayesian_error=None, sequential=None,
        sequential_error=None, verdict="treatment wins", verdict_label="Winning", verdict_basis="sequential",
        verdict_test="always-valid sequential test", verdict_p_value=0.01, verdict_effect=0.01,
        verdict_ci_low=0.001, verdict_ci_high=0.02, verdict_alpha=0.05, verdict_adjustment="none",
        verdict_treatments=1, verdict_reason="", override=None, guardrails=(),
    )  # fmt: skip
    return replace(comparison, **fields)


def _ab_results(*comparisons: Comparison) -> ABResults:
    return ABResults(
        experiment="e", design="ab", status="running", source="platform", primary_metric="ctr",
        secondary_metrics=(), guardrail_metrics=(), guardrail_tolerance=0.0, analysis_method="sequential",
        alpha=0.05, traffic="all", as_of=AsOf(0, None, 0, 0), arms=(_arm("control", True), _arm("knn", False)),
        chosen_metrics=("ctr",), daily={}, lift_history={}, comparisons=comparisons,
        multiple_testing=MultipleTesting("holm", 0.05), srm=SrmUnavailable(None), warnings=(), bandit=None,
    )  # fmt: skip


def _results(basis: str, words: str) -> ABResults:
    return _ab_results(_comparison("knn", verdict_basis=basis, verdict_test=words))


@pytest.mark.parametrize(
    ("basis", "words"),
    [
        ("sequential", "always-valid sequential test"),
        ("fixed_horizon", "fixed-horizon test"),
        ("bandit_cohorts", "batched test within cohorts of first exposure"),
    ],
)
def test_the_summary_table_and_the_badge_name_the_verdicts_test_and_show_its_interval(basis: str, words: str) -> None:
    control, knn = presentation.summary_rows(_results(basis, words))
    assert control["comparison"] is None
    assert (knn["comparison"]["verdict_basis"], knn["comparison"]["basis"]) == (basis, words)
    assert knn["comparison"]["relative"] == {"effect": 0.01, "ci_low": 0.001, "ci_high": 0.02}
    assert (knn["comparison"]["label"], knn["comparison"]["p_value"]) == ("Winning", 0.01)
    (badge,) = presentation.badges(_results(basis, words))
    assert (badge.kind, badge.label) == ("winning", "Winning")
    assert badge.reason == f"CTR: relative lift +1.0 % [+0.1 %, +2.0 %]; {words}, p = 0.01 < 0.05"


def _tuned(*tests: tuple[str, float, str] | tuple[str, None]) -> ABResults:
    """Results whose comparisons' always-valid tests have these (arm, N*, source); (arm, None) has none yet."""
    return _ab_results(*(
        _comparison(test[0], sequential=test[1] and SequentialLift(0.01, 0.001, 0.02, 0.01, "sequential", 0.95,
                                                                   test[1], test[2]))
        for test in tests
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("results", "words"),
    [
        (_tuned(("knn", 24_000.0, "plan")), "tightest at 24,000 users (the plan's sample size)"),
        (_tuned(("knn", 30_000.0, "default"), ("als", None)), "tightest at 30,000 users (default: no plan)"),
        (_tuned(("knn", 24_000.0, "plan"), ("als", 24_000.0, "plan")),
         "tightest at 24,000 users (the plan's sample size)"),
        # Unequal weights: each treatment with the control has its own planned users.
        (_tuned(("knn", 2_889.0, "plan"), ("als", 3_852.0, "plan"), ("ease", 1_926.0, "plan")),
         "tightest at 2,889 users for knn, 3,852 for als and 1,926 for ease (the plan's sample size)"),
        (_tuned(("knn", 1_926.0, "plan"), ("als", 30_000.0, "default")),
         "tightest at 1,926 users for knn (the plan's sample size), 30,000 users for als (default: no plan)"),
        (_tuned(("knn", None)), None),
        (_ab_results(), None),
    ],
)  # fmt: skip
def test_the_page_says_where_the_always_valid_test_is_tightest(results: ABResults, words: str | None) -> None:
    assert presentation.sequential_tuning(results) == words
