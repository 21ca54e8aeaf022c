"""The data scientists' pages: variants, their training and offline metrics (thin views over services)."""

from __future__ import annotations

import inspect
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.module_loading import import_string
from django.views.decorators.http import require_POST

from core.models import BackgroundJob
from recommenders import charts
from recommenders.algorithms import registry
from recommenders.forms import HYBRID, ChooseAlgorithmForm, EvaluateForm, RegisterVariantForm
from recommenders.models import Dataset, TrainingRun, Variant
from recommenders.services.overview import ACCURACY_METRICS, headline, hybrid_candidates, latest_evaluations
from recommenders.services.training import TrainingError
from recommenders.services.variants import VariantError, register_variant
from recommenders.tasks import queue_evaluation, queue_training

ACTIVE = (BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING)
MAX_COMPARED = 12  # more lines than this make the charts unreadable


@login_required
@permission_required("recommenders.view_variant", raise_exception=True)
def variant_list(request: HttpRequest) -> HttpResponse:
    """Variants, newest first, filtered by algorithm, data set, status and a name search."""
    variants = Variant.objects.select_related("dataset", "author").order_by("name", "-version")
    filters = {key: request.GET.get(key, "").strip() for key in ("algorithm", "dataset", "status", "q")}
    if filters["algorithm"]:
        variants = variants.filter(algorithm=filters["algorithm"])
    if filters["dataset"]:
        variants = variants.filter(dataset__name=filters["dataset"])
    if filters["status"]:
        variants = variants.filter(status=filters["status"])
    if filters["q"]:
        variants = variants.filter(name__icontains=filters["q"])
    listed = list(variants)
    evaluations = latest_evaluations(v.pk for v in listed)
    context = {
        "section": "variants",
        "rows": [(v, headline(evaluations.get(v.pk))) for v in listed],
        "filters": filters,
        "filtered": any(filters.values()),
        "algorithms": Variant.objects.order_by("algorithm").values_list("algorithm", flat=True).distinct(),
        "datasets": Dataset.objects.order_by("name").values_list("name", flat=True),
        "statuses": Variant.Status.choices,
    }
    return render(request, "recommenders/variant_list.html", context)


@login_required
@permission_required("recommenders.add_variant", raise_exception=True)
def variant_register(request: HttpRequest) -> HttpResponse:
    """Step one (GET ?algorithm=&dataset=) picks what the form needs; step two posts the parameters."""
    chooser = ChooseAlgorithmForm(request.GET if "algorithm" in request.GET else None)
    context: dict[str, object] = {
        "section": "variants",
        "chooser": chooser,
        "form": None,
        "has_datasets": Dataset.objects.exists(),
    }
    if not chooser.is_valid():
        return render(request, "recommenders/variant_register.html", context)
    algorithm = chooser.cleaned_data["algorithm"]
    dataset = Dataset.objects.get(name=chooser.cleaned_data["dataset"])
    candidates = hybrid_candidates(dataset) if algorithm == HYBRID else []
    form = RegisterVariantForm(
        request.POST if request.method == "POST" else None, algorithm=algorithm, dataset=dataset, candidates=candidates
    )
    if request.method == "POST" and form.is_valid():
        try:
            variant = register_variant(form.spec(), author=_user(request))
        except VariantError as error:
            form.add_service_errors(error.errors)
        else:
            if form.cleaned_data["train_now"] and request.user.has_perm("recommenders.add_trainingrun"):
                queue_training(variant, requested_by=_user(request))
                messages.success(request, f"Registered {variant.label} and queued its training.")
            else:
                messages.success(request, f"Registered {variant.label}. Press Train when you are ready.")
            return redirect("variants:detail", name=variant.name, version=variant.version)
    context.update(form=form, algorithm=algorithm, dataset=dataset, hybrid=algorithm == HYBRID,
                   doc=_algorithm_doc(algorithm), params_doc=_params_doc(algorithm))  # fmt: skip
    return render(request, "recommenders/variant_register.html", context)


@login_required
@permission_required("recommenders.view_variant", raise_exception=True)
def variant_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """Facts, versions, training runs (live progress), loss chart, evaluations and the actions."""
    variant = get_object_or_404(Variant.objects.select_related("dataset", "author"), name=name, version=version)
    # The log and traceback can be long; the page shows the error line and the API has the rest.
    runs = list(variant.training_runs.select_related("requested_by").defer("log", "traceback")[:20])
    evaluations = list(variant.evaluations.defer("traceback")[:20])
    trained = next((run for run in runs if run.status == BackgroundJob.Status.SUCCEEDED), None)
    loss = charts.loss_figure((trained.fit_report or {}).get("history") or {}) if trained else None
    context = {
        "section": "variants",
        "variant": variant,
        "params_json": json.dumps(variant.params, indent=2),
        "versions": Variant.objects.filter(name=name).only("name", "version", "status", "created_at"),
        "runs": runs,
        "active_run": next((run for run in runs if run.status in ACTIVE), None),
        "trained_run": trained,
        "fit_notes": _notes(trained),
        "components": _components(variant, trained),
        "loss_figure": loss,
        "evaluations": evaluations,
        "active_evaluation": next((e for e in evaluations if e.status in ACTIVE), None),
        "evaluate_form": EvaluateForm(),
        "can_train": request.user.has_perm("recommenders.add_trainingrun"),
        "can_evaluate": request.user.has_perm("recommenders.add_evaluation"),
        "panels": variant_panels(request, variant),
    }
    return render(request, "recommenders/variant_detail.html", context)


def variant_panels(request: HttpRequest, variant: Variant) -> list[str]:
    """The HTML of the panels other apps add to the variant page (e.g. experiments' predicted online CTR).

    ``settings.VARIANT_PAGE_PANELS`` lists dotted paths of callables (request, variant) -> HTML or None,
    resolved here by name: this app never imports the apps that provide them (layering rule).
    """
    rendered = (import_string(path)(request, variant) for path in settings.VARIANT_PAGE_PANELS)
    return [html for html in rendered if html]


@login_required
@permission_required("recommenders.add_trainingrun", raise_exception=True)
@require_POST
def variant_train(request: HttpRequest, name: str, version: int) -> HttpResponse:
    variant = get_object_or_404(Variant, name=name, version=version)
    run = queue_training(variant, requested_by=_user(request))
    messages.success(request, f"Training run {run.pk} of {variant.label} queued; its progress shows below.")
    return redirect("variants:detail", name=name, version=version)


@login_required
@permission_required("recommenders.add_evaluation", raise_exception=True)
@require_POST
def variant_evaluate(request: HttpRequest, name: str, version: int) -> HttpResponse:
    variant = get_object_or_404(Variant, name=name, version=version)
    form = EvaluateForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in form.errors.items())
        messages.error(request, f"Evaluation not queued: {problems}")
        return redirect("variants:detail", name=name, version=version)
    try:
        evaluation = queue_evaluation(variant, requested_by=_user(request), **form.cleaned_data)
    except TrainingError as error:
        messages.error(request, f"Evaluation not queued: {error}")
    else:
        messages.success(request, f"Evaluation {evaluation.pk} of {variant.label} queued; its progress shows below.")
    return redirect("variants:detail", name=name, version=version)


@login_required
@permission_required("recommenders.view_variant", raise_exception=True)
def variant_compare(request: HttpRequest) -> HttpResponse:
    """Grouped metric bars and metric@k curves of the chosen variants' latest evaluations."""
    ids = [int(value) for value in request.GET.getlist("v") if value.isdigit()][:MAX_COMPARED]
    variants = list(Variant.objects.filter(pk__in=ids).select_related("dataset").order_by("name", "-version"))
    evaluations = latest_evaluations(v.pk for v in variants)
    rows = [(v, evaluations[v.pk]) for v in variants if v.pk in evaluations]
    context = {
        "section": "variants",
        "variants": variants,
        "rows": rows,
        "metrics": ACCURACY_METRICS,
        "unevaluated": [v for v in variants if v.pk not in evaluations],
        "without_curves": [v for v, e in rows if not e.metrics.get("at_k")],
        # Metrics are only comparable on one data set under one split protocol.
        "mixed_setups": len({(v.dataset_id, e.split, e.ratio, e.k) for v, e in rows}) > 1,
        "bars": charts.compare_bars(rows) if rows else None,
        "curves": charts.curve_figures(rows) if rows else None,
    }
    return render(request, "recommenders/variant_compare.html", context)


def _user(request: HttpRequest) -> User | None:
    # login_required has run, so this is a real user; the isinstance check keeps mypy honest.
    return request.user if isinstance(request.user, User) else None


def _components(variant: Variant, run: TrainingRun | None) -> list[dict[str, object]]:
    """A hybrid's components with the weight given and the weight training used (learned or not)."""
    if variant.algorithm != HYBRID:
        return []
    notes = (run.fit_report or {}).get("notes") or {} if run else {}
    used = notes.get("weights") or []
    return [
        {
            "algorithm": c.get("algorithm"),
            "params": json.dumps(c.get("params") or {}),
            "weight": c.get("weight", 1.0),
            "trained_weight": used[i] if i < len(used) else None,
        }
        for i, c in enumerate(variant.params.get("components") or [])
    ]


def _notes(run: TrainingRun | None) -> str:
    """What training reported besides its history, as readable JSON (a hybrid's weights show in its table)."""
    notes = dict((run.fit_report or {}).get("notes") or {}) if run else {}
    if run is not None and run.variant.algorithm == HYBRID:
        notes.pop("weights", None)
    return json.dumps(notes, indent=2) if notes else ""


def _algorithm_doc(name: str) -> str:
    return (registry.get(name).__doc__ or "").strip().split("\n\n")[0]


def _params_doc(name: str) -> str:
    """The Params dataclass's docstring when its author wrote one (dataclasses otherwise make up a signature)."""
    params = registry.get(name).Params
    doc = inspect.cleandoc(params.__doc__ or "")
    return "" if doc.startswith(f"{params.__name__}(") else doc
