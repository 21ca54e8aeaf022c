"""The data plane's request and answer shapes (the endpoints validate events themselves, for speed;
these document them in the OpenAPI schema). Their limits come from serving.limits,
as the lean path's do."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api_schema import IdField, TextField
from serving.limits import (
    DEFAULT_K,
    FUTURE_TOLERANCE,
    MAX_ID_LENGTH,
    MAX_K,
    MAX_POSITION,
    MAX_QUERY_LENGTH,
    REVENUE_DECIMALS,
    REVENUE_DIGITS,
)
from serving.models import Event


class RecommendationRequest(serializers.Serializer[Any]):
    user_id = IdField(max_length=MAX_ID_LENGTH)
    k = serializers.IntegerField(default=DEFAULT_K, min_value=1, max_value=MAX_K)
    query = TextField(required=False, allow_blank=True, max_length=MAX_QUERY_LENGTH, default="")
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]  # the field, not Field.context
    simulation = serializers.IntegerField(
        required=False, min_value=1,
        help_text="simulate --http only (a token with the 'simulate' scope): the simulation run this request is "
        "part of; a bandit experiment assigns the run's users by the run's own weight history",
    )  # fmt: skip


class RecommendedItem(serializers.Serializer[Any]):
    item_id = serializers.CharField()
    score = serializers.FloatField()
    position = serializers.IntegerField()
    team = serializers.ChoiceField(choices=["A", "B"], required=False,
                                   help_text="interleaved answers only: the contributing team")  # fmt: skip
    arm = serializers.CharField(required=False, help_text="interleaved answers only: the contributing arm's name")


class RecommendationAnswer(serializers.Serializer[Any]):
    request_id = serializers.UUIDField(help_text="send it with the impressions' clicks and purchases")
    experiment = serializers.CharField()
    arm = serializers.CharField(help_text='the arm served, or "interleaved" (both arms, team draft)')
    teams = serializers.DictField(child=serializers.CharField(), required=False,
                                  help_text='interleaved answers only: {"A": control arm, "B": other arm}')  # fmt: skip
    exposed = serializers.BooleanField(help_text="False when the user is outside the experiment (served control)")
    arm_probability = serializers.FloatField(help_text="probability that a random user is served this arm")
    explored = serializers.BooleanField(help_text="true when this request got the exploration share's random ordering")
    items = RecommendedItem(many=True)


class EventInput(serializers.Serializer[Any]):
    """One event (documentation: the endpoint validates events itself, one by one, for speed)."""

    event_id = IdField(max_length=MAX_ID_LENGTH, help_text="idempotency key: a repeat is stored once")
    type = serializers.ChoiceField(choices=Event.Type.values)
    user_id = IdField(max_length=MAX_ID_LENGTH)
    item_id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False)
    request_id = serializers.UUIDField(required=False, help_text="from the recommendations answer")
    experiment = serializers.CharField(max_length=MAX_ID_LENGTH, required=False, help_text="experiment key")
    position = serializers.IntegerField(required=False, min_value=1, max_value=MAX_POSITION)
    revenue = serializers.DecimalField(max_digits=REVENUE_DIGITS, decimal_places=REVENUE_DECIMALS, required=False,
                                       min_value=0)  # fmt: skip
    timestamp = serializers.DateTimeField(
        help_text=f"ISO 8601; at most {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes in the future"
    )


class EventError(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    event_id = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class IngestAnswer(serializers.Serializer[Any]):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = EventError(many=True)  # type: ignore[assignment]  # the answer's field, not Serializer.errors
