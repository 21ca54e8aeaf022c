"""The JSON log format (ABPLATFORM_LOG_FORMAT=json, the default in production): one object per line.

    {"time": "2026-12-07T10:15:00.123456+00:00", "level": "WARNING", "logger": "django.request",
     "message": "Not Found: /nope", "request_id": "5f0c…", "status_code": 404}

`time` is UTC in ISO 8601, `request_id` the request's (core.request_context; "-" outside a request); an
exception adds `exc_info` (its traceback as text), and whatever a call passes in `extra` is added as is.
"""

from __future__ import annotations

import logging

# Attributes Django adds to its records that are objects, not data (the request, the socket's server time).
_DROPPED = ("request", "server_time", "taskName", "color_message")


def json_formatter() -> logging.Formatter:
    """The formatter LOGGING's "json" entry builds (python-json-logger)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, *_DROPPED],
    )
