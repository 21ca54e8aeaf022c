"""The serving and ingestion endpoints' answers, shared by the DRF views and the lean WSGI path.

Each function takes already-parsed input and returns (HTTP status, JSON body), so the two
HTTP front ends cannot drift apart: experiments/api.py (documented in the OpenAPI schema,
session or token authentication) and serving/lean.py (token requests only, no Django
middleware or DRF).
"""

from __future__ import annotations

from typing import Any

from serving.limits import DEFAULT_K, MAX_ID_LENGTH, MAX_K, MAX_QUERY_LENGTH
from serving.models import ApiToken
from serving.services import events as event_service
from serving.services.config import LogWriter, ServingError, UnknownExperiment
from serving.services.serve import serve


def recommendations_answer(
    key: str, user_id: str, k: int, query: str | None, simulation: int | None = None, *,
    log: LogWriter | None = None, token: ApiToken | None = None,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """200 and the served list; 403 when the token is bound to other experiments, 404 for an unknown
    experiment, 409 when it does not serve traffic.

    `simulation`: the simulation run the request names (the caller checked the token may name one).
    """
    if token is not None and not token.allows(key):
        return 403, {"detail": token.bound_message(key)}
    try:
        return 200, serve(key, user_id, k, query or None, log=log, simulation=simulation)
    except UnknownExperiment as error:
        return 404, {"detail": str(error)}
    except ServingError as error:
        return 409, {"detail": str(error)}


def ingest_answer(body: Any, token: ApiToken | None = None) -> tuple[int, dict[str, Any]]:
    """Store a batch (a list, or {"events": [...]}); 400 when it is refused whole or every event is invalid.

    A token bound to experiments has each event naming another experiment refused with its index.
    """
    events = body.get("events") if isinstance(body, dict) else body
    try:
        result = event_service.ingest(events, token=token)
    except event_service.BatchError as error:
        return error.status, {"detail": str(error)}
    answer = {"received": result.received, "stored": result.stored, "duplicates": result.duplicates,
              "rejected": len(result.errors), "errors": result.errors}  # fmt: skip
    return (400 if result.errors and len(result.errors) == result.received else 200), answer


def plain_recommendation_request(body: Any) -> tuple[str, int, str, int | None] | None:
    """(user_id, k, query, simulation) when the body is plainly valid for RecommendationRequest, else None.

    Plainly valid (serving.limits): a JSON object whose user_id is printable text of 1 to
    MAX_ID_LENGTH characters without surrounding spaces, k (default DEFAULT_K) a whole number
    from 1 to MAX_K, query (default "") printable text of at most MAX_QUERY_LENGTH characters
    without surrounding spaces, context an object, simulation (default None) a whole number from 1.
    Anything else (including what the serializer would coerce, such as a numeric user_id) is
    None: the caller lets the DRF serializer decide, so every refusal has its wording.
    """
    if type(body) is not dict:
        return None
    user_id, k, query = body.get("user_id"), body.get("k", DEFAULT_K), body.get("query", "")
    if not (_plain_text(user_id, MAX_ID_LENGTH) and user_id and type(k) is int and 1 <= k <= MAX_K):
        return None
    if not _plain_text(query, MAX_QUERY_LENGTH) or type(body.get("context", {})) is not dict:
        return None
    simulation = body.get("simulation")
    if simulation is not None and not (type(simulation) is int and simulation >= 1):
        return None
    return user_id, k, query, simulation


def _plain_text(value: Any, limit: int) -> bool:
    # isprintable() is False for NUL, control characters and lone surrogates, which DRF refuses.
    return type(value) is str and len(value) <= limit and value.isprintable() and value == value.strip()
