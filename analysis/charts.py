"""Plotly figures for the results dashboard, built from the serialised results (Django-free).

The input is ``analysis.results_types.results_data(results)``, the JSON the API answers and the
templates read, so a chart shows exactly the numbers beside it.

Each function returns a plain ``{"data": [...], "layout": {...}}`` dict in plotly.js's JSON
schema; the page embeds it with ``json_script`` and static/abplatform.js draws it with the
locally served plotly.js. Plain dicts (rather than plotly.graph_objects) keep the page fast:
building them costs microseconds and imports nothing.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from analysis.presentation import METRIC_LABELS

Figure = dict[str, Any]
PALETTE = ("#5b6577", "#2f6fdf", "#e07b39", "#2a9d8f", "#b5179e", "#8d99ae")
POSTERIOR_DRAWS = 40_000


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


DAY_MS = 86_400_000


def _day_axis(data: list[dict[str, Any]]) -> dict[str, Any]:
    """A date axis with one tick per day (every few days past ten), so a short experiment does
    not get hourly ticks that all read the same date."""
    days = {x for trace in data for x in trace.get("x", [])}
    step = max(1, math.ceil(len(days) / 10))
    return {"title": {"text": "day"}, "type": "date", "tickformat": "%b %d", "dtick": DAY_MS * step}


def _layout(title: str, y_title: str, *, y_format: str = "", **extra: Any) -> dict[str, Any]:
    # plotly.js (3.1) cannot take a d3 format that starts with a sign and ends in f, p or s ("+.2f"): its
    # adjustFormat prefixes "~", d3 refuses the result and the ticks show raw floats (-0.6000000000000001).
    # Signed percentages ("+.0%") are left alone and work.
    return {
        "title": {"text": title, "font": {"size": 14}},
        "yaxis": {"title": {"text": y_title}, "tickformat": y_format},
        "legend": {"orientation": "h", "y": -0.25},
        "hovermode": "x unified",
        **extra,
    }


def _cumulative(rows: list[dict[str, Any]], numerator: str, denominator: str) -> list[float | None]:
    top = np.cumsum([row[numerator] for row in rows], dtype=float)
    bottom = np.cumsum([row[denominator] for row in rows], dtype=float)
    return [float(t / b) if b else None for t, b in zip(top, bottom, strict=True)]


def cumulative_ctr(results: dict[str, Any]) -> Figure:
    """Cumulative CTR (all clicks / all impressions up to each day) per arm."""
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": arm, "x": [r["day"] for r in rows],
         "y": _cumulative(rows, "clicks", "impressions"), "line": {"color": _colour(i)}}
        for i, (arm, rows) in enumerate(results["daily"].items())
    ]  # fmt: skip
    return {"data": data, "layout": _layout("Cumulative CTR per arm", "CTR", y_format=".2%", xaxis=_day_axis(data))}


def cumulative_revenue_per_user(results: dict[str, Any]) -> Figure:
    """Cumulative revenue per exposed user per arm (revenue so far / users exposed so far)."""
    data = []
    for i, (arm, rows) in enumerate(results["daily"].items()):
        revenue = np.cumsum([row["revenue"] for row in rows], dtype=float)
        users = [row["users"] for row in rows]
        y = [float(r / u) if u else None for r, u in zip(revenue, users, strict=True)]
        data.append({"type": "scatter", "mode": "lines+markers", "name": arm, "x": [r["day"] for r in rows],
                     "y": y, "line": {"color": _colour(i)}})  # fmt: skip
    return {"data": data, "layout": _layout("Cumulative revenue per user", "revenue / user", xaxis=_day_axis(data))}


def exposures_per_day(results: dict[str, Any]) -> Figure:
    """Newly exposed users per arm per day (grouped bars): the traffic split as it happened."""
    data = [
        {"type": "bar", "name": arm, "x": [r["day"] for r in rows], "y": [r["new_users"] for r in rows],
         "marker": {"color": _colour(i)}}
        for i, (arm, rows) in enumerate(results["daily"].items())
    ]  # fmt: skip
    layout = _layout("New exposed users per day", "users", barmode="group", xaxis=_day_axis(data))
    return {"data": data, "layout": layout}


def lift_over_time(results: dict[str, Any]) -> Figure:
    """Relative lift of each treatment on the primary metric with its band, per look.

    ``results["lift_history"]`` lists, per treatment arm, the looks (day, effect, ci_low, ci_high) of the
    verdict's own test on cumulative data (the analysis method at alpha / treatments), so the band's last
    point is the verdict's interval. Under the sequential method it is a confidence sequence that may be
    read every day; under the fixed-horizon method a daily fixed-horizon interval, valid at the plan's size.
    """
    data: list[dict[str, Any]] = []
    comparisons = results.get("comparisons") or [{}]
    sequential = comparisons[0].get("verdict_basis", "sequential") == "sequential"
    level = 1 - results.get("alpha", 0.05) / max(len(comparisons), 1)
    for i, (arm, looks) in enumerate(results.get("lift_history", {}).items(), start=1):
        days = [look["day"] for look in looks]
        colour = _colour(i)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": days,
                "y": [look["ci_high"] for look in looks],
                "line": {"width": 0},
                "showlegend": False,
                "hoverinfo": "skip",
                "legendgroup": arm,
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": days,
                "y": [look["ci_low"] for look in looks],
                "fill": "tonexty",
                "fillcolor": _rgba(colour, 0.18),
                "line": {"width": 0},
                "name": f"{arm} {'confidence sequence' if sequential else 'confidence interval'}",
                "legendgroup": arm,
            }
        )
        data.append({"type": "scatter", "mode": "lines+markers", "x": days, "y": [look["effect"] for look in looks],
                     "name": f"{arm} lift", "line": {"color": colour}, "legendgroup": arm,
                     **_lone_interval(looks, "effect", colour)})  # fmt: skip
    test = "always-valid" if sequential else "fixed-horizon"
    layout = _layout(f"Lift vs control over time ({test} {level:.0%} band, the verdict's test)", "relative lift",
                     y_format="+.0%",
                     xaxis=_day_axis(data),
                     yaxis={"title": {"text": "relative lift"}, "tickformat": "+.0%", "range": _lift_range(results)},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                              "line": {"color": "#999", "dash": "dot"}}])  # fmt: skip
    return {"data": data, "layout": layout}


def _lone_interval(looks: list[dict[str, Any]], centre: str, colour: str) -> dict[str, Any]:
    """A single look's interval as an error bar ({} otherwise): a band between two lines needs two days
    to have any width, so on the first day the chart showed the point alone under a legend naming the band."""
    if len(looks) != 1 or None in (looks[0]["ci_low"], looks[0]["ci_high"], looks[0][centre]):
        return {}
    look = looks[0]
    return {"error_y": {"type": "data", "symmetric": False, "array": [look["ci_high"] - look[centre]],
                        "arrayminus": [look[centre] - look["ci_low"]], "color": colour, "width": 6}}  # fmt: skip


def _lift_range(results: dict[str, Any]) -> list[float] | None:
    """A y range that shows the later, narrower bands well: the first day's band (a handful of
    users) can be a hundred times wider and would flatten everything else. None: automatic."""
    looks = [look for history in results.get("lift_history", {}).values() for look in history[1:]]
    if not looks:
        return None
    low = min(look["ci_low"] for look in looks)
    high = max(look["ci_high"] for look in looks)
    pad = 0.1 * (high - low or 1.0)
    return [min(low, 0.0) - pad, max(high, 0.0) + pad]


ROLE_SYMBOLS = {"primary": "diamond", "secondary": "circle", "guardrail": "square"}


def forest(results: dict[str, Any], labels: dict[str, str] | None = None) -> Figure:
    """A forest plot: one horizontal interval bar per chosen metric and treatment arm (relative lift with
    the interval of the experiment's analysis method at alpha, unadjusted), the primary metric first.
    Guardrail rows show the tolerance as a dashed line when it is above 0."""
    labels = labels or {}
    data: list[dict[str, Any]] = []
    metrics = results.get("chosen_metrics") or [results["primary_metric"]]
    for i, comp in enumerate(results["comparisons"], start=1):
        rows = [(m, comp["metrics"][m]) for m in metrics if (comp["metrics"][m].get("relative") or {}).get("ci_low")
                is not None]  # fmt: skip
        if not rows:
            continue
        effects = [entry["relative"]["effect"] for _, entry in rows]
        data.append({
            "type": "scatter", "mode": "markers", "name": comp["arm"], "orientation": "h",
            "x": effects, "y": [f"{labels.get(m, m)} ({entry['role']})" for m, entry in rows],
            "marker": {"color": _colour(i), "size": 10,
                       "symbol": [ROLE_SYMBOLS.get(entry["role"], "circle") for _, entry in rows]},
            "error_x": {"type": "data", "symmetric": False,
                        "array": [entry["relative"]["ci_high"] - entry["relative"]["effect"] for _, entry in rows],
                        "arrayminus": [entry["relative"]["effect"] - entry["relative"]["ci_low"] for _, entry in rows],
                        "color": _colour(i), "thickness": 2, "width": 6},
            "customdata": [[entry["relative"]["p_value"]] for _, entry in rows],
            "hovertemplate": "%{y}: %{x:+.2%} (p = %{customdata[0]:.3g})<extra>" + comp["arm"] + "</extra>",
        })  # fmt: skip
    shapes = [
        {"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1, "line": {"color": "#999", "dash": "dot"}}
    ]
    tolerance = results.get("guardrail_tolerance") or 0.0
    if tolerance > 0:
        shapes.append({"type": "line", "x0": -tolerance, "x1": -tolerance, "yref": "paper", "y0": 0, "y1": 1,
                       "line": {"color": "#c0392b", "dash": "dash"}})  # fmt: skip
    test = "always-valid" if results.get("analysis_method", "sequential") == "sequential" else "fixed-horizon"
    level = 1 - results.get("alpha", 0.05)
    layout = _layout(f"Every chosen metric: relative lift with its {test} {level:.0%} interval", "metric")
    layout["xaxis"] = {"title": {"text": "relative lift vs control"}, "tickformat": "+.0%", "zeroline": False}
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    layout["shapes"] = shapes
    layout["hovermode"] = "closest"
    layout["height"] = 140 + 36 * max(len(metrics) * max(len(results["comparisons"]), 1), 1)
    return {"data": data, "layout": layout}


def posterior_lift(results: dict[str, Any], seed: int = 0) -> Figure:
    """Posterior density of each treatment's relative lift on the primary metric, T / C - 1.

    Beta-Binomial comparisons (rates of users): the density of the ratio is estimated from
    POSTERIOR_DRAWS paired draws of the two Beta posteriors (seeded, so the chart is stable). Normal
    comparisons (CTR, means): the normal density whose credible interval the comparison reports.
    """
    rng = np.random.default_rng(seed)
    data = []
    metric = results.get("primary_metric", "conversion_rate")
    for i, comp in enumerate(results["comparisons"], start=1):
        bayes = comp.get("bayesian")
        if not bayes:
            continue
        if bayes.get("alpha_control") is not None:
            control = rng.beta(bayes["alpha_control"], bayes["beta_control"], POSTERIOR_DRAWS)
            treatment = rng.beta(bayes["alpha_treatment"], bayes["beta_treatment"], POSTERIOR_DRAWS)
            lift = treatment / control - 1.0
            low, high = np.quantile(lift, [0.001, 0.999])
            density, edges = np.histogram(lift, bins=80, range=(low, high), density=True)
            centres = (edges[:-1] + edges[1:]) / 2
        else:
            z = _normal_z(bayes["credible_level"])
            mean = bayes["lift_median"]
            sd = (bayes["lift_ci_high"] - bayes["lift_ci_low"]) / (2 * z) or 1e-12
            centres = np.linspace(mean - 4 * sd, mean + 4 * sd, 81)
            density = np.exp(-0.5 * ((centres - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        name = f"{comp['arm']} (chance to win {bayes['chance_to_win']:.0%})"
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": centres.round(5).tolist(),
                     "y": density.round(5).tolist(), "fill": "tozeroy", "line": {"color": _colour(i)}})  # fmt: skip
    label = METRIC_LABELS.get(metric, metric)
    layout = _layout(f"Posterior of the relative lift in {label}", "density")
    layout["xaxis"] = {"title": {"text": "relative lift (treatment / control - 1)"}, "tickformat": "+.0%"}
    layout["hovermode"] = "closest"
    return {"data": data, "layout": layout}


def _normal_z(level: float) -> float:
    """The two-sided standard normal quantile of a credible level (0.95 -> 1.96)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def interleaving_preference(results: dict[str, Any]) -> Figure:
    """An interleaving experiment's preference Δ = (wins A - wins B) / sessions with the sign test's
    interval and, wider, the always-valid confidence sequence (the band that may be read every day),
    on the cumulative sessions at the end of each day (``results["interleaving"]["history"]``). Below
    zero team B (the non-control arm) is preferred."""
    block = results["interleaving"]
    looks = block["history"]
    days = [look["day"] for look in looks]
    colour = _colour(1)
    level = f"{block['confidence']:.0%}" if block.get("confidence") else "95%"
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": days, "y": [look["cs_high"] for look in looks],
         "line": {"width": 1, "dash": "dot", "color": colour}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": days, "y": [look["cs_low"] for look in looks], "fill": "tonexty",
         "fillcolor": _rgba(colour, 0.07), "line": {"width": 1, "dash": "dot", "color": colour},
         "name": f"always-valid {level} confidence sequence"},
        {"type": "scatter", "mode": "lines", "x": days, "y": [look["ci_high"] for look in looks], "line": {"width": 0},
         "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": days, "y": [look["ci_low"] for look in looks], "fill": "tonexty",
         "fillcolor": _rgba(colour, 0.18), "line": {"width": 0}, "name": f"{level} interval (sign test)"},
        {"type": "scatter", "mode": "lines+markers", "x": days, "y": [look["delta"] for look in looks],
         "name": f"Δ ({block['team_a']} preferred above 0, {block['team_b']} below)", "line": {"color": colour},
         "customdata": [[look["sessions"], look["p_value"], look["sequential_p_value"]] for look in looks],
         "hovertemplate": "Δ %{y:.3f}<br>%{customdata[0]} sessions, sign test p = %{customdata[1]:.3g}, "
                          "always-valid p = %{customdata[2]:.3g}<extra></extra>",
         **_lone_interval(looks, "delta", colour)},
    ]  # fmt: skip
    layout = _layout("Interleaving preference Δ over time (cumulative sessions)", "Δ = (wins A - wins B) / sessions",
                     y_format=".2f", xaxis=_day_axis(data),
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                              "line": {"color": "#999", "dash": "dot"}}])  # fmt: skip
    return {"data": data, "layout": layout}


def bandit_weights(histories: list[dict[str, Any]]) -> Figure:
    """A bandit's traffic weights per period, one line per arm and history (live solid, simulation
    runs dotted); hover shows the probability that the arm is best and whether burn-in held them."""
    data = []
    for h, history in enumerate(histories):
        updates = history["updates"]
        arms = list(updates[0]["weights"]) if updates else []
        for i, arm in enumerate(arms):
            data.append({
                "type": "scatter", "mode": "lines+markers", "line": {"shape": "hv", "color": _colour(i),
                                                                     "dash": "solid" if h == 0 else "dot"},
                "name": arm if len(histories) == 1 else f"{arm} ({history['source']})",
                "x": [u["period"] for u in updates], "y": [u["weights"][arm] for u in updates],
                "customdata": [[u["probability_best"][arm], "burn-in" if u["burn_in"] else "Thompson"]
                               for u in updates],
                "hovertemplate": "period %{x}: weight %{y:.1%} (P(best) %{customdata[0]:.1%}, %{customdata[1]})",
            })  # fmt: skip
    layout = _layout("Bandit traffic weights per period", "share of new users", y_format=".0%")
    layout["xaxis"] = {"title": {"text": "period (weight update)"}, "dtick": 1}
    layout["yaxis"]["range"] = [0, 1]
    return {"data": data, "layout": layout}


def segment_forest(breakdown: dict[str, Any], metric: dict[str, Any], metric_label: str) -> Figure:
    """A forest plot of one metric of a results-by-segment breakdown (the serialised
    ``analysis.services.segments.SegmentBreakdown`` and one of its ``metrics``): one horizontal interval
    bar per segment (and treatment arm, when there are several), the relative lift as its point, top to
    bottom in the breakdown's order, a dotted line at no lift. Segments the engine could not test have no bar."""
    users = {segment["name"]: segment["users"] for segment in breakdown["segments"]}
    treatments = list(dict.fromkeys(row["arm"] for row in metric["rows"] if not row["is_control"]))
    position = {name: i for i, name in enumerate(users)}
    labels: list[tuple[int, str]] = []  # (the segment's position, the bar's label)
    data = []
    for i, arm in enumerate(treatments, start=1):
        rows = [row for row in metric["rows"] if row["arm"] == arm and row["effect"] is not None]
        y = [f"{row['segment']} ({users[row['segment']]:,} users)" + (f" · {arm}" if len(treatments) > 1 else "")
             for row in rows]  # fmt: skip
        labels += [(position[row["segment"]], label) for row, label in zip(rows, y, strict=True)]
        data.append({
            "type": "scatter", "mode": "markers", "name": arm, "x": [row["effect"] for row in rows], "y": y,
            "marker": {"color": _colour(i), "size": 9},
            "error_x": {"type": "data", "symmetric": False, "color": _colour(i), "thickness": 2, "width": 5,
                        "array": [row["ci_high"] - row["effect"] for row in rows],
                        "arrayminus": [row["effect"] - row["ci_low"] for row in rows]},
            "customdata": [[row["ci_low"], row["ci_high"], row["p_value"], row["p_value_adjusted"]] for row in rows],
            "hovertemplate": "lift %{x:+.1%} [%{customdata[0]:+.1%}, %{customdata[1]:+.1%}]<br>"
                             "p = %{customdata[2]:.3g}, Holm p = %{customdata[3]:.3g}",
        })  # fmt: skip
    order = [label for _, label in sorted(labels, key=lambda pair: pair[0])]
    level = f"{breakdown['confidence']:.0%}"
    layout = _layout(f"Relative lift in {metric_label} by {breakdown['dimension_label'].lower()} ({level} intervals)",
                     "", height=max(320, 90 + 34 * len(labels)), hovermode="closest",
                     xaxis={"title": {"text": "relative lift (treatment / control - 1)"}, "tickformat": "+.0%",
                            "zeroline": False},
                     yaxis={"type": "category", "categoryorder": "array", "categoryarray": order,
                            "autorange": "reversed", "automargin": True},
                     shapes=[{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": 0, "x1": 0,
                              "line": {"color": "#999", "dash": "dot"}}])  # fmt: skip
    return {"data": data, "layout": layout}


def dashboard(results: dict[str, Any]) -> dict[str, Figure]:
    """Every chart of the results dashboard, keyed by the element id that shows it (an interleaving
    experiment has one: its preference over time; the A/B charts would be empty or misleading)."""
    if results.get("interleaving"):
        return {"chart-interleaving": interleaving_preference(results)}
    charts = _ab_dashboard(results)
    if results.get("bandit"):
        # The lift over time and the posterior pool each arm's users, which is biased when the weights
        # change: a bandit's comparison is the cohort table instead.
        charts.pop("chart-lift")
        charts.pop("chart-posterior", None)
        return {"chart-bandit-weights": bandit_weights(results["bandit"]["histories"]), **charts}
    return charts


def _ab_dashboard(results: dict[str, Any]) -> dict[str, Figure]:
    return {
        "chart-cumulative-ctr": cumulative_ctr(results),
        "chart-lift": lift_over_time(results),
        "chart-forest": forest(results, METRIC_LABELS),
        **(
            {"chart-posterior": posterior_lift(results)}
            if any(c.get("bayesian") for c in results["comparisons"])
            else {}
        ),
        "chart-exposures": exposures_per_day(results),
        "chart-revenue": cumulative_revenue_per_user(results),
    }
