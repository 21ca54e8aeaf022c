"""The dashboard's figures are built from the results dict (Django-free)."""

from __future__ import annotations

import re

import pytest

from analysis import charts

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


def _formats(figure: charts.Figure) -> list[str]:
    """Every d3 number format of a figure: axis tickformats and the %{...:FORMAT} parts of hover templates."""
    layout = figure["layout"]
    formats = [axis["tickformat"] for name, axis in layout.items() if name.startswith(("xaxis", "yaxis"))
               if isinstance(axis, dict) and axis.get("tickformat") and axis.get("type") != "date"]  # fmt: skip
    for trace in figure["data"]:
        formats += re.findall(r"%\{[^:}]+:([^}]+)\}", trace.get("hovertemplate", ""))
    return formats


def _plotly_mangles(spec: str) -> bool:
    """plotly.js 3.1's Lib.adjustFormat: a format not starting with ~ , . 0 or $ that contains f, p or s gets a
    "~" prefix (unless it is like "1.2f" or holds ".2%"); a signed "+.2f" becomes "~+.2f", which d3 refuses,
    and plotly then prints the raw number."""
    kept = re.match(r"^\d[.]\df", spec) or re.search(r"[.]\d%", spec) or spec == "0.f"
    return not kept and not re.match(r"^[~,.0$]", spec) and re.search(r"[&fps]", spec) is not None


def test_the_interleaving_chart_uses_number_formats_plotly_js_can_read() -> None:
    look = {
        "day": "2026-11-28",
        "delta": -0.5,
        "ci_low": -0.62,
        "ci_high": -0.259,
        "sessions": 40,
        "p_value": 1.8e-4,
        "cs_low": -0.7,
        "cs_high": -0.1,
        "sequential_p_value": 0.03,
    }
    figure = charts.interleaving_preference(
        {"interleaving": {"history": [look], "confidence": 0.95, "team_a": "control", "team_b": "knn"}}
    )
    assert _formats(figure) == [".2f", ".3f", ".3g", ".3g"]  # ticks; hover: Δ, sign test p, always-valid p
    assert not [spec for spec in _formats(figure) if _plotly_mangles(spec)]
    assert _plotly_mangles("+.2f")  # what it used before: ticks read -0.6000000000000001
    assert not _plotly_mangles("+.0%")  # the lift charts' signed percentages are fine


def test_a_single_days_interval_is_drawn_as_an_error_bar_and_a_band_from_the_second_day() -> None:
    first = {
        "day": "2026-11-28",
        "delta": -0.5,
        "ci_low": -0.625,
        "ci_high": -0.25,
        "sessions": 40,
        "p_value": 0.01,
        "cs_low": -0.7,
        "cs_high": -0.1,
        "sequential_p_value": 0.2,
    }
    second = {**first, "day": "2026-11-29", "delta": -0.25}

    def preference(looks: list[dict[str, object]]) -> charts.Figure:
        block = {"history": looks, "confidence": 0.95, "team_a": "control", "team_b": "knn"}
        return charts.interleaving_preference({"interleaving": block})

    *_, one_day = preference([first])["data"]
    *_, two_days = preference([first, second])["data"]
    assert one_day["error_y"] == {"type": "data", "symmetric": False, "array": [0.25], "arrayminus": [0.125],
                                  "color": one_day["line"]["color"], "width": 6}  # fmt: skip
    assert "error_y" not in two_days
    lift = {"treatment": HISTORY["treatment"][1:]}  # one look: effect 0.2 in [0.05, 0.35]
    *_, line = charts.lift_over_time({"lift_history": lift})["data"]
    assert (line["error_y"]["array"], line["error_y"]["arrayminus"]) == (pytest.approx([0.15]), pytest.approx([0.15]))
    *_, line = charts.lift_over_time({"lift_history": HISTORY})["data"]
    assert "error_y" not in line
