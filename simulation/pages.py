"""Simulated traffic on the experiment page: the panel (progress, form, runs) and its actions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string

from engine.simulation.config import ARRIVALS
from experiments.models import Experiment
from experiments.pages import experiment_or_404, product_managers_post
from simulation.forms import SimulationForm
from simulation.models import SimulationRun
from simulation.services.population import population_advice
from simulation.services.runs import SimulationRefused, cancel_simulation, delete_simulation
from simulation.tasks import queue_simulation


def simulation_panel(request: HttpRequest, experiment: Experiment) -> str:
    """The "Simulated traffic" section of the experiment page (listed in settings.EXPERIMENT_PAGE_PANELS):
    the active run's progress, the form with the population advice, the last ten runs."""
    can_run = request.user.has_perm("experiments.run_experiment")
    simulations = list(experiment.simulations.order_by("-queued_at")[:10])
    context = {
        "experiment": experiment,
        "can_run": can_run,
        "simulations": simulations,
        "active_simulation": next((s for s in simulations if s.status in ("queued", "running")), None),
        "simulation_form": SimulationForm(),
        "finished_statuses": sorted(SimulationRun.FINISHED),
        "can_simulate": can_run and experiment.status == "running" and experiment.source == "platform",
        "population": population_advice(experiment) if can_run and experiment.status == "running" else None,
    }
    return render_to_string("simulation/simulation_panel.html", context, request=request)


@product_managers_post("simulate traffic")
def experiment_simulate(request: HttpRequest, key: str) -> HttpResponse:
    experiment = experiment_or_404(key)
    form = SimulationForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Simulation: " + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items())
        )
        return redirect("experiment_pages:detail", key=key)
    data = form.cleaned_data
    settings = {"daily_users": float(data["users"]), "days": data["days"], "seed": data["seed"]}
    if data["arrivals"] not in ("", ARRIVALS[0]):  # the default is left out, as the API leaves it out
        settings["arrivals"] = data["arrivals"]
    if data["effect"]:
        settings["injected_effect"] = data["effect"]
    if data["population_scale"] not in (None, 1):  # the default is left out, as the API leaves it out
        settings["population_scale"] = data["population_scale"]
    try:
        run = queue_simulation(experiment, settings, request.user)  # type: ignore[arg-type]
    except SimulationRefused as error:
        messages.error(request, f"Simulation refused: {error}")
    else:
        messages.success(request, f"Simulation {run.pk} queued: a worker simulates {data['days']} days of traffic.")
    return redirect("experiment_pages:detail", key=key)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def simulation_status(request: HttpRequest, key: str, pk: int) -> JsonResponse:
    run = get_object_or_404(SimulationRun, pk=pk, experiment__key=key)
    return JsonResponse({"status": run.status, "progress": run.progress, "message": run.message,
                         "sessions": run.sessions, "impressions": run.impressions})  # fmt: skip


@product_managers_post("cancel simulations")
def simulation_cancel(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    """Cancel a queued or running simulation (it stops before its next simulated day)."""
    run = get_object_or_404(SimulationRun, pk=pk, experiment__key=key)
    try:
        cancel_simulation(run)
    except SimulationRefused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Simulation {pk} is being cancelled; the days it stored stay until you delete it.")
    return redirect("experiment_pages:detail", key=key)


@product_managers_post("delete simulations")
def simulation_delete(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    """Delete a finished simulation's traffic (live traffic is untouched) and rebuild the rollups."""
    run = get_object_or_404(SimulationRun, pk=pk, experiment__key=key)
    if run.status not in SimulationRun.FINISHED:
        messages.error(request, f"Simulation {pk} is {run.status}: cancel it and wait until it stops first.")
    else:
        delete_simulation(run)
        messages.success(request, f"Simulation {pk} and all its traffic were deleted.")
    return redirect("experiment_pages:detail", key=key)
