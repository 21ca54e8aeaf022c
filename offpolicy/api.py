"""REST endpoints of off-policy estimates: queue a candidate variant's predicted CTR from an experiment's log, read it.

    GET  /api/v1/offpolicy-estimates             estimates, newest first (?variant=NAME@VERSION, ?experiment=KEY)
    POST /api/v1/offpolicy-estimates             queue one: {"variant": "NAME@VERSION", "experiment": KEY,
                                                 "seed": 0, "n_bootstrap": 1000, "clip": null}
    GET  /api/v1/offpolicy-estimates/{id}        one estimate: status, progress, IPS / SNIPS / DR, ESS, warnings

Everyone who may read variants reads; data scientists (``add_evaluation``) queue.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import RETRY_AFTER, error_response, errors
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from offpolicy.services.estimates import OffPolicyRefused
from offpolicy.tasks import queue_estimate
from recommenders.services.variants import VariantError, find_variant


class EstimatePermission(permissions.BasePermission):
    message = "Your role may not do this: data scientists queue off-policy estimates."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return bool(user.has_perm("recommenders.view_variant"))
        return bool(user.has_perm("recommenders.add_evaluation"))


class EstimateSerializer(serializers.ModelSerializer[OffPolicyEstimate]):
    variant = serializers.CharField(source="variant.label", read_only=True)
    experiment = serializers.CharField(source="experiment.key", read_only=True)
    training_run = serializers.IntegerField(source="training_run_id", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)

    class Meta:
        model = OffPolicyEstimate
        fields = ["id", "variant", "training_run", "experiment", "status", "progress", "message", "config", "n",
                  "requests", "effective_sample_size", "result", "warnings", "method", "error", "requested_by",
                  "queued_at", "started_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class EstimateInput(serializers.Serializer[Any]):
    variant = serializers.CharField(max_length=120, help_text="NAME@VERSION (or NAME) of a trained variant")
    experiment = serializers.SlugField(max_length=100, help_text="key of the experiment whose log to use")
    seed = serializers.IntegerField(required=False, min_value=0, help_text="bootstrap seed")
    n_bootstrap = serializers.IntegerField(required=False, min_value=100, max_value=20_000)
    clip = serializers.FloatField(required=False, allow_null=True, min_value=0.0, help_text="cap on the weights")


def _queryset() -> Any:
    return OffPolicyEstimate.objects.select_related("variant", "experiment", "requested_by").defer("traceback")


class EstimateListView(APIView):
    permission_classes = [EstimatePermission]

    @extend_schema(
        parameters=[
            OpenApiParameter("experiment", str, description="only the estimates from this experiment's log (its key)"),
            OpenApiParameter("variant", str, description="only the estimates of this variant (NAME@VERSION or NAME)"),
        ],
        responses={
            200: EstimateSerializer(many=True),
            400: error_response(400, "No such variant (under `variant`)."),
            **errors(403),
        },
    )
    def get(self, request: Request) -> Response:
        """The newest 100 estimates, newest first."""
        estimates = _queryset().order_by("-queued_at", "-pk")
        if request.query_params.get("experiment"):
            estimates = estimates.filter(experiment__key=request.query_params["experiment"])
        if request.query_params.get("variant"):
            try:
                variant = find_variant(request.query_params["variant"])
            except VariantError as error:
                return Response({"variant": list(error.errors.values())}, status=400)
            estimates = estimates.filter(variant=variant)
        return Response(EstimateSerializer(estimates[:100], many=True).data)

    @extend_schema(
        request=EstimateInput,
        responses={
            201: EstimateSerializer,
            400: error_response(
                400,
                "Invalid input, no such variant or experiment (under the field's name), or the estimate "
                "cannot be made from this log (`detail` says why).",
            ),
            **errors(403, 503),
        },
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        form = EstimateInput(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        try:
            variant = find_variant(data.pop("variant"))
        except VariantError as error:
            return Response({"variant": list(error.errors.values())}, status=400)
        experiment = Experiment.objects.filter(key=data.pop("experiment")).first()
        if experiment is None:
            return Response({"experiment": ["no experiment with this key"]}, status=400)
        try:
            estimate = queue_estimate(variant, experiment, data, requested_by=request.user)  # type: ignore[arg-type]
        except OffPolicyRefused as error:
            return Response({"detail": str(error)}, status=400)
        return Response(EstimateSerializer(_queryset().get(pk=estimate.pk)).data, status=status.HTTP_201_CREATED)


class EstimateDetailView(APIView):
    permission_classes = [EstimatePermission]

    @extend_schema(responses={200: EstimateSerializer, **errors(403, 404)})
    def get(self, request: Request, estimate_id: int) -> Response:
        return Response(EstimateSerializer(get_object_or_404(_queryset(), pk=estimate_id)).data)
