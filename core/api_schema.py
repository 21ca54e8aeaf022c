"""The API's refusals in the OpenAPI schema (drf-spectacular), shared by every app's endpoints.

Every refusal is JSON. A 400 carries the reasons under each field name (DRF's validation errors and the
services' own, e.g. `{"name": ["..."]}`), or under `detail` when the body is not JSON or the refusal is not
about one field; 401, 403, 404, 409, 413 and 503 carry a `detail` (core.api_errors answers 413 and 503,
the latter with a Retry-After header). An endpoint lists its own with ``errors``:

    @extend_schema(responses={201: RunSerializer, **errors(400, 403, 404, 503)}, parameters=[RETRY_AFTER])

and ``error_response(code, description)`` says what a code means for that endpoint when the default does not.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from core.api_errors import QUEUE_RETRY_AFTER


class ErrorSerializer(serializers.Serializer[Any]):
    """A refusal: what went wrong, in a sentence."""

    detail = serializers.CharField(help_text="why the request was refused")


class ValidationErrorSerializer(serializers.Serializer[Any]):
    """Invalid input: the reasons under each field name. Its schema is written by ``ValidationErrorSchema``:
    the field names are those of each request."""


class ValidationErrorSchema(OpenApiSerializerExtension):  # type: ignore[misc,no-untyped-call]
    """The schema of ``ValidationErrorSerializer`` (drf-spectacular finds extensions when their module is imported,
    which every API module using ``errors`` does)."""

    target_class = "core.api_schema.ValidationErrorSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        reasons = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": "The reasons under each field name of the request: a list of reasons, e.g. "
            '`{"k": ["Ensure this value is less than or equal to 100."]}`, or one reason when the service '
            'refused the value, e.g. `{"arms": "exactly one arm must be the control"}`; a list field\'s reasons '
            "are given per element (an object of the element's fields, `{}` for a valid one).",
            "properties": {
                "detail": {
                    "type": "string",
                    "description": "a refusal that is not about one field (e.g. a body that is not JSON)",
                },
                "non_field_errors": {**reasons, "description": "reasons about the fields together"},
            },
            "additionalProperties": {
                "oneOf": [
                    {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}},
                    {"type": "string"},
                    {
                        "type": "object",
                        "description": "a list field's reasons by the index of the element refused, e.g. "
                        '`{"3": ["This field may not be blank."]}`',
                    },
                ]
            },
        }


DESCRIPTIONS = {
    400: "Invalid input: the reasons under each field name (under `detail` when the body is not JSON).",
    401: "No valid API token: the header is missing a known, unrevoked token (`WWW-Authenticate: Bearer`).",
    403: "Not logged in, or the user's role may not do this (`detail` says which role may).",
    404: "No such object (or no experiment with this key).",
    409: "Not allowed in the object's current state.",
    413: "The request body is too large (`detail` gives the limit); send smaller batches.",
    503: "The task broker did not take the job: it is recorded as failed with the reason, and nothing runs. "
    "Ask again after the Retry-After header's seconds.",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[503],
    description=f"seconds to wait before asking again ({QUEUE_RETRY_AFTER})",
)


def error_response(code: int, description: str | None = None) -> OpenApiResponse:
    """The documented response of refusal `code` (a 400 has field errors, the others a `detail`)."""
    body = ValidationErrorSerializer if code == 400 else ErrorSerializer
    return OpenApiResponse(body, description=description or DESCRIPTIONS[code])


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented refusals `codes` with their default descriptions, for `extend_schema(responses=...)`."""
    return {code: error_response(code) for code in codes}


# The text DRF's CharField takes, as JSON Schema patterns: no NUL character, and, where blank is refused, some
# character besides whitespace, which it strips (str.isspace: \s and U+001C-U+001F, U+0085). NO_NUL takes no "":
# drf-spectacular adds the empty string as the other alternative of a oneOf when the field allows blank.
NO_NUL = "^[^\\u0000]+$"
SOME_TEXT = "^[^\\u0000]*[^\\s\\u0000\\u001c-\\u001f\\u0085][^\\u0000]*$"


@extend_schema_field({"type": "string", "minLength": 1, "pattern": SOME_TEXT})
class IdField(serializers.CharField):
    """An identifier (a user or event id): text with something besides spaces, without NUL. The schema says so
    (without the pattern it allowed "" and " ", which the field refuses)."""


@extend_schema_field({"type": "string", "pattern": NO_NUL})
class TextField(serializers.CharField):
    """Free text without NUL (a query; with allow_blank=True, "" too)."""
