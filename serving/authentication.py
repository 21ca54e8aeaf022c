"""DRF authentication by API token (`Authorization: Bearer abp_...` or `Token abp_...`), with scopes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from serving.models import ApiToken
from serving.services.tokens import FAILURE_WINDOW, blocked, find_token, note_failure


class TokenClient:
    """The `request.user` of a token-authenticated request: a client, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.username = f"token:{token.name}"
        self.pk = None

    def has_perm(self, perm: str) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[TokenClient, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode().lower() not in self.keywords:
            return None
        address = request.META.get("REMOTE_ADDR", "")
        if blocked(address):
            raise exceptions.Throttled(
                wait=FAILURE_WINDOW,
                detail=f"Too many unknown or revoked API tokens from this address; retry in {FAILURE_WINDOW:g} "
                "seconds.",
            )
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        token = find_token(header[1].decode(errors="replace"))
        if token is None:
            note_failure(address)
            raise exceptions.AuthenticationFailed("Unknown or revoked API token.")
        return TokenClient(token), token

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def token_scope(scope: str) -> type[permissions.BasePermission]:
    """A permission: an API token holding `scope`. Traffic (served recommendations, events) is written by
    shops with tokens only: a signed-in person, whatever their role, is refused, so that no reviewer or
    data scientist can add clicks or purchases to an experiment (people try models through the pages)."""

    class HasScope(permissions.BasePermission):
        message = (
            f"This endpoint writes experiment traffic: it needs an API token with the {scope!r} scope "
            "(manage.py create_api_token); signed-in users try recommendations on the variant pages."
        )

        def has_permission(self, request: Request, view: Any) -> bool:
            return isinstance(request.auth, ApiToken) and scope in request.auth.scopes

    HasScope.__name__ = f"HasScope_{scope}"
    return HasScope


SIMULATION_NEEDS_SCOPE = (
    "Only an API token with the 'simulate' scope may name a simulation run (the token of simulate --http; "
    "manage.py create_api_token NAME --scope serve --scope ingest --scope simulate)."
)


def may_simulate(token: Any) -> bool:
    """Whether a request authenticated by `token` (request.auth) may name a simulation run."""
    return isinstance(token, ApiToken) and ApiToken.Scope.SIMULATE in token.scopes


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[misc,no-untyped-call]
    """Documents the token scheme in the OpenAPI schema (drf-spectacular finds subclasses on import)."""

    target_class = "serving.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "manage.py create_api_token NAME"}
