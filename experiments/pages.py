"""The product managers' and reviewers' pages: experiments, their results and reports (thin views)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from experiments.models import Experiment


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def experiment_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    experiments = Experiment.objects.select_related("owner").prefetch_related("arms").order_by("-created_at")
    if status:
        experiments = experiments.filter(status=status)
    context = {"section": "experiments", "experiments": experiments, "status": status,
               "statuses": Experiment.Status.choices}  # fmt: skip
    return render(request, "experiments/experiment_list.html", context)
