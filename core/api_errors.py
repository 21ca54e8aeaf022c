"""DRF exception handling: a few Django errors get clear 4xx answers instead of a 500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.jobs import QueueUnavailable

QUEUE_RETRY_AFTER = 30  # seconds a client should wait before asking again when the task broker is down


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, QueueUnavailable):
        return Response({"detail": str(exc)}, status=503, headers={"Retry-After": str(QUEUE_RETRY_AFTER)})
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return Response({"detail": f"The request body is larger than {limit:g} MB; send smaller batches."}, status=413)
    return exception_handler(exc, context)
