"""GET /healthz (liveness), /readyz (readiness) and /metrics (Prometheus).

The middleware (ops.middleware) answers these three paths before Django's host check and HTTPS redirect, so
a load balancer's probe or Prometheus may use the machine's address and plain HTTP; the URL patterns
(abplatform/urls.py) name the same views.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from ops.services import access, health, scrape

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_NO_STORE = "no-store"


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. No database, broker or disk access."""
    response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = _NO_STORE
    return response


def readiness_json(readiness: health.Readiness) -> dict[str, Any]:
    return {
        "status": "ok" if readiness.ok else "unavailable",
        "checks": {
            check.name: {"ok": check.ok, "detail": check.detail, "duration_ms": check.duration_ms}
            for check in readiness.checks
        },
    }


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness (ops.services.health): 200 when every check passes, else 503; `?check=NAME` (repeatable)
    counts only the checks named, e.g. `?check=database&check=broker` for a serving-only probe."""
    names = tuple(request.GET.getlist("check")) or health.CHECKS
    unknown = [name for name in names if name not in health.CHECKS]
    if unknown:
        return JsonResponse(
            {"detail": f"unknown check {', '.join(unknown)}; the checks are {', '.join(health.CHECKS)}"}, status=400
        )
    readiness = health.readiness().only(names)
    response = HttpResponse(
        json.dumps(readiness_json(readiness)), content_type="application/json", status=200 if readiness.ok else 503
    )
    response["Cache-Control"] = _NO_STORE
    # A probe asks every second: rather than a "Service Unavailable" line per probe, the checks log when the
    # readiness changes (ops.services.health); Django's per-answer line is skipped (its own flag for that).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; 403 unless the bearer token or the peer's address allows it (ops.services.access)."""
    if not access.may_scrape(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_AUTHORIZATION", "")):
        return JsonResponse(
            {"detail": "Metrics need the bearer token ABPLATFORM_METRICS_TOKEN or an address in "
             "ABPLATFORM_METRICS_ALLOW."}, status=403,
        )  # fmt: skip
    response = HttpResponse(scrape.exposition(), content_type=PROMETHEUS_TEXT)
    response["Cache-Control"] = _NO_STORE
    return response


ROUTES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
"""The paths the middleware answers itself, and the URL patterns' views."""
