"""Plotly figures (plain dicts for `json_script`) of the variant pages; static/abplatform.js draws them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recommenders.models import Evaluation, Variant
from recommenders.services.overview import ACCURACY_METRICS

Figure = dict[str, Any]
METRIC_LABELS = {
    "precision": "Precision",
    "recall": "Recall",
    "ndcg": "NDCG",
    "map": "MAP",
    "mrr": "MRR",
    "hit_rate": "Hit rate",
}
# A horizontal legend below the x-axis title, with room for it (Plotly would overlap them).
LEGEND_BELOW = {"orientation": "h", "y": -0.3}
MARGIN_FOR_LEGEND = {"t": 40, "r": 20, "b": 110, "l": 60}
CURVE_TITLES = {"precision": "Precision@k", "recall": "Recall@k", "ndcg": "NDCG@k"}


def loss_figure(history: Mapping[str, Sequence[float]]) -> Figure | None:
    """Loss per epoch (and validation loss when recorded); None when training recorded no history."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": key,
            "x": list(range(1, len(values) + 1)),
            "y": list(values),
        }
        for key, values in history.items()
        if values and "loss" in key
    ]
    if not traces:
        return None
    return {
        "data": traces,
        "layout": {
            "title": {"text": "Loss per epoch"},
            "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
            "yaxis": {"title": {"text": "loss"}},
        },
    }


def compare_bars(rows: Sequence[tuple[Variant, Evaluation]]) -> Figure:
    """Grouped bars: one group per accuracy metric, one bar per variant (its latest evaluation, at its k)."""
    data = [
        {
            "type": "bar",
            "name": f"{variant.label} (k={evaluation.k})",
            "x": [METRIC_LABELS[m] for m in ACCURACY_METRICS],
            "y": [evaluation.metrics.get(m) for m in ACCURACY_METRICS],
        }
        for variant, evaluation in rows
    ]
    return {
        "data": data,
        "layout": {
            "barmode": "group",
            "title": {"text": "Offline metrics (latest evaluation)"},
            "yaxis": {"rangemode": "tozero"},
            "legend": LEGEND_BELOW,
            "margin": MARGIN_FOR_LEGEND,
        },
    }


def curve_figures(rows: Sequence[tuple[Variant, Evaluation]]) -> dict[str, Figure]:
    """{metric: figure} of metric@k for k = 1…50, one line per variant that has stored curves."""
    figures = {}
    for metric, title in CURVE_TITLES.items():
        data = []
        for variant, evaluation in rows:
            values = (evaluation.metrics.get("at_k") or {}).get(metric)
            if values:
                data.append(
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": variant.label,
                        "x": list(range(1, len(values) + 1)),
                        "y": values,
                    }
                )
        figures[metric] = {
            "data": data,
            "layout": {
                "title": {"text": title},
                "xaxis": {"title": {"text": "k"}},
                "yaxis": {"rangemode": "tozero"},
                "legend": LEGEND_BELOW,
                "margin": MARGIN_FOR_LEGEND,
            },
        }
    return figures
