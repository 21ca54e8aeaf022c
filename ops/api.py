"""REST endpoints of the alerts: the list (filtered by status and experiment), acknowledge and resolve."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_schema import error_response, errors
from ops.models import Alert
from ops.services.alerts import AlertStateError, acknowledge, resolve


class AlertSerializer(serializers.ModelSerializer[Alert]):
    experiment: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="key", read_only=True, allow_null=True
    )

    class Meta:
        model = Alert
        fields = ["id", "experiment", "rule", "severity", "status", "message", "opened_at"]


class AlertPermission(permissions.BasePermission):
    """Every role reads the alerts; product managers acknowledge and resolve them."""

    message = "Your role may not do this: product managers acknowledge and resolve alerts."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return bool(user.has_perm("ops.view_alert"))
        return bool(user.has_perm("ops.change_alert"))


step_schema = extend_schema(
    request=None,
    responses={
        200: AlertSerializer,
        **errors(403, 404),
        409: error_response(409, "The alert is not in a status this step applies to (`detail` says why)."),
    },
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Alert.Status.values, description="only this status"),
            OpenApiParameter("experiment", OpenApiTypes.STR, description="only this experiment's (its key)"),
        ],
        responses={200: AlertSerializer(many=True), **errors(403)},
    ),
)
class AlertViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Alert]):
    """The alerts the rules opened (docs/operations.md), newest first."""

    serializer_class = AlertSerializer
    permission_classes = [AlertPermission]

    def get_queryset(self) -> QuerySet[Alert]:
        alerts = Alert.objects.select_related("experiment").order_by("-opened_at", "-id")
        status = self.request.query_params.get("status")
        if status:
            alerts = alerts.filter(status=status)
        experiment = self.request.query_params.get("experiment")
        if experiment:
            alerts = alerts.filter(experiment__key=experiment)
        return alerts

    def _step(self, step: Any) -> Response:
        try:
            alert = step(self.get_object(), self.request.user)
        except AlertStateError as error:
            return Response({"detail": str(error)}, status=409)
        return Response(AlertSerializer(alert).data)

    @step_schema
    @action(detail=True, methods=["post"], url_path="acknowledge")
    def acknowledge(self, request: Request, pk: str) -> Response:
        """Someone is on it: an open alert becomes acknowledged."""
        return self._step(acknowledge)

    @step_schema
    @action(detail=True, methods=["post"], url_path="resolve")
    def resolve(self, request: Request, pk: str) -> Response:
        """Resolve by hand (if the condition still holds, the next evaluation opens a new alert)."""
        return self._step(resolve)
