"""The alert pages: the open alerts of an experiment (a panel of its page, listed in
settings.EXPERIMENT_PAGE_PANELS), the list of unresolved alerts behind the navigation's badge, and the
acknowledge and resolve buttons (product managers; POST with the CSRF token)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from experiments.models import Experiment
from ops.models import Alert
from ops.services.alerts import AlertStateError, acknowledge, resolve

STEPS = {"acknowledge": acknowledge, "resolve": resolve}


def unresolved() -> list[Alert]:
    return list(Alert.objects.exclude(status=Alert.Status.RESOLVED).select_related("experiment", "acknowledged_by"))


def alerts_panel(request: HttpRequest, experiment: Experiment) -> str:
    """The "Alerts" section of the experiment page: its unresolved alerts (nothing for a role that may not
    see alerts, or when there is none)."""
    if not request.user.has_perm("ops.view_alert"):
        return ""
    alerts = [alert for alert in unresolved() if alert.experiment_id == experiment.pk]
    if not alerts:
        return ""
    context = {"alerts": alerts, "can_act": request.user.has_perm("ops.change_alert"), "next": request.path}
    return render_to_string("ops/alerts_panel.html", context, request=request)


@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("ops.view_alert"):
        return HttpResponse("Your role may not see alerts.", status=403)
    context = {
        "section": "alerts", "alerts": unresolved(), "can_act": request.user.has_perm("ops.change_alert"),
        "next": request.path,
    }  # fmt: skip
    return render(request, "ops/alert_list.html", context)


@login_required
@require_POST
def alert_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    """Acknowledge or resolve an alert, then back to the page the button was on."""
    if step not in STEPS:
        return HttpResponse("No such step.", status=404)
    if not request.user.has_perm("ops.change_alert"):
        return HttpResponse("Only product managers acknowledge and resolve alerts.", status=403)
    alert = get_object_or_404(Alert, pk=pk)
    try:
        STEPS[step](alert, request.user)  # type: ignore[arg-type]
        messages.success(
            request, f"Alert {alert.pk} ({alert.rule}): {'acknowledged' if step == 'acknowledge' else 'resolved'}."
        )
    except AlertStateError as error:
        messages.error(request, str(error))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = "ops_pages:alerts"
    return redirect(target)
