"""Typed readers for environment variables.

Every setting of the platform comes from the environment through these helpers. A bad
value stops start-up with `ImproperlyConfigured` naming the variable and what it allows,
instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from django.core.exceptions import ImproperlyConfigured

_T = TypeVar("_T")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value; `default` when unset; ImproperlyConfigured when unset without a default."""
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Set the environment variable {name}: it is required here.")
        return default
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """True for true/1/yes/on, False for false/0/no/off (any case); anything else is refused."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    allowed = "/".join(_TRUE + _FALSE)
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of {allowed}.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer within [minimum, maximum] when those are given."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum {maximum}.")
    return value


def env_choice(name: str, default: str, choices: Sequence[str], *, environ: Mapping[str, str] | None = None) -> str:
    """One of `choices` (exact match)."""
    value = env_str(name, default, environ=environ)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not allowed; use one of {', '.join(choices)}.")
    return value


def env_list(name: str, default: Sequence[str] = (), *, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blanks around items are dropped, empty items are ignored."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A number (such as 0.25) within [minimum, maximum] when those are given."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if value != value or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name}={raw.strip()} is outside [{minimum}, {maximum}].")
    return value


def env_networks(name: str, default: Sequence[str] = (), *, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list of IP networks in CIDR notation (a bare address is a /32 or /128), normalised
    ("10.1.2.3/8" is 10.0.0.0/8); an empty value is an empty list."""
    networks = []
    for part in env_list(name, default, environ=environ):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {part!r} is not an IP network; use CIDR notation such as 10.0.0.0/8 or ::1/128."
            ) from None
    return networks


def env_database(name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, object] | None:
    """A Django DATABASES entry from a `postgres://user:pass@host:port/db` URL; None when unset.

    PostgreSQL is the only database: any other scheme is refused. A Unix socket folder can be
    given as a percent-encoded host (`postgres://postgres@%2Fvar%2Frun%2Fpostgresql/db`).
    """
    import dj_database_url

    environ = os.environ if environ is None else environ
    url = environ.get(name) or ""
    if not url:
        return None
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(
            f"{name} has the scheme {scheme!r}; the platform runs on PostgreSQL only: use "
            f"postgres://USER:PASSWORD@HOST:PORT/NAME, or unset {name} for the embedded PostgreSQL in var/."
        )
    try:
        config = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not a database URL Django can use: {error}") from None
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name}={url!r} names no database (the path after the last '/').")
    return config


# The registry: every environment variable the platform reads, declared once.
#
# abplatform/settings.py reads its variables through `VARIABLES` (which takes each one's kind,
# allowed values and static default from here), and the Settings page of the documentation is
# rendered from these declarations when the site is built (docs/hooks.py loads this file on its
# own, without Django settings). tests/abplatform/test_settings_reference.py checks that settings.py
# reads exactly the variables declared for it, that .env.example lists every variable, and that the
# page shows them all.

Kind = Literal["text", "boolean", "integer", "number", "choice", "list", "networks", "database URL"]


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it accepts, its default, its meaning and where it is read.

    `default` is the value used when the variable is unset, when that value is fixed. When
    settings.py computes it (from ABPLATFORM_ENV or ABPLATFORM_VAR_DIR), `default` stays None,
    settings.py passes it to the reader, and `default_doc` says what it is. `values` describes
    the accepted values when the kind does not say it all. Texts are Markdown, as the Settings
    page shows them.
    """

    name: str
    group: str
    kind: Kind
    help: str
    default: str | bool | int | float | tuple[str, ...] | None = None
    default_doc: str = ""
    values: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # The file that reads it: abplatform/settings.py (through VARIABLES), or a script or test set-up.
    read_by: str = "abplatform/settings.py"

    def values_markdown(self) -> str:
        """The values it accepts."""
        if self.kind == "boolean":
            return "`true` or `false`"
        if self.kind == "choice":
            quoted = [f"`{choice}`" for choice in self.choices]
            return " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]
        if self.kind == "integer":
            bounds = [f"at least {self.minimum:,}" if self.minimum is not None else ""]
            bounds.append(f"at most {self.maximum:,}" if self.maximum is not None else "")
            return ", ".join(["a whole number", *filter(None, bounds)])
        if self.kind == "number":
            bounds = [f"from {self.minimum:g}" if self.minimum is not None else ""]
            bounds.append(f"to {self.maximum:g}" if self.maximum is not None else "")
            return " ".join(["a number", *filter(None, bounds)])
        if self.kind == "list":
            return f"comma-separated {self.values}".strip()
        if self.kind == "networks":
            return "comma-separated networks (CIDR, e.g. `10.0.0.0/8`) or addresses"
        return self.values or "text"

    def default_markdown(self) -> str:
        """The default: `default_doc`, else the fixed default as it would be written."""
        if self.default_doc:
            return self.default_doc
        default = self.default
        if default is None or default == "" or default == ():
            return "empty"
        if isinstance(default, bool):
            return f"`{str(default).lower()}`"
        if isinstance(default, tuple):
            return f"`{','.join(default)}`"
        return f"`{default}`"


_PLATFORM = "Platform"
_DJANGO = "Django"
_SERVERS = "Database and broker"
_OPERATIONS = "Operations"
_TESTS = "Logging and tests"
_IN_PRODUCTION = "`true` in production, `false` in development"

_DECLARED = (
    Variable(
        "ABPLATFORM_ENV",
        _PLATFORM,
        "choice",
        "production turns `DEBUG` off, requires `DJANGO_SECRET_KEY` and `DJANGO_ALLOWED_HOSTS`, and turns "
        "the security switches of the [Django](#django) group on",
        default="development",
        choices=("development", "production"),
    ),
    Variable(
        "ABPLATFORM_VAR_DIR",
        _PLATFORM,
        "text",
        "where the embedded PostgreSQL, the filesystem broker and model artifacts live",
        default_doc="`./var` (in the checkout)",
        values="a folder",
    ),
    Variable(
        "ABPLATFORM_ARTIFACT_DIR",
        _PLATFORM,
        "text",
        "where trained model files go; web and workers must share it",
        default_doc="`$ABPLATFORM_VAR_DIR/artifacts`",
        values="a folder",
    ),
    Variable(
        "ABPLATFORM_EXTRA_ALGORITHMS",
        _PLATFORM,
        "list",
        "extra recommender classes, such as `mypackage.recs.MyRecommender`, checked against the interface at start-up",
        default=(),
        values="dotted paths",
    ),
    Variable(
        "ABPLATFORM_JOB_HEARTBEAT_SECONDS",
        _PLATFORM,
        "integer",
        "how often, in seconds, the worker running a background job records that the job is alive",
        default=20,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_JOB_STALE_SECONDS",
        _PLATFORM,
        "integer",
        "a background job silent for this many seconds is presumed dead and restarted by the next free "
        "worker; must exceed twice `ABPLATFORM_JOB_HEARTBEAT_SECONDS`",
        default=120,
        minimum=2,
    ),
    Variable(
        "ABPLATFORM_LOGIN_FAILURE_LIMIT",
        _PLATFORM,
        "integer",
        "wrong passwords in a row for one username from one address before that pair is locked out "
        "(429 with Retry-After)",
        default=5,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_LOGIN_COOLOFF_MINUTES",
        _PLATFORM,
        "integer",
        "how long, in minutes, a locked-out username and address stay refused, whatever the password",
        default=15,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_ADDRESS",
        _PLATFORM,
        "text",
        "the address `make demo` / `scripts/serve.sh` listens on",
        default="127.0.0.1:8000",
        values="`HOST:PORT`",
        read_by="scripts/serve.sh",
    ),
    Variable(
        "DJANGO_SECRET_KEY",
        _DJANGO,
        "text",
        "Django's signing key; required in production",
        default_doc="a development key; none in production",
        values="50+ characters, at least 5 distinct",
    ),
    Variable(
        "DJANGO_DEBUG",
        _DJANGO,
        "boolean",
        "Django's debug mode; refused in production",
        default_doc="`true` in development, `false` in production",
    ),
    Variable(
        "DJANGO_ALLOWED_HOSTS",
        _DJANGO,
        "list",
        "the host names the site answers to; required in production",
        default_doc="`127.0.0.1,localhost,testserver` in development; none in production",
        values="host names",
    ),
    Variable(
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        _DJANGO,
        "list",
        "origins such as `https://ab.example.com`, when behind a proxy on another origin",
        default=(),
        values="origins",
    ),
    Variable(
        "DJANGO_TIME_ZONE",
        _DJANGO,
        "text",
        "time zone of dates shown and of Celery beat",
        default="UTC",
        values="a time zone name such as `Europe/Paris`",
    ),
    Variable(
        "DJANGO_STATIC_ROOT",
        _DJANGO,
        "text",
        "where `collectstatic` puts files",
        default_doc="`$ABPLATFORM_VAR_DIR/static`",
        values="a folder",
    ),
    Variable(
        "DJANGO_SECURE_COOKIES", _DJANGO, "boolean", "secure session and CSRF cookies", default_doc=_IN_PRODUCTION
    ),
    Variable("DJANGO_SECURE_SSL_REDIRECT", _DJANGO, "boolean", "redirect HTTP to HTTPS", default_doc=_IN_PRODUCTION),
    Variable(
        "DJANGO_HSTS_SECONDS",
        _DJANGO,
        "integer",
        "HSTS max-age (with subdomains when above 0)",
        default_doc="`31536000` (a year) in production, `0` in development",
        minimum=0,
    ),
    Variable("DJANGO_HSTS_PRELOAD", _DJANGO, "boolean", "HSTS preload", default_doc=_IN_PRODUCTION),
    Variable(
        "DJANGO_BEHIND_PROXY",
        _DJANGO,
        "boolean",
        "`true` when a proxy terminates TLS and sets `X-Forwarded-Proto`",
        default=False,
    ),
    Variable(
        "DATABASE_URL",
        _SERVERS,
        "database URL",
        "the PostgreSQL server; a socket folder works as a percent-encoded host "
        "(`postgres://postgres@%2Fvar%2Frun%2Fpostgresql/abplatform`). No other database is supported",
        default_doc="unset: the embedded PostgreSQL in `$ABPLATFORM_VAR_DIR/postgres`",
        values="`postgres://USER:PASSWORD@HOST:PORT/NAME`",
    ),
    Variable(
        "CELERY_BROKER_URL",
        _SERVERS,
        "text",
        "the Celery broker; `filesystem://` needs no server",
        default="filesystem://",
        values="`filesystem://`, `redis://HOST:6379/0` or `amqp://guest:guest@HOST:5672//`",
    ),
    Variable(
        "CELERY_RESULT_BACKEND",
        _SERVERS,
        "text",
        "where task results go; `django-db` is the platform's database",
        default="django-db",
        values="`django-db` or any Celery result backend URL",
    ),
    Variable(
        "ABPLATFORM_METRICS_TOKEN",
        _OPERATIONS,
        "text",
        "a bearer token (16+ characters) that lets a scraper read `/metrics` from any address; empty: none",
        default="",
    ),
    Variable(
        "ABPLATFORM_METRICS_ALLOW",
        _OPERATIONS,
        "networks",
        "the networks (a bare address is one host) whose requests may read `/metrics` without the token; empty: none",
        default=("127.0.0.0/8", "::1/128"),
    ),
    Variable(
        "PROMETHEUS_MULTIPROC_DIR",
        _OPERATIONS,
        "text",
        "where the web processes' metric files are added up; emptied by `manage.py clear_metrics` (and "
        "gunicorn's start)",
        default_doc="`$ABPLATFORM_VAR_DIR/prometheus`",
        values="a folder",
    ),
    Variable(
        "ABPLATFORM_WORKER_HEARTBEAT_SECONDS",
        _OPERATIONS,
        "integer",
        "how often each Celery worker writes its heartbeat row; `/readyz` presumes a worker gone after three "
        "missed beats",
        default=10,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_READY_WORKER_QUEUES",
        _OPERATIONS,
        "list",
        "the queues `/readyz` wants a live worker for",
        default=("default", "training"),
        values="queue names",
    ),
    Variable(
        "ABPLATFORM_READY_MAX_ROLLUP_LAG_SECONDS",
        _OPERATIONS,
        "integer",
        "`/readyz` fails when a running experiment has an event older than this not folded into the rollups",
        default=300,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_ALERT_NO_EVENTS_MINUTES",
        _OPERATIONS,
        "integer",
        "the `no_events` alert opens when a running experiment received no event for this many minutes",
        default=30,
        minimum=1,
    ),
    Variable(
        "ABPLATFORM_LOG_FORMAT",
        _OPERATIONS,
        "choice",
        "`json` (one JSON object per line, with the request id) or `text`",
        default_doc="`json` in production, `text` otherwise",
        choices=("json", "text"),
    ),
    Variable(
        "SENTRY_DSN",
        _OPERATIONS,
        "text",
        "report errors to Sentry; sentry-sdk is not imported without it",
        default="",
    ),
    Variable(
        "SENTRY_ENVIRONMENT",
        _OPERATIONS,
        "text",
        "the environment name of the Sentry events",
        default_doc="`$ABPLATFORM_ENV`",
    ),
    Variable(
        "SENTRY_TRACES_SAMPLE_RATE",
        _OPERATIONS,
        "number",
        "share of requests traced for Sentry's performance monitoring",
        default=0.0,
        minimum=0.0,
        maximum=1.0,
    ),
    Variable(
        "LOG_LEVEL",
        _TESTS,
        "choice",
        "the level of the log on the console",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Variable(
        "ABPLATFORM_CHROMIUM",
        _TESTS,
        "text",
        "tests only: where the browser tests find Chromium (Debian's package)",
        default="/usr/bin/chromium",
        values="a file",
        read_by="tests/browser/conftest.py",
    ),
    Variable(
        "CI",
        _TESTS,
        "text",
        "tests only: when set, the suite refuses the embedded defaults unless `DATABASE_URL` and "
        "`CELERY_BROKER_URL` name real servers (`.ci/run` sets it, and `ABPLATFORM_CI_EMBEDDED` for its "
        "second run on the embedded defaults), and a test that would be skipped for lack of data fails",
        default_doc="unset",
        values="any value",
        read_by="tests/conftest.py",
    ),
)


class Registry:
    """The declared variables by name, with typed readers that take each one's declaration into account.

    A reader refuses a variable that is not declared, or declared with another kind, so every
    variable settings.py reads is on the Settings page. The default is the declaration's, or the
    caller's when settings.py computes it; never both.
    """

    def __init__(self, variables: Sequence[Variable]) -> None:
        self.variables = tuple(variables)
        self._by_name = {variable.name: variable for variable in self.variables}
        if len(self._by_name) != len(self.variables):
            raise ValueError("A variable is declared twice.")

    def __iter__(self) -> Iterator[Variable]:
        return iter(self.variables)

    def __getitem__(self, name: str) -> Variable:
        return self._by_name[name]

    def groups(self) -> list[str]:
        """The groups, in the order of their first variable."""
        return list(dict.fromkeys(variable.group for variable in self.variables))

    def _declared(self, name: str, kind: Kind, default: object) -> Variable:
        variable = self._by_name.get(name)
        if variable is None:
            raise ImproperlyConfigured(f"{name} is read but not declared in abplatform.env.VARIABLES.")
        if variable.kind != kind:
            raise ImproperlyConfigured(f"{name} is declared as {variable.kind} but read as {kind}.")
        if default is not None and variable.default is not None:
            raise ImproperlyConfigured(f"{name} has a default in its declaration and from its reader: keep one.")
        return variable

    def text(self, name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
        """A text variable; required (ImproperlyConfigured when unset) when it has no default."""
        variable = self._declared(name, "text", default)
        fixed = variable.default if isinstance(variable.default, str) else None
        return env_str(name, default if default is not None else fixed, environ=environ)

    def boolean(self, name: str, default: bool | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
        variable = self._declared(name, "boolean", default)
        return env_bool(name, _default(variable, default, bool), environ=environ)

    def integer(self, name: str, default: int | None = None, *, environ: Mapping[str, str] | None = None) -> int:
        variable = self._declared(name, "integer", default)
        value = _default(variable, default, int)
        low = None if variable.minimum is None else int(variable.minimum)
        high = None if variable.maximum is None else int(variable.maximum)
        return env_int(name, value, minimum=low, maximum=high, environ=environ)

    def number(self, name: str, default: float | None = None, *, environ: Mapping[str, str] | None = None) -> float:
        variable = self._declared(name, "number", default)
        value = float(_default(variable, default, (int, float)))  # type: ignore[arg-type]
        return env_float(name, value, minimum=variable.minimum, maximum=variable.maximum, environ=environ)

    def networks(
        self, name: str, default: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None
    ) -> list[str]:
        variable = self._declared(name, "networks", default)
        given = None if default is None else tuple(default)
        return env_networks(name, _default(variable, given, tuple), environ=environ)

    def choice(self, name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
        variable = self._declared(name, "choice", default)
        return env_choice(name, _default(variable, default, str), variable.choices, environ=environ)

    def text_list(
        self, name: str, default: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None
    ) -> list[str]:
        variable = self._declared(name, "list", default)
        return env_list(name, _default(variable, None if default is None else tuple(default), tuple), environ=environ)

    def database(self, name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, object] | None:
        self._declared(name, "database URL", None)
        return env_database(name, environ=environ)


def _default(variable: Variable, given: _T | None, kind: type[_T]) -> _T:
    value = variable.default if given is None else given
    if not isinstance(value, kind):
        raise ImproperlyConfigured(f"{variable.name} has no default {kind.__name__}: declare one or pass one.")
    return value


VARIABLES = Registry(_DECLARED)
