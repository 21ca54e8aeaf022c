"""Platform-wide pages: the home page shows what is going on and where each role starts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from analysis import presentation
from analysis.results_types import ABResults
from analysis.services.results import experiment_badges, experiment_results
from experiments.models import Experiment
from recommenders.models import Dataset, TrainingRun

HOME_EXPERIMENTS = 6


def _running_with_verdicts() -> list[dict[str, Any]]:
    running = Experiment.objects.filter(status__in=(Experiment.Status.RUNNING, Experiment.Status.PAUSED))
    out = []
    for experiment in running.select_related("owner").order_by("-started_at")[:HOME_EXPERIMENTS]:
        results = experiment_results(experiment)
        out.append({"experiment": experiment, "users": presentation.exposed_users(results),
                    "badges": experiment_badges(experiment, results),
                    "srm": results.srm.mismatch if isinstance(results, ABResults) else False})  # fmt: skip
    return out


@login_required
def home(request: HttpRequest) -> HttpResponse:
    awaiting = Experiment.objects.filter(status=Experiment.Status.STOPPED, decisions__isnull=True)
    context = {
        "section": "home",
        "running": _running_with_verdicts(),
        "runs": TrainingRun.objects.select_related("variant").order_by("-queued_at")[:8],
        "awaiting_decision": awaiting.order_by("-stopped_at")[:10],
        "datasets": Dataset.objects.all(),
        "is_pm": request.user.has_perm("experiments.add_experiment"),
        "is_ds": request.user.has_perm("recommenders.add_variant"),
        "is_reviewer": request.user.has_perm("experiments.record_decision"),
    }
    return render(request, "home.html", context)
