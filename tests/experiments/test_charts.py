"""The dashboard's figures are built from the results dict (Django-free)."""

from __future__ import annotations

import pytest

from experiments import charts

HISTORY = {"treatment": [
    {"day": "2026-11-24", "effect": 0.5, "ci_low": -4.0, "ci_high": 6.0, "p_value": 0.9},
    {"day": "2026-11-25", "effect": 0.2, "ci_low": 0.05, "ci_high": 0.35, "p_value": 0.01},
]}  # fmt: skip


def test_the_lift_chart_draws_a_band_and_a_line_per_treatment_and_frames_the_later_days() -> None:
    figure = charts.lift_over_time({"lift_history": HISTORY})
    upper, lower, line = figure["data"]
    assert upper["y"] == [6.0, 0.35]
    assert lower["y"] == [-4.0, 0.05]
    assert lower["fill"] == "tonexty"
    assert line["y"] == [0.5, 0.2]
    assert figure["layout"]["yaxis"]["range"] == pytest.approx(
        [-0.03, 0.38]
    )  # [min(0.05, 0), 0.35] padded by 10 % of 0.30


def test_the_posterior_of_the_lift_is_centred_on_the_ratio_of_the_posterior_means() -> None:
    bayes = {"alpha_control": 101, "beta_control": 901, "alpha_treatment": 121, "beta_treatment": 881,
             "chance_to_win": 0.91}  # fmt: skip
    figure = charts.posterior_lift({"comparisons": [{"arm": "t", "bayesian": bayes}]})
    (trace,) = figure["data"]
    peak = trace["x"][trace["y"].index(max(trace["y"]))]
    assert peak == pytest.approx(121 / 101 - 1, abs=0.05)
    assert trace["name"] == "t (chance to win 91%)"
