"""The answer to an uncaught error: 503 with Retry-After when the database is unreachable, else a 500; and the
answer to a path that names nothing: under /api/ a JSON 404, as every API refusal (the schema says so).

Django calls ``handler500`` (abplatform/urls.py) inside the ``except`` block of the request that
failed, so ``sys.exc_info()`` names the error. An unreachable or restarting PostgreSQL is a
temporary condition a client should retry, not a server bug: pages get a short page that touches
no database (the usual layout reads the signed-in user), the API a JSON reason, both with
``Retry-After``.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error

DATABASE_RETRY_AFTER = 15  # seconds: a PostgreSQL restart or fail-over takes about that long

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Database unavailable</title></head>
<body><h1>The database is unavailable</h1>
<p>The platform cannot reach its database right now. Nothing was changed; try again in a few seconds.</p>
</body></html>
"""


def database_unavailable() -> bool:
    """Whether the error being handled is a lost or refused database connection."""
    error = sys.exc_info()[1]
    return isinstance(error, OperationalError | InterfaceError)


def server_error_or_unavailable(request: HttpRequest) -> HttpResponse:
    """``handler500``: 503 with Retry-After when the database is unreachable, Django's 500 otherwise."""
    if not database_unavailable():
        return server_error(request)
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER)}
    if request.path.startswith("/api/"):
        detail = "The database is unavailable; nothing was changed. Retry after the Retry-After seconds."
        return JsonResponse({"detail": detail}, status=503, headers=headers)
    return HttpResponse(UNAVAILABLE_PAGE, status=503, headers=headers)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: a JSON `detail` under /api/ (e.g. an experiment key that is not a slug matches no
    route), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)  # type: ignore[arg-type]
