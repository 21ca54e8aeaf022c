"""REST endpoints of the data plane: recommendations and events (the lean WSGI path, serving.lean,
answers the same requests faster; both share serving.endpoints)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.parsers import BoundedJSONParser
from serving.authentication import ApiTokenAuthentication, token_scope
from serving.endpoints import ingest_answer, recommendations_answer
from serving.serializers import EventInput, IngestAnswer, RecommendationAnswer, RecommendationRequest

SESSION_AND_TOKEN = [
    ApiTokenAuthentication,
    *[cls for cls in APIView.authentication_classes if cls is not ApiTokenAuthentication],
]


class RecommendationsView(APIView):
    """POST /api/v1/experiments/{key}/recommendations: the arm's top-k for a user, logged (exposure, impressions)."""

    authentication_classes = SESSION_AND_TOKEN
    permission_classes = [token_scope("serve")]
    parser_classes = [BoundedJSONParser]

    @extend_schema(request=RecommendationRequest, responses={200: RecommendationAnswer})
    def post(self, request: Request, key: str) -> Response:
        form = RecommendationRequest(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        status_code, answer = recommendations_answer(key, data["user_id"], data["k"], data["query"])
        return Response(answer, status=status_code)


class EventsView(APIView):
    """POST /api/v1/events: a batch of up to 10,000 events; each event_id is stored once."""

    authentication_classes = SESSION_AND_TOKEN
    permission_classes = [token_scope("ingest")]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=EventInput(many=True),
        responses={200: IngestAnswer, 400: IngestAnswer, 413: OpenApiResponse(description="more than 10,000 events")},
    )
    def post(self, request: Request) -> Response:
        status_code, answer = ingest_answer(request.data)
        return Response(answer, status=status_code)
