"""REST endpoints of simulated traffic: queue, list, follow and cancel an experiment's simulation runs.

    GET  /api/v1/experiments/{key}/simulations              runs of the experiment, newest first
    POST /api/v1/experiments/{key}/simulations              queue a run (settings as in SimulationConfig)
    GET  /api/v1/experiments/{key}/simulations/{id}         one run: status, progress, message, totals
    POST /api/v1/experiments/{key}/simulations/{id}/cancel  stop it before its next day

Everyone with a role reads; product managers (``run_experiment``) queue and cancel.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import RETRY_AFTER, error_response, errors
from engine.simulation.config import ARRIVALS, MAX_POPULATION_SCALE
from experiments.models import Experiment
from simulation.models import SimulationRun
from simulation.services.runs import SimulationRefused, cancel_simulation
from simulation.tasks import queue_simulation


class SimulationPermission(permissions.BasePermission):
    message = "Your role may not do this: product managers run and cancel simulations."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return bool(user.has_perm("experiments.view_experiment"))
        return bool(user.has_perm("experiments.run_experiment"))


class SimulationRunSerializer(serializers.ModelSerializer[SimulationRun]):
    experiment = serializers.CharField(source="experiment.key", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)

    class Meta:
        model = SimulationRun
        fields = ["id", "experiment", "status", "progress", "message", "config", "sessions", "impressions", "clicks",
                  "purchases", "cancel_requested", "requested_by", "queued_at", "started_at", "finished_at",
                  "error"]  # fmt: skip
        read_only_fields = fields


class SimulationInput(serializers.Serializer[Any]):
    daily_users = serializers.FloatField(required=False, help_text="mean sessions per simulated day")
    days = serializers.IntegerField(required=False)
    seed = serializers.IntegerField(required=False)
    injected_effect = serializers.FloatField(required=False, help_text="relative lift of P(click), e.g. 0.1")
    injected_arm = serializers.IntegerField(required=False)
    search_share = serializers.FloatField(required=False)
    arrivals = serializers.ChoiceField(
        choices=ARRIVALS, required=False,
        help_text="at-start (default): every shopper may come from day 0; uniform / first-purchase: first visits "
        "spread over the run (uniformly / by the shoppers' real first purchases), so new shoppers keep arriving",
    )  # fmt: skip
    population_scale = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_POPULATION_SCALE,
        help_text="simulate a shop this many times as large: each real shopper stands for this many shoppers with "
        "the same tastes and their own arm, visits and clicks (default 1)",
    )  # fmt: skip


def _experiment(key: str) -> Experiment:
    return get_object_or_404(Experiment, key=key)


class SimulationListView(APIView):
    permission_classes = [SimulationPermission]

    @extend_schema(responses={200: SimulationRunSerializer(many=True), **errors(403, 404)})
    def get(self, request: Request, key: str) -> Response:
        runs = _experiment(key).simulations.select_related("experiment", "requested_by").order_by("-queued_at", "-pk")
        return Response(SimulationRunSerializer(runs, many=True).data)

    @extend_schema(
        request=SimulationInput,
        responses={
            201: SimulationRunSerializer,
            **errors(400, 403, 404, 503),
            409: error_response(
                409,
                "The experiment cannot be simulated (not started, no trained arm) or a setting is refused "
                "(`detail` says why).",
            ),
        },
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request, key: str) -> Response:
        form = SimulationInput(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = queue_simulation(_experiment(key), dict(form.validated_data), requested_by=request.user)  # type: ignore[arg-type]
        except SimulationRefused as error:
            return Response({"detail": str(error)}, status=409)
        return Response(SimulationRunSerializer(run).data, status=status.HTTP_201_CREATED)


class SimulationDetailView(APIView):
    permission_classes = [SimulationPermission]

    @extend_schema(responses={200: SimulationRunSerializer, **errors(403, 404)})
    def get(self, request: Request, key: str, run_id: int) -> Response:
        run = get_object_or_404(SimulationRun.objects.select_related("experiment"), pk=run_id, experiment__key=key)
        return Response(SimulationRunSerializer(run).data)


class SimulationCancelView(APIView):
    permission_classes = [SimulationPermission]

    @extend_schema(
        request=None,
        responses={
            200: SimulationRunSerializer,
            **errors(403, 404),
            409: error_response(409, "The run has already finished."),
        },
    )
    def post(self, request: Request, key: str, run_id: int) -> Response:
        """Cancel a queued run at once, or a running one before its next simulated day."""
        run = get_object_or_404(SimulationRun.objects.select_related("experiment"), pk=run_id, experiment__key=key)
        try:
            run = cancel_simulation(run)
        except SimulationRefused as error:
            return Response({"detail": str(error)}, status=409)
        return Response(SimulationRunSerializer(run).data)
