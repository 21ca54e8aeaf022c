"""Typed readers for environment variables.

Every setting of the platform comes from the environment through these helpers. A bad
value stops start-up with `ImproperlyConfigured` naming the variable and what it allows,
instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

from django.core.exceptions import ImproperlyConfigured

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
