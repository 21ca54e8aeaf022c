"""The off-policy estimate action of the variant page's "Predicted online CTR" card (offpolicy.panels)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from experiments.models import Experiment
from offpolicy.forms import EstimateForm
from offpolicy.panels import estimate_sources
from offpolicy.services.estimates import OffPolicyRefused
from offpolicy.tasks import queue_estimate
from recommenders.models import Variant


@login_required
@permission_required("recommenders.add_evaluation", raise_exception=True)
@require_POST
def variant_estimate(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """Queue an off-policy estimate of the variant's CTR from the chosen experiment's log (the variant
    page's "Predicted online CTR" card posts here and is shown again, with the progress bar)."""
    variant = get_object_or_404(Variant, name=name, version=version)
    form = EstimateForm(request.POST, sources=estimate_sources())
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(
                request, f"{form.fields[field].label if field in form.fields else field}: {' '.join(map(str, errors))}"
            )
        return redirect("variants:detail", name=name, version=version)
    experiment = get_object_or_404(Experiment, key=form.cleaned_data["experiment"])
    try:
        estimate = queue_estimate(variant, experiment, {"seed": form.cleaned_data["seed"]}, requested_by=request.user)  # type: ignore[arg-type]
    except OffPolicyRefused as error:
        messages.error(request, f"No estimate: {error}")
    else:
        messages.success(request, f"Estimate {estimate.pk} of {variant.label} from {experiment.key} queued.")
    return redirect("variants:detail", name=name, version=version)
