"""API tokens for shops and the simulator: the secret is shown once, only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Sequence
from datetime import timedelta

from cachetools import TTLCache
from django.db import IntegrityError
from django.utils import timezone

from experiments.models import Experiment
from serving.models import ApiToken

PREFIX = "abp_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute per token
CACHE_SECONDS = 2.0  # a revoked token stops working within this time
CACHE_SIZE = 10_000  # tokens a process remembers (the least recently used go first)
_cache: TTLCache[str, ApiToken] = TTLCache(maxsize=CACHE_SIZE, ttl=CACHE_SECONDS)  # by the secret's digest
_lock = threading.Lock()  # the cache reorders itself on reads too: every access holds the lock


# Token guessing: an address that sent FAILURE_LIMIT unknown or revoked tokens, each within
# FAILURE_WINDOW seconds of the last, is refused (429) until it has been quiet that long. Counted per
# server process, in memory: with P processes an address gets at most P x FAILURE_LIMIT guesses a window.
FAILURE_LIMIT = 20
FAILURE_WINDOW = 60.0
_failures: TTLCache[str, int] = TTLCache(maxsize=100_000, ttl=FAILURE_WINDOW)


class TokenError(Exception):
    pass


def note_failure(address: str) -> None:
    """Count a request from `address` with an unknown or revoked token (restarts its window)."""
    with _lock:
        _failures[address] = _failures.get(address, 0) + 1


def blocked(address: str) -> bool:
    """Whether `address` sent too many bad tokens lately (see FAILURE_LIMIT)."""
    with _lock:
        return _failures.get(address, 0) >= FAILURE_LIMIT


def create_token(name: str, scopes: Sequence[str], experiments: Sequence[str] = ()) -> tuple[ApiToken, str]:
    """Create a token; returns it and its secret (which is not stored and cannot be shown again).

    `experiments`: the keys of the experiments it may serve and write events for (empty: every one).
    """
    unknown = sorted(set(scopes) - set(ApiToken.Scope.values))
    if unknown or not scopes:
        raise TokenError(f"scopes must be among {', '.join(ApiToken.Scope.values)}; got {', '.join(scopes) or 'none'}")
    if not name.strip():
        raise TokenError("give the token a name (e.g. the shop that uses it)")
    unknown_experiments = sorted(
        set(experiments) - set(Experiment.objects.filter(key__in=experiments).values_list("key", flat=True))
    )
    if unknown_experiments:
        raise TokenError(f"no experiment {', '.join(map(repr, unknown_experiments))}: bind the token to existing keys")
    secret = PREFIX + secrets.token_urlsafe(32)
    try:
        token = ApiToken.objects.create(
            name=name.strip(),
            prefix=secret[: len(PREFIX) + 8],
            key_hash=_digest(secret),
            scopes=sorted(set(scopes)),
            experiments=sorted(set(experiments)),
        )
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists already") from None
    return token, secret


def find_token(secret: str) -> ApiToken | None:
    """The live token with this secret, or None; records when it was last used.

    Each process remembers a token for CACHE_SECONDS, so serving does not pay a query per
    request: a revocation takes effect within that time.
    """
    if not secret.startswith(PREFIX):
        return None
    digest = _digest(secret)
    with _lock:
        cached = _cache.get(digest)
    if cached is not None:
        return cached
    token = ApiToken.objects.filter(key_hash=digest, revoked_at__isnull=True).first()
    if token is not None:
        stamp = timezone.now()
        if token.last_used_at is None or stamp - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=stamp)
        with _lock:
            _cache[digest] = token
    return token


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _failures.clear()


def revoke_token(name: str) -> bool:
    """Revoke the live token `name` (other processes notice within CACHE_SECONDS)."""
    clear_cache()
    return bool(ApiToken.objects.filter(name=name, revoked_at__isnull=True).update(revoked_at=timezone.now()))


def _digest(secret: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so it cannot be guessed.
    return hashlib.sha256(secret.encode()).hexdigest()
