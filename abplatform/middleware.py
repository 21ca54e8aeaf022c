"""Page requests whose job could not be queued go back where they came from, with the reason."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme

from core.jobs import QueueUnavailable


class QueueUnavailableMiddleware:
    """A page that queued a job (train, evaluate, simulate, estimate) while the task broker was down: the
    job row is marked failed with the reason (``core.jobs.enqueue``), and the user gets the reason on the
    page they came from rather than a server error. The API answers 503 (``api_errors``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, QueueUnavailable) or request.path.startswith("/api/"):
            return None
        messages.error(request, f"Nothing was started: {exception}. Try again when the task broker is back.")
        back = request.META.get("HTTP_REFERER", "/")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = "/"
        return HttpResponseRedirect(back, status=303)
