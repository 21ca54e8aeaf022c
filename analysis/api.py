"""REST endpoints of the analysis: an experiment's results and its results by segment.

Routed beside the experiment endpoints (abplatform/api_urls.py), at the paths they always had.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.results_types import results_data
from analysis.serializers import RESULTS_RESPONSE, SegmentBreakdownSerializer, segment_breakdown_data
from analysis.services.arm_metrics import TRAFFIC
from analysis.services.results import experiment_results
from analysis.services.segments import DIMENSIONS, segment_results
from core.api_schema import error_response, errors
from experiments.api import ExperimentPermission, experiment_for


class ResultsView(APIView):
    """GET /api/v1/experiments/{key}/results/: the experiment's results, as the results page shows them."""

    permission_classes = [ExperimentPermission]

    @extend_schema(
        parameters=[
            OpenApiParameter("fold", bool, description="fold new events into the rollups first"),
            OpenApiParameter(
                "traffic",
                str,
                enum=["all", "live", "simulated"],
                description="users counted: live, simulated (simulation runs) or all (default)",
            ),
        ],
        responses={
            200: OpenApiResponse(
                RESULTS_RESPONSE,
                description="The results as of the last fold: ABResults for A/B "
                "and bandit experiments, InterleavingResults for interleaving ones (by `design`).",
            ),
            400: error_response(400, "Unknown traffic: the allowed values under `traffic`."),
            **errors(403, 404),
        },
    )
    def get(self, request: Request, key: str) -> Response:
        """Per-arm users, exposures, impressions, clicks, CTR, add-to-carts, purchases, conversion and revenue per
        user from the rollups, each treatment tested against the control by the experiment's analysis method (the
        verdict Bonferroni-adjusted across treatments, the table of every metric Holm-adjusted), the guardrails,
        the warnings and the SRM check."""
        fold = request.query_params.get("fold", "").lower() in ("1", "true", "yes")
        traffic = request.query_params.get("traffic", "all")
        if traffic not in TRAFFIC:
            return Response({"traffic": [f"use one of {', '.join(TRAFFIC)}"]}, status=400)
        return Response(results_data(experiment_results(experiment_for(key), fold_first=fold, traffic=traffic)))


class SegmentsView(APIView):
    """GET /api/v1/experiments/{key}/segments/: the results by segment of one user attribute."""

    permission_classes = [ExperimentPermission]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "by", str, enum=list(DIMENSIONS),
                description="the user attribute: country (from the data set), user_type (new or returning) or "
                "session_type (search or browse); default country",
            ),
            OpenApiParameter(
                "traffic", str, enum=list(TRAFFIC),
                description="users counted: live, simulated (simulation runs) or all (default)",
            ),
        ],
        responses={
            200: SegmentBreakdownSerializer,
            400: error_response(400, "Unknown dimension or traffic: the reason under its parameter."),
            **errors(403, 404),
        },
    )  # fmt: skip
    def get(self, request: Request, key: str) -> Response:
        """Exploratory, not a verdict: the results by segment of one user attribute. Per segment and arm the
        exposed users and, on every metric (primary first), each treatment's relative lift against the
        segment's control users with the interval and p-value of the results' test for that metric,
        Holm-adjusted across the metric's segments. As of the last fold."""
        by = request.query_params.get("by", "country")
        if by not in DIMENSIONS:
            return Response({"by": [f"unknown dimension {by!r}: use one of {', '.join(DIMENSIONS)}"]}, status=400)
        traffic = request.query_params.get("traffic", "all")
        if traffic not in TRAFFIC:
            return Response({"traffic": [f"use one of {', '.join(TRAFFIC)}"]}, status=400)
        return Response(segment_breakdown_data(segment_results(experiment_for(key), by, traffic=traffic)))
