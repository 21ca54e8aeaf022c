"""A lean WSGI path for the two hot endpoints, in front of the Django application.

`LeanDispatcher` answers token-authenticated `POST /api/v1/experiments/<key>/recommendations`
and `POST /api/v1/events` itself, without Django's middleware, URL resolution or DRF's
request/negotiation/serializer machinery (about 3/4 of the CPU of a served request), and
logs served recommendations through the in-process buffer (serving_log.buffer) instead of
a database round trip per request.

It handles only requests it can answer exactly as the DRF views would, and gives every
other request, untouched, to Django: other paths and methods (405), session or basic
authentication, unknown, revoked or out-of-scope tokens (401/403), bodies over
DATA_UPLOAD_MAX_MEMORY_SIZE (413), content types other than JSON, bad JSON or JSON nested deeper
than the API's parser takes (core.parsers.MAX_DEPTH), a request body that is not plainly valid
(endpoints.plain_recommendation_request), a disallowed Host (400), an Accept header or ?format=
asking for something other than JSON, and plain HTTP when SECURE_SSL_REDIRECT is on. So every
refusal keeps DRF's status and wording; a refused request pays the Django path once more, which
only matters for clients that send errors at a high rate. The answers (status and body) come
from serving/endpoints.py, shared with the DRF views. The headers are DRF's (content type, Vary,
Allow) and those the configured security middleware add (`header_middleware`: Django's
SecurityMiddleware and XFrameOptionsMiddleware as listed in settings.MIDDLEWARE, run over the
answer's headers when the dispatcher is built, as Django's handler builds its middleware once),
so a security setting changes the answers of both paths alike. The request id (`X-Request-ID`,
core.request_context) is set as on Django's answers, and requests answered here are counted in the
same request metrics as Django's (core.metrics, by URL name).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from cachetools import LRUCache
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string
from rest_framework.renderers import JSONRenderer

from core import metrics, request_context
from core.parsers import MAX_DEPTH, depth_exceeds
from serving.authentication import ApiTokenAuthentication, may_simulate
from serving.endpoints import ingest_answer, plain_recommendation_request, recommendations_answer
from serving.models import ApiToken
from serving.services import serving_log
from serving.services.config import LogWriter
from serving.services.tokens import blocked, find_token

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# The two endpoints' URL names (abplatform/api_urls.py): the `view` label of their request metrics, as Django's.
RECOMMENDATIONS_VIEW = "experiment-recommendations"
EVENTS_VIEW = "events"

_RECOMMENDATIONS = re.compile(r"/api/v1/experiments/([-a-zA-Z0-9_]+)/recommendations")  # Django's <slug:key>
EVENTS_PATH = "/api/v1/events"
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_ACCEPT_JSON = frozenset({"", "*/*", "application/json"})
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 413: "Request Entity Too Large",
            500: "Internal Server Error"}  # fmt: skip
_render = JSONRenderer().render
# What DRF puts on an answer of these views (a JSON render, content negotiation, the view's methods).
_DRF_HEADERS = (("Content-Type", "application/json"), ("Vary", "Accept"), ("Allow", "POST, OPTIONS"))
# The middleware whose only work on such an answer is adding headers, whatever its status.
HEADER_MIDDLEWARE = (SecurityMiddleware, XFrameOptionsMiddleware, CSPMiddleware)
HeaderMiddleware = SecurityMiddleware | XFrameOptionsMiddleware | CSPMiddleware

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
        middleware = header_middleware()
        # Django redirects plain HTTP to HTTPS then (SecurityMiddleware.process_request): it answers those.
        self.ssl_redirect = any(isinstance(m, SecurityMiddleware) and m.redirect for m in middleware)
        self._headers = {secure: answer_headers(middleware, secure=secure) for secure in (False, True)}
        self._by_scheme = self._headers[False] != self._headers[True]  # HSTS: only on HTTPS answers

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
        bound = request_context.bind(request_id)
        try:
            answered = self._answer(environ, match, path)
        finally:
            request_context.unbind(bound)
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
            token, body = _accepted(environ, "serve" if match else "ingest", self.ssl_redirect)
            if match is not None:
                args = plain_recommendation_request(body)
                if args is None or (args[3] is not None and not may_simulate(token)):
                    raise _Delegate  # Django words the refusal (400, or 403 for a simulation without the scope)
                status, answer = recommendations_answer(match.group(1), *args, log=self.log, token=token)
            else:
                status, answer = ingest_answer(body, token)
            content, headers = _render(answer), self._answer_headers(environ)
        except _Delegate:
            return None
        except Exception:
            # The id as a field of the record too: Sentry's logging integration (SENTRY_DSN) reads the record before
            # the handlers' filter adds it.
            logger.exception("Internal Server Error: %s", path, extra={"request_id": request_context.current()})
            status, content = 500, _render({"detail": "A server error occurred."})
            headers = self._answer_headers(environ)
        finally:
            # What Django's request signals do for the database (10x cheaper than sending them): close the
            # connection when it is broken or past CONN_MAX_AGE.
            self.connection_upkeep()
        reason = _REASONS.get(status, "")
        if status >= 400:
            logger.warning("%s: %s", reason, path)  # as Django logs its 4xx answers
        return status, reason, content, headers

    def _answer_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        return list(self._headers[self._by_scheme and _is_secure(environ)])


def header_middleware() -> list[HeaderMiddleware]:
    """Instances of the configured middleware (settings.MIDDLEWARE) that are HEADER_MIDDLEWARE, in the order
    an answer passes them (the reverse of the list)."""
    classes = [import_string(path) for path in reversed(settings.MIDDLEWARE)]
    return [cls(_no_view) for cls in classes if issubclass(cls, HEADER_MIDDLEWARE)]


def _no_view(request: Any) -> Any:
    raise AssertionError("the lean path runs header middleware over its answers only")  # pragma: no cover


def answer_headers(middleware: list[HeaderMiddleware], *, secure: bool) -> list[tuple[str, str]]:
    """The headers of a JSON answer of these views over HTTPS (`secure`) or plain HTTP: DRF's, then what
    `middleware` add to them (their process_response, run on a sample request and answer)."""
    response = HttpResponse()
    for name, value in _DRF_HEADERS:
        response.headers[name] = value
    request = WSGIRequest({"REQUEST_METHOD": "POST", "PATH_INFO": EVENTS_PATH, "wsgi.input": io.BytesIO(),
                           "wsgi.url_scheme": "https" if secure else "http"})  # fmt: skip
    for instance in middleware:
        # Each adds headers to the answer it is given and returns it (none replaces it).
        response = cast(HttpResponse, instance.process_response(request, response))
    return list(response.items())


def _accepted(environ: dict[str, Any], scope: str, ssl_redirect: bool) -> tuple[ApiToken, Any]:
    """The request's token and parsed JSON body, or _Delegate when Django must answer the request.

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
    if ssl_redirect and not _is_secure(environ):
        raise _Delegate
    if blocked(environ.get("REMOTE_ADDR", "")):
        raise _Delegate  # Django answers 429 (serving.authentication)
    token = find_token(header[1])
    if token is None or scope not in token.scopes:
        raise _Delegate
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)  # for Django, should the body turn out not plainly valid
    try:
        body = json.loads(raw.decode(), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting is Django's to refuse
        raise _Delegate from None
    if depth_exceeds(body, MAX_DEPTH):  # what the API's parser refuses (core.parsers), with its wording
        raise _Delegate
    return token, body


_HOST_KEYS = ("HTTP_HOST", "HTTP_X_FORWARDED_HOST", "SERVER_NAME", "SERVER_PORT")
# Host-deciding headers Django accepted already; bounded, since Host headers are the client's to choose.
_allowed_hosts: LRUCache[tuple[str | None, ...], bool] = LRUCache(maxsize=1000)
_hosts_lock = threading.Lock()


def _host_allowed(environ: dict[str, Any]) -> bool:
    """Whether Django accepts the request's host (ALLOWED_HOSTS), asked once per distinct host."""
    key = tuple(environ.get(name) for name in _HOST_KEYS)
    with _hosts_lock:
        if _allowed_hosts.get(key):
            return True
    try:
        WSGIRequest({**environ, "wsgi.input": io.BytesIO()}).get_host()
    except DisallowedHost:
        return False
    with _hosts_lock:
        _allowed_hosts[key] = True
    return True


def _is_secure(environ: dict[str, Any]) -> bool:
    """HttpRequest.is_secure() on the WSGI environ (SECURE_PROXY_SSL_HEADER, else the URL scheme)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(environ.get("wsgi.url_scheme") == "https")
