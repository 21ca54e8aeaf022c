"""The product managers' pages: create wizard with power calculator, experiment page with lifecycle
actions, traffic ramp and audit trail (other apps add panels to it: settings.EXPERIMENT_PAGE_PANELS). Thin views: input
is parsed by experiments.forms and every rule lives in the services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET, require_POST

from engine.planning import plan_experiment, plan_interleaving
from engine.stats import StatisticError
from experiments.forms import (
    MAX_ARMS,
    ArmForm,
    ExperimentForm,
    PlanForm,
    RampForm,
    trained_variant_choices,
)
from experiments.models import Experiment
from experiments.services.lifecycle import (
    TRANSITIONS,
    ArmSpec,
    ExperimentError,
    TransitionError,
    create_experiment,
    transition,
    update_experiment,
)
from experiments.services.plans import experiment_plan

View = Callable[..., HttpResponse]

# The buttons each status offers, in order, with the question asked before acting.
ACTIONS: dict[str, list[tuple[str, str]]] = {
    "draft": [("start", "Start the experiment? Arms and weights are locked once it runs."),
              ("archive", "Archive this draft?")],
    "running": [("pause", "Pause the experiment? Users keep their arms."),
                ("stop", "Stop the experiment? Results become final (fixed-horizon).")],
    "paused": [("resume", "Resume the experiment?"), ("stop", "Stop the experiment?")],
    "stopped": [("conclude", "Conclude the experiment?")],
    "concluded": [("archive", "Archive the experiment?")],
    "archived": [],
}  # fmt: skip


def experiment_or_404(key: str) -> Experiment:
    return get_object_or_404(Experiment.objects.select_related("owner"), key=key)


def product_managers_post(what: str) -> Callable[[View], View]:
    """A POST-only view for users who may run experiments; others get a 403 that says `what` they may not do."""

    def decorate(view: View) -> View:
        @login_required
        @require_POST
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm("experiments.run_experiment"):
                return HttpResponse(f"Only product managers {what}.", status=403)
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def _arm_forms(request: HttpRequest, choices: list[tuple[str, str]]) -> list[ArmForm]:
    data = request.POST if request.method == "POST" else None
    initial = [{"name": "control"}, {"name": "treatment"}]
    return [
        ArmForm(data, prefix=f"arm-{i}", variant_choices=choices, initial=initial[i] if i < len(initial) else None)
        for i in range(MAX_ARMS)
    ]


@login_required
@permission_required("experiments.add_experiment", raise_exception=True)
def experiment_create(request: HttpRequest) -> HttpResponse:
    """The create wizard: setup, arms, metrics and the plan on one page; errors shown per field."""
    choices = trained_variant_choices()
    form = ExperimentForm(request.POST or None)
    arm_forms = _arm_forms(request, choices)
    control = request.POST.get("control", "0")
    arm_errors: list[str] = []
    if request.method == "POST" and form.is_valid() & all(arm.is_valid() for arm in arm_forms):
        filled = [(i, arm) for i, arm in enumerate(arm_forms) if arm.filled]
        arms = [
            ArmSpec(name=arm.cleaned_data["name"], variant=arm.cleaned_data["variant"],
                    weight=arm.cleaned_data["weight"] if arm.cleaned_data["weight"] is not None else 1.0,
                    is_control=str(i) == control)
            for i, arm in filled
        ]  # fmt: skip
        try:
            experiment = create_experiment(form.spec(arms), request.user)  # type: ignore[arg-type]
        except ExperimentError as error:
            for field, reason in error.errors.items():
                if field.startswith("arms["):
                    position = int(field[5 : field.index("]")])
                    _, arm_form = filled[position]
                    arm_form.add_error(field.split(".", 1)[1], reason)
                elif field == "arms":
                    arm_errors.append(reason)
                else:
                    form.add_service_errors({field: reason})
        else:
            messages.success(request, f"Experiment {experiment.key} created as a draft. Start it when ready.")
            return redirect("experiment_pages:detail", key=experiment.key)
    context = {"section": "experiments", "form": form, "arm_forms": arm_forms, "control": control,
               "arm_errors": arm_errors, "has_variants": len(choices) > 1}  # fmt: skip
    return render(request, "experiments/experiment_form.html", context)


@login_required
@require_GET
def plan(request: HttpRequest) -> JsonResponse:
    """The power calculator: required users per arm, in total and days; 400 with field reasons."""
    form = PlanForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"errors": {k: [str(e) for e in v] for k, v in form.errors.items()}}, status=400)
    data = form.cleaned_data
    arms = data["arms"] or 2
    if data["design"] == Experiment.Design.INTERLEAVING:
        return _interleaving_plan_answer(data)
    try:
        result = plan_experiment(
            data["baseline_rate"], data["minimum_detectable_effect"], weights=[1.0] * arms,
            daily_users=data["expected_daily_users"], traffic_percent=data["traffic_percent"] or 100.0,
            alpha=data["alpha"] or 0.05, power=data["power"] or 0.8,
        )  # fmt: skip
    except StatisticError as error:
        return JsonResponse({"errors": {"__all__": [str(error)]}}, status=400)
    return JsonResponse({"n_per_arm": result.n_per_arm, "total_users": result.total_users, "days": result.days,
                         "treatment_rate": result.treatment_rate, "arms": result.arms})  # fmt: skip


def _interleaving_plan_answer(data: dict[str, Any]) -> JsonResponse:
    """The power calculator's answer for an interleaving experiment: sessions, not users per arm."""
    try:
        result = plan_interleaving(
            data["baseline_rate"], data["minimum_detectable_effect"], daily_users=data["expected_daily_users"],
            traffic_percent=data["traffic_percent"] or 100.0, alpha=data["alpha"] or 0.05, power=data["power"] or 0.8,
        )  # fmt: skip
    except StatisticError as error:
        return JsonResponse({"errors": {"__all__": [str(error)]}}, status=400)
    return JsonResponse({"design": "interleaving", "sessions": result.sessions, "decided": result.decided,
                         "share_b": result.share_b, "days": result.days})  # fmt: skip


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def experiment_detail(request: HttpRequest, key: str) -> HttpResponse:
    experiment = experiment_or_404(key)
    can_run = request.user.has_perm("experiments.run_experiment")
    context = {
        "section": "experiments",
        "experiment": experiment,
        "arms": experiment.arms.select_related("variant", "training_run").order_by("position"),
        "actions": ACTIONS.get(experiment.status, []) if can_run else [],
        "can_run": can_run,
        "can_ramp": can_run and experiment.status in ("running", "paused"),
        "ramp_form": RampForm(initial={"traffic_percent": experiment.traffic_percent}),
        "changes": experiment.changes.select_related("user").order_by("-at", "-id"),
        "plan": experiment_plan(experiment),
        "panels": _panels(request, experiment),
    }
    return render(request, "experiments/experiment_detail.html", context)


def _panels(request: HttpRequest, experiment: Experiment) -> list[str]:
    """The HTML of the panels other apps add to the experiment page, in settings order (None: not shown)."""
    rendered = (import_string(path)(request, experiment) for path in settings.EXPERIMENT_PAGE_PANELS)
    return [html for html in rendered if html]


@product_managers_post("start, pause, stop and conclude experiments")
def experiment_action(request: HttpRequest, key: str, action: str) -> HttpResponse:
    if action not in TRANSITIONS:
        raise Http404(f"unknown action {action!r}")
    experiment = experiment_or_404(key)
    try:
        transition(experiment, action, request.user)  # type: ignore[arg-type]
    except TransitionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{experiment.key}: {action} done.")
    return redirect("experiment_pages:detail", key=key)


@product_managers_post("ramp experiments")
def experiment_ramp(request: HttpRequest, key: str) -> HttpResponse:
    experiment = experiment_or_404(key)
    form = RampForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Traffic share: " + " ".join(map(str, form.errors["traffic_percent"])))
        return redirect("experiment_pages:detail", key=key)
    try:
        update_experiment(experiment, {"traffic_percent": form.cleaned_data["traffic_percent"]}, request.user)  # type: ignore[arg-type]
    except (ExperimentError, TransitionError) as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Traffic share set to {form.cleaned_data['traffic_percent']:g} %.")
    return redirect("experiment_pages:detail", key=key)
