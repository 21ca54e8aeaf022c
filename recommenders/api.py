"""REST endpoints: algorithms, variants (register, list, train, evaluate, metrics, recommend), runs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import RETRY_AFTER, error_response, errors
from recommenders.algorithms import registry
from recommenders.models import Evaluation, TrainingRun, Variant
from recommenders.serializers import (
    AlgorithmSerializer,
    EvaluateSerializer,
    EvaluationSerializer,
    RecommendAnswerSerializer,
    RecommendSerializer,
    RegisterVariantSerializer,
    TrainingRunSerializer,
    VariantSerializer,
)
from recommenders.services.training import TrainingError
from recommenders.services.variants import VariantError, VariantSpec, register_variant
from recommenders.serving import NotTrained, recommend
from recommenders.tasks import queue_evaluation, queue_training


class VariantPermission(permissions.BasePermission):
    """Reading needs recommenders.view_variant; registering, training and evaluating need add_variant."""

    message = "Your role may not do this: data scientists register, train and evaluate variants."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS or getattr(view, "action", None) == "recommend":
            return bool(user.has_perm("recommenders.view_variant"))
        return bool(user.has_perm("recommenders.add_variant"))


class AlgorithmList(APIView):
    permission_classes = [VariantPermission]

    @extend_schema(responses={200: AlgorithmSerializer(many=True), **errors(403)})
    def get(self, request: Request) -> Response:
        """The registered algorithms with their parameters and defaults."""
        rows = []
        for name in registry.names():
            cls = registry.get(name)
            rows.append({"name": name, "supports_query": cls.supports_query, "params": cls.params_schema(),
                         "doc": (cls.__doc__ or "").strip().split("\n\n")[0]})  # fmt: skip
        return Response(rows)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("name", str, description="only the versions of the variant with this name")],
        responses={200: VariantSerializer(many=True), **errors(403)},
    ),
    retrieve=extend_schema(responses={200: VariantSerializer, **errors(403, 404)}),
)
class VariantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Variant]):
    queryset = Variant.objects.select_related("dataset", "author").order_by("name", "-version")
    serializer_class = VariantSerializer
    permission_classes = [VariantPermission]
    filterset_fields: list[str] = []

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()
        name = self.request.query_params.get("name")
        return queryset.filter(name=name) if name else queryset

    @extend_schema(request=RegisterVariantSerializer, responses={201: VariantSerializer, **errors(400, 403)})
    def create(self, request: Request) -> Response:
        """Register a variant (a new version when the name exists); parameters are validated per algorithm."""
        form = RegisterVariantSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            variant = register_variant(VariantSpec(**form.validated_data), author=request.user)  # type: ignore[arg-type]
        except VariantError as error:
            return Response({field: [message] for field, message in error.errors.items()}, status=400)
        return Response(VariantSerializer(variant).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, responses={202: TrainingRunSerializer, **errors(403, 404, 503)}, parameters=[RETRY_AFTER]
    )
    @action(detail=True, methods=["post"])
    def train(self, request: Request, pk: str) -> Response:
        """Queue a training run on the training queue; poll /api/v1/training-runs/{id}/ for progress."""
        run = queue_training(self.get_object(), requested_by=request.user)  # type: ignore[arg-type]
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=EvaluateSerializer,
        responses={202: EvaluationSerializer, **errors(400, 403, 404, 503)},
        parameters=[RETRY_AFTER],
    )
    @action(detail=True, methods=["post"])
    def evaluate(self, request: Request, pk: str) -> Response:
        """Queue an offline evaluation; poll /api/v1/evaluations/{id}/ for progress and metrics."""
        form = EvaluateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            evaluation = queue_evaluation(self.get_object(), requested_by=request.user, **form.validated_data)  # type: ignore[arg-type]
        except TrainingError as error:
            return Response({"detail": str(error)}, status=400)
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: EvaluationSerializer(many=True), **errors(403, 404)})
    @action(detail=True, methods=["get"], pagination_class=None)  # the whole list, unpaginated
    def metrics(self, request: Request, pk: str) -> Response:
        """The variant version's evaluations, newest first."""
        evaluations = self.get_object().evaluations.order_by("-queued_at")
        return Response(EvaluationSerializer(evaluations, many=True).data)

    @extend_schema(
        request=RecommendSerializer,
        responses={
            200: RecommendAnswerSerializer,
            **errors(400, 403, 404),
            409: error_response(409, "The variant version has no successful training run yet: train it first."),
        },
    )
    @action(detail=True, methods=["post"])
    def recommend(self, request: Request, pk: str) -> Response:
        """Try a trained variant: top-k items for a user (optionally for a search query), from its latest
        successful training run. Nothing is logged (experiments serve through their recommendations endpoint)."""
        form = RecommendSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            items = recommend(self.get_object(), form.validated_data["user_id"], form.validated_data["k"],
                              form.validated_data["query"] or None)  # fmt: skip
        except NotTrained as refusal:
            return Response({"detail": str(refusal)}, status=409)
        ranked = [{"item_id": r.item_id, "score": r.score, "position": i + 1} for i, r in enumerate(items)]
        return Response(RecommendAnswerSerializer({"items": ranked}).data)


@extend_schema_view(
    list=extend_schema(responses={200: TrainingRunSerializer(many=True), **errors(403)}),
    retrieve=extend_schema(responses={200: TrainingRunSerializer, **errors(403, 404)}),
)
class TrainingRunViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet[TrainingRun]):
    queryset = TrainingRun.objects.select_related("variant").order_by("-queued_at")
    serializer_class = TrainingRunSerializer
    permission_classes = [VariantPermission]


@extend_schema_view(
    list=extend_schema(responses={200: EvaluationSerializer(many=True), **errors(403)}),
    retrieve=extend_schema(responses={200: EvaluationSerializer, **errors(403, 404)}),
)
class EvaluationViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Evaluation]):
    queryset = Evaluation.objects.select_related("variant").order_by("-queued_at")
    serializer_class = EvaluationSerializer
    permission_classes = [VariantPermission]
