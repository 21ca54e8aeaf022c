"""The first middleware: request id, request metrics, and the operations endpoints answered early.

- Every request gets its id (core.request_context: the client's sane X-Request-ID, else a uuid4), current
  while Django answers it, so every log line of the request carries it (and so does its serving log), and
  returned in the answer's X-Request-ID header. The lean path (serving.lean) does the same for its answers.
  Django's "Not Found: /x"-style line of a 4xx or 5xx answer is logged here, with the id.
- Every answer is counted by view (its URL name), method and status, with its duration (core.metrics).
- /healthz, /readyz and /metrics (ops.views.ROUTES) are answered here, before SecurityMiddleware's HTTPS
  redirect and CommonMiddleware's ALLOWED_HOSTS check: a probe or a scraper asks the machine's own address
  over plain HTTP. /metrics has its own access rule (ops.services.access).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response

from core import metrics, request_context
from ops.views import ROUTES


class OpsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.static_prefix = "/" + str(settings.STATIC_URL or "static/").lstrip("/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = request_context.request_id_from(request.META.get(request_context.META_KEY))
        token = request_context.bind(request_id)
        try:
            if "sentry_sdk" in sys.modules:  # only when SENTRY_DSN is set (abplatform.settings)
                import sentry_sdk

                sentry_sdk.set_tag("request_id", request_id)
            early = ROUTES.get(request.path_info)
            if early is None:
                response = self.get_response(request)
                view = self._view_name(request)
            else:
                try:
                    response = early(request)
                except Exception as error:  # as Django's handler would answer it (500, logged)
                    response = response_for_exception(request, error)
                view = request.path_info.strip("/")
            response[request_context.HEADER] = request_id
            if response.status_code >= 400:
                # What Django's handler logs after the middleware ("Not Found: /x"), logged here instead, while
                # the request id is current; Django then sees it logged and does not repeat it.
                log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        finally:
            request_context.unbind(token)
        method = metrics.http_method(request.method or "")
        metrics.HTTP_REQUESTS.inc(view, method, str(response.status_code))
        metrics.HTTP_DURATION.observe(time.perf_counter() - started, view, method)
        return response

    def _view_name(self, request: HttpRequest) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            return str(match.view_name)
        return "static" if request.path_info.startswith(self.static_prefix) else "unresolved"
