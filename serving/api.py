"""REST endpoints of the data plane: recommendations and events (the lean WSGI path, serving.lean,
answers the same requests faster; both share serving.endpoints)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import ErrorSerializer, error_response, errors
from core.parsers import BoundedJSONParser
from serving.authentication import SIMULATION_NEEDS_SCOPE, ApiTokenAuthentication, may_simulate, token_scope
from serving.endpoints import ingest_answer, recommendations_answer
from serving.limits import MAX_BATCH
from serving.models import ApiToken
from serving.serializers import EventInput, IngestAnswer, RecommendationAnswer, RecommendationRequest

TOKEN_REFUSED = "The API token lacks the {scope!r} scope, or the request is a signed-in user's (traffic needs a token)."
SESSION_AND_TOKEN: list[type[BaseAuthentication]] = [
    ApiTokenAuthentication,
    *[cls for cls in APIView.authentication_classes if cls is not ApiTokenAuthentication],
]


def _token(request: Request) -> ApiToken | None:
    """The request's API token (the views' permission already demands one)."""
    return request.auth if isinstance(request.auth, ApiToken) else None


class RecommendationsView(APIView):
    """POST /api/v1/experiments/{key}/recommendations: the arm's top-k for a user, logged (exposure, impressions)."""

    authentication_classes = SESSION_AND_TOKEN
    permission_classes = [token_scope("serve")]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        # A signed-in user is authenticated, then refused: traffic needs a token. (drf-spectacular types `auth`
        # as names, but writes it as the security requirements it is.)
        auth=[{"apiToken": []}],  # type: ignore[list-item]
        request=RecommendationRequest,
        responses={
            200: RecommendationAnswer,
            **errors(400, 401),
            403: error_response(
                403, TOKEN_REFUSED.format(scope="serve") + " A body naming a `simulation` needs the 'simulate' scope."
            ),
            404: error_response(404, "No experiment with this key."),
            409: error_response(
                409, "The experiment does not serve traffic: never started (a draft), concluded or archived."
            ),
            413: error_response(413),
        },
    )
    def post(self, request: Request, key: str) -> Response:
        form = RecommendationRequest(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        simulation = data.get("simulation")
        if simulation is not None and not may_simulate(request.auth):
            raise PermissionDenied(SIMULATION_NEEDS_SCOPE)
        status_code, answer = recommendations_answer(
            key, data["user_id"], data["k"], data["query"], simulation, token=_token(request)
        )
        return Response(answer, status=status_code)


class EventsView(APIView):
    """POST /api/v1/events: a batch of up to 10,000 events; each event_id is stored once."""

    authentication_classes = SESSION_AND_TOKEN
    permission_classes = [token_scope("ingest")]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        # A signed-in user is authenticated, then refused: traffic needs a token. (drf-spectacular types `auth`
        # as names, but writes it as the security requirements it is.)
        auth=[{"apiToken": []}],  # type: ignore[list-item]
        request=EventInput(many=True),
        responses={
            200: OpenApiResponse(
                IngestAnswer, description="Stored (valid events are stored even when others are not)."
            ),
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="IngestRefusal",
                    serializers=[IngestAnswer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description="Every event is invalid (the answer, with each event's error), or the batch is refused "
                'whole (`detail`: the body is neither a list of events nor {"events": [...]}, or is not JSON).',
            ),
            **errors(401),
            403: error_response(403, TOKEN_REFUSED.format(scope="ingest")),
            413: error_response(413, f"More than {MAX_BATCH:,} events, or a body too large (`detail` says which)."),
        },
    )
    def post(self, request: Request) -> Response:
        status_code, answer = ingest_answer(request.data, _token(request))
        return Response(answer, status=status_code)
