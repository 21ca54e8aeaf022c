"""Calling the WSGI applications (Django's, and the lean path in front of it) in-process, as a server would."""

from __future__ import annotations

import io
import json
from typing import Any

from django.core.wsgi import get_wsgi_application

DJANGO = get_wsgi_application()


def _keep(*args: Any) -> None:
    """No connection upkeep: it would close the connection holding the test's transaction."""


def _call(
    app: Any, path: str, body: bytes | str | Any, *, method: str = "POST", **headers: str
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON body) of one WSGI call; `body` other than bytes/str is sent as JSON."""
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": headers.pop("query", ""),
        "CONTENT_TYPE": headers.pop("content_type", "application/json"), "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw), "wsgi.url_scheme": headers.pop("scheme", "http"), "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": headers.pop("host", "testserver"), **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }  # fmt: skip
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    content = b"".join(app(environ, start_response))
    try:
        decoded = json.loads(content)
    except ValueError:
        decoded = content
    answer["headers"].pop("Content-Length", None)  # bodies differ in request_id only, but may differ in length
    assert answer["headers"].pop("X-Request-ID")  # every answer has its own (tests/ops/test_request_id.py)
    return answer["status"], answer["headers"], decoded
