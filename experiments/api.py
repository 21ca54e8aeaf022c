"""REST endpoints of experiments: configuration, lifecycle, early reads, audit log and decisions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_schema import error_response, errors
from experiments.models import Experiment
from experiments.serializers import (
    ChangeSerializer,
    DecisionSerializer,
    EarlyReadAnswerSerializer,
    ExperimentInput,
    ExperimentPatch,
    ExperimentSerializer,
)
from experiments.services.lifecycle import (
    TRANSITIONS,
    ArmSpec,
    ExperimentError,
    ExperimentSpec,
    TransitionError,
    create_experiment,
    record_decision,
    record_early_read,
    transition,
    update_experiment,
)


class ExperimentPermission(permissions.BasePermission):
    """Everyone with a role reads; product managers create, edit and run; reviewers record decisions."""

    message = "Your role may not do this: product managers configure and run experiments, reviewers decide."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        act = getattr(view, "action", None)
        if request.method in permissions.SAFE_METHODS:
            return bool(user.has_perm("experiments.view_experiment"))
        if act == "decisions":
            return bool(user.has_perm("experiments.record_decision"))
        if act in TRANSITIONS or act == "early_read":
            return bool(user.has_perm("experiments.run_experiment"))
        if act == "create":
            return bool(user.has_perm("experiments.add_experiment"))
        return bool(user.has_perm("experiments.change_experiment"))


def experiment_for(key: str) -> Experiment:
    """The experiment with this key, or a 404."""
    return get_object_or_404(Experiment, key=key)


def _arms(data: list[dict[str, Any]]) -> list[ArmSpec]:
    return [ArmSpec(**arm) for arm in data]


# The lifecycle actions (start, pause, resume, stop, conclude, archive) answer alike.
transition_schema = extend_schema(
    request=None,
    responses={
        200: ExperimentSerializer,
        **errors(403, 404),
        409: error_response(409, "The action is not allowed in the experiment's current state (`detail` says why)."),
    },
)


@extend_schema_view(
    list=extend_schema(responses={200: ExperimentSerializer(many=True), **errors(403)}),
    retrieve=extend_schema(responses={200: ExperimentSerializer, **errors(403, 404)}),
)
class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Experiment]):
    queryset = Experiment.objects.select_related("owner").prefetch_related("arms__variant").order_by("-created_at")
    serializer_class = ExperimentSerializer
    permission_classes = [ExperimentPermission]
    lookup_field = "key"
    lookup_value_regex = r"[-\w]+"

    @extend_schema(request=ExperimentInput, responses={201: ExperimentSerializer, **errors(400, 403)})
    def create(self, request: Request) -> Response:
        form = ExperimentInput(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        arms = _arms(data.pop("arms"))
        try:
            experiment = create_experiment(ExperimentSpec(arms=arms, **data), owner=request.user)  # type: ignore[arg-type]
        except ExperimentError as error:
            return Response(error.errors, status=400)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ExperimentPatch,
        responses={
            200: ExperimentSerializer,
            **errors(400, 403, 404),
            409: error_response(409, "The experiment is no longer a draft: the field can no longer change."),
        },
    )
    def partial_update(self, request: Request, key: str) -> Response:
        form = ExperimentPatch(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        arms = _arms(data.pop("arms")) if "arms" in data else None
        try:
            experiment = update_experiment(self.get_object(), data, request.user, arms=arms)  # type: ignore[arg-type]
        except ExperimentError as error:
            return Response(error.errors, status=400)
        except TransitionError as error:
            return Response({"detail": str(error)}, status=409)
        return Response(ExperimentSerializer(experiment).data)

    def _transition(self, request: Request, key: str, name: str) -> Response:
        try:
            experiment = transition(self.get_object(), name, request.user)  # type: ignore[arg-type]
        except TransitionError as error:
            return Response({"detail": str(error)}, status=409)
        return Response(ExperimentSerializer(experiment).data)

    @transition_schema
    @action(detail=True, methods=["post"])
    def start(self, request: Request, key: str) -> Response:
        """Freeze the arms' trained models, reserve the layer range and start assigning traffic."""
        return self._transition(request, key, "start")

    @transition_schema
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, key: str) -> Response:
        return self._transition(request, key, "pause")

    @transition_schema
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, key: str) -> Response:
        return self._transition(request, key, "resume")

    @transition_schema
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, key: str) -> Response:
        return self._transition(request, key, "stop")

    @transition_schema
    @action(detail=True, methods=["post"])
    def conclude(self, request: Request, key: str) -> Response:
        return self._transition(request, key, "conclude")

    @transition_schema
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, key: str) -> Response:
        return self._transition(request, key, "archive")

    @extend_schema(
        request=inline_serializer("EarlyRead", {"reason": serializers.CharField()}),
        responses={201: EarlyReadAnswerSerializer, **errors(403, 404),
                   400: error_response(400, "No reason, or the experiment is sequential (under `reason`)."),
                   409: error_response(409, "A draft, or an early read was recorded already.")},
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="early-read")
    def early_read(self, request: Request, key: str) -> Response:
        """A product manager reads a fixed-horizon verdict before the plan's sample size, saying why (audited,
        shown beside the verdict in the results and the report)."""
        reason = request.data.get("reason") if isinstance(request.data, dict) else None
        try:
            override = record_early_read(self.get_object(), request.user, str(reason or ""))  # type: ignore[arg-type]
        except ExperimentError as error:
            return Response(error.errors, status=400)
        except TransitionError as error:
            return Response({"detail": str(error)}, status=409)
        answer = {"by": override.user.username, "reason": override.reason, "at": override.at}
        return Response(EarlyReadAnswerSerializer(answer).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ChangeSerializer(many=True), **errors(403, 404)})
    @action(detail=True, methods=["get"], pagination_class=None)  # the whole list, unpaginated
    def changes(self, request: Request, key: str) -> Response:
        """The audit log: who changed what, when, with the values before and after."""
        return Response(ChangeSerializer(self.get_object().changes.select_related("user"), many=True).data)

    @extend_schema(methods=["GET"], responses={200: DecisionSerializer(many=True), **errors(403, 404)})
    @extend_schema(
        methods=["POST"],
        request=DecisionSerializer,
        responses={
            201: DecisionSerializer,
            **errors(400, 403, 404),
            409: error_response(409, "The experiment is not stopped or concluded yet: stop it before deciding."),
        },
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)  # the whole list, unpaginated
    def decisions(self, request: Request, key: str) -> Response:
        """Reviewers record a decision (ship, keep control, iterate, inconclusive) with a rationale."""
        experiment = self.get_object()
        if request.method == "GET":
            return Response(
                DecisionSerializer(experiment.decisions.select_related("reviewer", "winning_arm"), many=True).data
            )
        form = DecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        arm_name = (form.validated_data.pop("winning_arm", None) or {}).get("name")
        try:
            decision = record_decision(experiment, request.user, form.validated_data["outcome"],  # type: ignore[arg-type]
                                       form.validated_data["rationale"], arm_name)  # fmt: skip
        except ExperimentError as error:
            return Response(error.errors, status=400)
        except TransitionError as error:
            return Response({"detail": str(error)}, status=409)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)
