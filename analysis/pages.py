"""The experiment list with its verdicts, the results dashboard, results by segment, the reviewer
report, CSV/JSON export and decisions (thin views over the services), and the bandit-weights panel
of the experiment page.

Every page reads the experiment's rollups through experiment_results, never raw events, so it
renders in milliseconds however much traffic the experiment had; templates, charts and the exports
show ``results_data`` of those results (the API's JSON), the badges and tables ``presentation``'s.
"""

from __future__ import annotations

import csv
import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from analysis import charts, presentation
from analysis.results_types import InterleavingResults, json_ready, results_data
from analysis.serializers import segment_breakdown_data
from analysis.services.arm_metrics import TRAFFIC
from analysis.services.results import experiment_badges, experiment_results
from analysis.services.segments import DIMENSIONS, segment_results
from experiments.forms import DecisionForm, EarlyReadForm
from experiments.models import Experiment
from experiments.pages import experiment_or_404
from experiments.services.bandit_schedule import is_bandit, weight_histories
from experiments.services.lifecycle import (
    ExperimentError,
    TransitionError,
    record_decision,
    record_early_read,
    snapshot,
)
from experiments.services.plans import experiment_plan
from recommenders.models import Evaluation

DECIDABLE = (Experiment.Status.STOPPED, Experiment.Status.CONCLUDED)
LIST_PAGE_SIZE = 25
TRAFFIC_CHOICES = [("all", "All traffic"), ("live", "Live"), ("simulated", "Simulated")]


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def experiment_list(request: HttpRequest) -> HttpResponse:
    """Every experiment, newest first, 25 a page: searchable (key, name, hypothesis), filtered by status and
    owner, with each treatment's verdict (the same badges as the results page) and the latest decision."""
    status, owner, query = request.GET.get("status", ""), request.GET.get("owner", ""), request.GET.get("q", "").strip()
    experiments = (
        Experiment.objects.select_related("owner").prefetch_related("arms", "decisions").order_by("-created_at")
    )
    if status:
        experiments = experiments.filter(status=status)
    if owner:
        experiments = experiments.filter(owner__username=owner)
    if query:
        experiments = experiments.filter(Q(key__icontains=query) | Q(name__icontains=query)
                                         | Q(hypothesis__icontains=query))  # fmt: skip
    page = Paginator(experiments, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"experiment": experiment, "badges": experiment_badges(experiment),
         "decision": next(iter(experiment.decisions.all()), None)}
        for experiment in page
    ]  # fmt: skip
    owners = (
        User.objects.filter(experiments__isnull=False)
        .distinct()
        .order_by("username")
        .values_list("username", flat=True)
    )
    filters = {"status": status, "owner": owner, "q": query}
    context = {"section": "experiments", "rows": rows, "page": page, **filters, "statuses": Experiment.Status.choices,
               "owners": list(owners), "filtered": any(filters.values()),
               "query_string": urlencode({k: v for k, v in filters.items() if v})}  # fmt: skip
    return render(request, "experiments/experiment_list.html", context)


def bandit_weights_panel(request: HttpRequest, experiment: Experiment) -> str | None:
    """The "Bandit weights" chart of a bandit experiment's page (listed in settings.EXPERIMENT_PAGE_PANELS)."""
    if not is_bandit(experiment):
        return None
    figure = charts.bandit_weights(weight_histories(experiment))
    return render_to_string("analysis/bandit_weights_panel.html", {"experiment": experiment, "bandit_figure": figure},
                            request=request)  # fmt: skip


def _traffic(request: HttpRequest) -> str:
    """The traffic to show: live, simulated or all (default); anything else is a 400."""
    traffic = request.GET.get("traffic", "all")
    if traffic not in TRAFFIC:
        raise BadRequest(f"traffic must be one of {', '.join(TRAFFIC)}, not {traffic!r}")
    return traffic


def _results_context(experiment: Experiment, traffic: str = "all") -> dict[str, Any]:
    """The results page's context: `results` is ``results_data`` (what the API answers and the templates and
    charts read), the badges and tables are ``presentation``'s reading of the same typed results."""
    results = experiment_results(experiment, traffic=traffic)
    data = results_data(results)
    plan = experiment_plan(experiment)
    if isinstance(results, InterleavingResults):
        has_traffic = results.interleaving.sessions > 0
    else:
        has_traffic = presentation.exposed_users(results) > 0
    return {
        "experiment": experiment,
        "results": data,
        "plan": plan,
        "badges": experiment_badges(experiment, results),
        "rows": presentation.summary_rows(results),
        "guardrails": presentation.guardrail_rows(results),
        "metric_rows": presentation.metric_rows(results),
        "sequential_tuning": presentation.sequential_tuning(results),
        "figures": [
            {"id": id_, "data_id": f"{id_}-data", "figure": figure} for id_, figure in charts.dashboard(data).items()
        ],
        "metric_label": presentation.METRIC_LABELS.get(results.primary_metric, results.primary_metric),
        "has_traffic": has_traffic,
        "traffic": traffic,
        "traffic_choices": TRAFFIC_CHOICES,
    }


def _early_read_form(request: HttpRequest, context: dict[str, Any]) -> EarlyReadForm | None:
    """The early-read form, for product managers on a fixed-horizon experiment still waiting for its plan."""
    waiting = any(comp.get("verdict_reason") and comp["verdict_basis"] == "fixed_horizon" and not comp.get("override")
                  for comp in context["results"].get("comparisons", []))  # fmt: skip
    if waiting and request.user.has_perm("experiments.run_experiment"):
        return EarlyReadForm()
    return None


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def results(request: HttpRequest, key: str) -> HttpResponse:
    context = {"section": "experiments", **_results_context(experiment_or_404(key), _traffic(request))}
    context["early_read_form"] = _early_read_form(request, context)
    return render(request, "experiments/results.html", context)


@require_POST
@login_required
@permission_required("experiments.run_experiment", raise_exception=True)
def early_read(request: HttpRequest, key: str) -> HttpResponse:
    """A product manager records why a fixed-horizon verdict is read before the plan's sample size."""
    experiment = experiment_or_404(key)
    form = EarlyReadForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Early read: " + " ".join(map(str, form.errors.get("reason", ["say why"]))))
    else:
        try:
            record_early_read(experiment, request.user, form.cleaned_data["reason"])  # type: ignore[arg-type]
        except (ExperimentError, TransitionError) as error:
            messages.error(request, f"Early read refused: {error}")
        else:
            messages.success(request, "Early read recorded: the verdict is shown, with your reason beside it.")
    return redirect("experiment_pages:results", key=key)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def segments(request: HttpRequest, key: str) -> HttpResponse:
    """Exploratory results by segment of one user attribute (?by=country, user_type or session_type)."""
    experiment = experiment_or_404(key)
    by = request.GET.get("by", "country")
    if by not in DIMENSIONS:
        raise BadRequest(f"by must be one of {', '.join(DIMENSIONS)}, not {by!r}")
    traffic = _traffic(request)
    breakdown = segment_breakdown_data(segment_results(experiment, by, traffic=traffic))
    sections = []
    for block in breakdown["metrics"]:
        label = presentation.METRIC_LABELS.get(block["metric"], block["metric"])
        sections.append({"metric": block, "label": label, "id": f"forest-{block['metric']}",
                         "data_id": f"forest-{block['metric']}-data",
                         "figure": charts.segment_forest(breakdown, block, label)})  # fmt: skip
    context = {"section": "experiments", "experiment": experiment, "breakdown": breakdown, "sections": sections,
               "by": by, "dimensions": list(DIMENSIONS.items()), "traffic": traffic,
               "traffic_choices": TRAFFIC_CHOICES}  # fmt: skip
    return render(request, "experiments/segments.html", context)


def _offline_metrics(experiment: Experiment) -> list[dict[str, Any]]:
    """Each arm's variant with its latest successful offline evaluation (or None)."""
    out = []
    for arm in experiment.arms.select_related("variant").order_by("position"):
        evaluation = (
            Evaluation.objects.filter(variant=arm.variant, status=Evaluation.Status.SUCCEEDED)
            .order_by("-finished_at")
            .first()
            if arm.variant
            else None
        )
        out.append({"arm": arm, "variant": arm.variant, "evaluation": evaluation})
    return out


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def report(request: HttpRequest, key: str) -> HttpResponse:
    """The print-friendly report: setup, traffic, results, charts, offline metrics, audit, decisions."""
    experiment = experiment_or_404(key)
    can_decide = request.user.has_perm("experiments.record_decision")
    context = {
        "section": "experiments",
        **_results_context(experiment, _traffic(request)),
        "offline": _offline_metrics(experiment),
        "changes": experiment.changes.select_related("user").order_by("at", "id"),
        "decisions": experiment.decisions.select_related("reviewer", "winning_arm"),
        "can_decide": can_decide and experiment.status in DECIDABLE,
        "decision_form": DecisionForm(arms=list(experiment.arms.values_list("name", flat=True))),
    }
    return render(request, "experiments/report.html", context)


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def export_csv(request: HttpRequest, key: str) -> HttpResponse:
    """One row per arm x metric (presentation.EXPORT_COLUMNS); for interleaving one per day and a total."""
    experiment = experiment_or_404(key)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{experiment.key}-results.csv"'
    columns, rows = presentation.export_table(experiment_results(experiment, traffic=_traffic(request)))
    writer = csv.DictWriter(response, fieldnames=columns)
    writer.writeheader()
    writer.writerows(json_ready(rows))  # the JSON's numbers: null (an empty cell) for a float that is not finite
    return response


@login_required
@permission_required("experiments.view_experiment", raise_exception=True)
def export_json(request: HttpRequest, key: str) -> HttpResponse:
    """The setup, the full results, the decisions and the audit log as one JSON document."""
    experiment = experiment_or_404(key)
    document = {
        "experiment": {"key": experiment.key, "owner": experiment.owner.username, **snapshot(experiment),
                       "started_at": experiment.started_at, "stopped_at": experiment.stopped_at},
        "results": results_data(experiment_results(experiment, traffic=_traffic(request))),
        "decisions": [{"outcome": d.outcome, "winning_arm": d.winning_arm.name if d.winning_arm else None,
                       "rationale": d.rationale, "reviewer": d.reviewer.username, "at": d.at}
                      for d in experiment.decisions.select_related("reviewer", "winning_arm")],
        "changes": [{"action": c.action, "user": c.user.username if c.user else None, "at": c.at,
                     "before": c.before, "after": c.after}
                    for c in experiment.changes.select_related("user").order_by("at", "id")],
    }  # fmt: skip
    response = HttpResponse(json.dumps(document, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{experiment.key}-report.json"'
    return response


@login_required
@require_POST
def decide(request: HttpRequest, key: str) -> HttpResponse:
    if not request.user.has_perm("experiments.record_decision"):
        return HttpResponse("Only reviewers record decisions.", status=403)
    experiment = experiment_or_404(key)
    form = DecisionForm(request.POST, arms=list(experiment.arms.values_list("name", flat=True)))
    if form.is_valid():
        data = form.cleaned_data
        try:
            record_decision(experiment, request.user, data["outcome"], data["rationale"],  # type: ignore[arg-type]
                            data["winning_arm"] or None)  # fmt: skip
        except ExperimentError as error:
            for field, reason in error.errors.items():
                form.add_error(field if field in form.fields else None, reason)
        except TransitionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Decision recorded in the audit log.")
            return redirect("experiment_pages:report", key=key)
    context = {"section": "experiments", **_results_context(experiment), "offline": _offline_metrics(experiment),
               "changes": experiment.changes.select_related("user").order_by("at", "id"),
               "decisions": experiment.decisions.select_related("reviewer", "winning_arm"),
               "can_decide": True, "decision_form": form}  # fmt: skip
    return render(request, "experiments/report.html", context, status=400)
