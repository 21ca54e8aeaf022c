"""What the results pages say in words (Django-free presentation helpers)."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import presentation


def _results(basis: str) -> dict[str, Any]:
    effect = {"effect": 0.01, "ci_low": 0.0, "ci_high": 0.02}
    comparison = {"arm": "knn", "metrics": {"ctr": {"absolute": effect, "relative": effect}},
                  "verdict_p_value": 0.01, "verdict": "treatment wins", "verdict_basis": basis}  # fmt: skip
    return {"primary_metric": "ctr", "arms": [{"name": "control"}, {"name": "knn"}], "comparisons": [comparison]}


@pytest.mark.parametrize(
    ("basis", "words"),
    [
        ("sequential", "sequential test"),
        ("fixed_horizon", "fixed-horizon test"),
        ("bandit_cohorts", "batched test within cohorts of first exposure"),
    ],
)
def test_the_summary_table_names_the_verdicts_basis_in_words(basis: str, words: str) -> None:
    # The table used to print the code with its underscores cut out: "fixedhorizon", "banditcohorts".
    control, knn = presentation.summary_rows(_results(basis))
    assert control["comparison"] is None
    assert (knn["comparison"]["verdict_basis"], knn["comparison"]["basis"]) == (basis, words)
