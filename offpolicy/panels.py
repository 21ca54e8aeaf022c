"""Panels the experiments app adds to the variant page (listed in settings.VARIANT_PAGE_PANELS).

recommenders.pages resolves each dotted path by name and calls it with (request, variant), so the
recommenders app shows them without importing experiments.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest
from django.template.loader import render_to_string

from core.models import BackgroundJob
from experiments.models import Experiment
from offpolicy.forms import EstimateForm
from offpolicy.models import OffPolicyEstimate
from recommenders.models import Variant

ESTIMATORS = ("IPS", "SNIPS", "DR")


def estimate_sources() -> list[tuple[str, str]]:
    """Experiments whose logs can carry propensities: exploring platform experiments and imported logs."""
    experiments = Experiment.objects.filter(
        Q(exploration_percent__gt=0) | Q(source=Experiment.Source.IMPORTED)
    ).order_by("key")
    return [(e.key, f"{e.key} · {e.get_source_display()}") for e in experiments]


def predicted_ctr_panel(request: HttpRequest, variant: Variant) -> str:
    """The "Predicted online CTR" card: the latest finished estimate, one in progress, and the queue form."""
    estimates = list(
        OffPolicyEstimate.objects.filter(variant=variant).select_related("experiment").defer("traceback")[:10]
    )
    latest = next((e for e in estimates if e.status == BackgroundJob.Status.SUCCEEDED), None)
    rows = [(name, latest.result[name]) for name in ESTIMATORS] if latest else []
    context = {
        "variant": variant,
        "latest": latest,
        "rows": rows,
        "active": next((e for e in estimates if e.status in ("queued", "running")), None),
        "failed": next((e for e in estimates if e.status == BackgroundJob.Status.FAILED), None),
        "can_estimate": request.user.has_perm("recommenders.add_evaluation"),
        "form": EstimateForm(sources=estimate_sources()),
    }
    return render_to_string("experiments/predicted_ctr_panel.html", context, request=request)
