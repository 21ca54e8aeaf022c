"""A lean WSGI path for the two hot endpoints, in front of the Django application.

`LeanDispatcher` answers token-authenticated `POST /api/v1/experiments/<key>/recommendations`
and `POST /api/v1/events` itself, without Django's middleware, URL resolution or DRF's
request/negotiation/serializer machinery (about 3/4 of the CPU of a served request), and
logs served recommendations through the in-process buffer (serving_log.buffer) instead of
a database round trip per request.

It handles only requests it can answer exactly as the DRF views would, and gives every
other request, untouched, to Django: other paths and methods (405), session or basic
authentication, unknown, revoked or out-of-scope tokens (401/403), bodies over
DATA_UPLOAD_MAX_MEMORY_SIZE (413), content types other than JSON, bad JSON, a request body
that is not plainly valid (endpoints.plain_recommendation_request), a disallowed Host
(400), an Accept header or ?format= asking for something other than JSON, and plain HTTP
when SECURE_SSL_REDIRECT is on. So every refusal keeps DRF's status and wording; a refused
request pays the Django path once more, which only matters for clients that send errors
at a high rate. The answers (status and body) come from serving/endpoints.py, shared
with the DRF views; the headers repeat what the middleware adds to such an answer, the
request id (`X-Request-ID`, core.request_context) included. Requests answered here are
counted in the same request metrics as Django's (core.metrics, by URL name).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from rest_framework.renderers import JSONRenderer

from core import metrics, request_context
from serving.authentication import ApiTokenAuthentication
from serving.endpoints import ingest_answer, plain_recommendation_request, recommendations_answer
from serving.services import serving_log
from serving.services.config import LogWriter
from serving.services.tokens import find_token

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_RECOMMENDATIONS = re.compile(r"/api/v1/experiments/([-a-zA-Z0-9_]+)/recommendations")  # Django's <slug:key>
EVENTS_PATH = "/api/v1/events"
# The two endpoints' URL names (abplatform/api_urls.py): the `view` label of their request metrics, as Django's.
RECOMMENDATIONS_VIEW = "experiment-recommendations"
EVENTS_VIEW = "events"
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_ACCEPT_JSON = frozenset({"", "*/*", "application/json"})
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 413: "Request Entity Too Large",
            500: "Internal Server Error"}  # fmt: skip
_render = JSONRenderer().render

logger = logging.getLogger("django.request")


class _Delegate(Exception):
    """The request is not one the lean path answers exactly; Django handles it."""


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")  # DRF's parser is strict about NaN and Infinity too


class LeanDispatcher:
    """WSGI application: the lean path for the hot endpoints, `django_app` for everything else."""

    def __init__(
        self,
        django_app: WSGIApp,
        log: LogWriter | None = None,
        connection_upkeep: Callable[[], None] = close_old_connections,
    ) -> None:
        """`log` stores served answers (default: the process's buffer); `connection_upkeep` runs after each
        request, as Django's request signals do (tests skip it, like Django's test client, to keep their
        transaction's connection open)."""
        self.django_app = django_app
        self.log = log or serving_log.buffer.add
        self.connection_upkeep = connection_upkeep

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.django_app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        match = _RECOMMENDATIONS.fullmatch(path)
        if match is None and path != EVENTS_PATH:
            return self.django_app(environ, start_response)
        started = time.perf_counter()
        # The request id is the current one while the answer is made, so the serving log and every log line
        # carry it; a delegated request gets its own from Django's middleware (ops.middleware), same rule.
        request_id = request_context.request_id_from(environ.get(request_context.META_KEY))
        token = request_context.bind(request_id)
        try:
            answered = self._answer(environ, match, path)
        finally:
            request_context.unbind(token)
        if answered is None:
            return self.django_app(environ, start_response)
        status, reason, content, headers = answered
        headers.append(("Content-Length", str(len(content))))
        headers.append((request_context.HEADER, request_id))
        start_response(f"{status} {reason}".rstrip(), headers)
        view = RECOMMENDATIONS_VIEW if match else EVENTS_VIEW
        metrics.HTTP_REQUESTS.inc(view, "POST", str(status))
        metrics.HTTP_DURATION.observe(time.perf_counter() - started, view, "POST")
        return [content]

    def _answer(
        self, environ: dict[str, Any], match: re.Match[str] | None, path: str
    ) -> tuple[int, str, bytes, list[tuple[str, str]]] | None:
        """(status, reason, body, headers) of the answer, or None when Django must answer the request."""
        try:
            body = _accepted(environ, "serve" if match else "ingest")
            if match is not None:
                args = plain_recommendation_request(body)
                if args is None:
                    raise _Delegate
                status, answer = recommendations_answer(match.group(1), *args, log=self.log)
            else:
                status, answer = ingest_answer(body)
            content, headers = _render(answer), _headers(environ)
        except _Delegate:
            return None
        except Exception:
            # The id as a field of the record too: Sentry's logging integration (SENTRY_DSN) reads the record before
            # the handlers' filter adds it.
            logger.exception("Internal Server Error: %s", path, extra={"request_id": request_context.current()})
            status, content, headers = 500, _render({"detail": "A server error occurred."}), _headers(environ)
        finally:
            # What Django's request signals do for the database (10x cheaper than sending them): close the
            # connection when it is broken or past CONN_MAX_AGE.
            self.connection_upkeep()
        reason = _REASONS.get(status, "")
        if status >= 400:
            logger.warning("%s: %s", reason, path)  # as Django logs its 4xx answers
        return status, reason, content, headers


def _accepted(environ: dict[str, Any], scope: str) -> Any:
    """The request's parsed JSON body, or _Delegate when Django must answer the request.

    Once the body is read, environ["wsgi.input"] is replaced by a copy of it, so Django can still read it.
    """
    header = environ.get("HTTP_AUTHORIZATION", "").split()
    if len(header) != 2 or header[0].lower() not in ApiTokenAuthentication.keywords:
        raise _Delegate
    if environ.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES or environ.get("QUERY_STRING"):
        raise _Delegate
    if environ.get("HTTP_ACCEPT", "") not in _ACCEPT_JSON:
        raise _Delegate
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise _Delegate from None  # chunked or missing: Django's rules apply
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE or not _host_allowed(environ):
        raise _Delegate
    if settings.SECURE_SSL_REDIRECT and not _is_secure(environ):
        raise _Delegate
    token = find_token(header[1])
    if token is None or scope not in token.scopes:
        raise _Delegate
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)  # for Django, should the body turn out not plainly valid
    try:
        return json.loads(raw.decode(), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting is Django's to refuse
        raise _Delegate from None


_HOST_KEYS = ("HTTP_HOST", "HTTP_X_FORWARDED_HOST", "SERVER_NAME", "SERVER_PORT")
_allowed_hosts: set[tuple[str | None, ...]] = set()  # Host-deciding headers Django accepted already


def _host_allowed(environ: dict[str, Any]) -> bool:
    """Whether Django accepts the request's host (ALLOWED_HOSTS), asked once per distinct host."""
    key = tuple(environ.get(name) for name in _HOST_KEYS)
    if key in _allowed_hosts:
        return True
    try:
        WSGIRequest({**environ, "wsgi.input": io.BytesIO()}).get_host()
    except DisallowedHost:
        return False
    if len(_allowed_hosts) < 1000:  # bounded: Host headers are the client's to choose
        _allowed_hosts.add(key)
    return True


def _is_secure(environ: dict[str, Any]) -> bool:
    """HttpRequest.is_secure() on the WSGI environ (SECURE_PROXY_SSL_HEADER, else the URL scheme)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(environ.get("wsgi.url_scheme") == "https")


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers DRF and the security middleware give a JSON answer of these views."""
    headers = [("Content-Type", "application/json"), ("Vary", "Accept"), ("Allow", "POST, OPTIONS")]
    if settings.X_FRAME_OPTIONS:
        headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    if settings.SECURE_HSTS_SECONDS and _is_secure(environ):
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    return headers
