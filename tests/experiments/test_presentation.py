"""What the results pages say in words (Django-free presentation helpers)."""

from __future__ import annotations

from typing import Any

import pytest

from analysis import presentation


def _results(basis: str, words: str) -> dict[str, Any]:
    effect = {"effect": 0.01, "ci_low": 0.001, "ci_high": 0.02}
    comparison = {"arm": "knn", "control": "control", "metrics": {"ctr": {"absolute": effect, "relative": effect}},
                  "verdict_p_value": 0.01, "verdict": "treatment wins", "verdict_basis": basis, "verdict_test": words,
                  "verdict_label": "Winning", "verdict_effect": 0.01, "verdict_ci_low": 0.001, "verdict_ci_high": 0.02,
                  "verdict_alpha": 0.05, "verdict_adjustment": "none", "verdict_treatments": 1,
                  "verdict_reason": ""}  # fmt: skip
    return {"primary_metric": "ctr", "alpha": 0.05, "arms": [{"name": "control"}, {"name": "knn"}],
            "comparisons": [comparison]}  # fmt: skip


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


def _tuned(*tests: tuple[str, float, str] | tuple[str, None]) -> dict[str, Any]:
    """Results whose comparisons' always-valid tests have these (arm, N*, source); (arm, None) has none yet."""
    return {"comparisons": [{"arm": test[0], "sequential": test[1] and {"n_star": test[1], "n_star_source": test[2]}}
                            for test in tests]}  # fmt: skip


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
        ({"comparisons": []}, None),
    ],
)  # fmt: skip
def test_the_page_says_where_the_always_valid_test_is_tightest(results: dict[str, Any], words: str | None) -> None:
    assert presentation.sequential_tuning(results) == words
