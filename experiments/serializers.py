"""REST representations of experiments, arms, audit entries, decisions and results by segment."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from experiments.models import Arm, Decision, Experiment, ExperimentChange


class ArmSerializer(serializers.ModelSerializer[Arm]):
    variant = serializers.CharField(source="variant.label")
    training_run = serializers.IntegerField(source="training_run_id", read_only=True, allow_null=True)

    class Meta:
        model = Arm
        fields = ["name", "variant", "weight", "is_control", "training_run"]


class ExperimentSerializer(serializers.ModelSerializer[Experiment]):
    owner = serializers.CharField(source="owner.username", read_only=True)
    arms = ArmSerializer(many=True)

    class Meta:
        model = Experiment
        fields = [
            "key", "name", "hypothesis", "owner", "design", "surface", "status", "traffic_percent",
            "exploration_percent", "layer", "layer_share_percent", "layer_start", "layer_end", "primary_metric",
            "secondary_metrics",
            "guardrail_metrics", "baseline_rate", "minimum_detectable_effect", "expected_daily_users", "alpha",
            "power", "analysis_method", "guardrail_tolerance", "auto_pause",
            "bandit_min_share", "bandit_burn_in_trials", "bandit_burn_in_periods",
            "bandit_update_minutes", "arms", "created_at", "started_at", "stopped_at", "concluded_at",
        ]  # fmt: skip
        read_only_fields = ["owner", "status", "layer_start", "layer_end", "created_at", "started_at", "stopped_at",
                            "concluded_at"]  # fmt: skip


MAX_DAILY_USERS = 1_000_000_000  # bounds the integers the database stores in 32-bit columns, with room to spare
MINUTES_A_YEAR = 525_600


class ArmInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=50)
    variant = serializers.CharField(max_length=120, help_text="NAME@VERSION of a trained variant")
    weight = serializers.FloatField(default=1.0)
    is_control = serializers.BooleanField(default=False)


class ExperimentInput(serializers.Serializer[Any]):
    """The fields a product manager sets; validation of their meaning happens in the service."""

    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    arms = ArmInput(many=True)
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    design = serializers.ChoiceField(
        choices=Experiment.Design.choices, required=False,
        help_text="ab, interleaving (exactly two arms: control = team A, the other = team B) or bandit",
    )  # fmt: skip
    surface = serializers.CharField(required=False)
    traffic_percent = serializers.FloatField(required=False)
    exploration_percent = serializers.FloatField(
        required=False, help_text="share of exposed requests served a random ordering of the arms' top items, 0-20"
    )
    layer = serializers.CharField(required=False, allow_blank=True)
    layer_share_percent = serializers.FloatField(required=False)
    primary_metric = serializers.CharField(required=False)
    secondary_metrics = serializers.ListField(child=serializers.CharField(), required=False)
    guardrail_metrics = serializers.ListField(child=serializers.CharField(), required=False)
    baseline_rate = serializers.FloatField(required=False, allow_null=True)
    minimum_detectable_effect = serializers.FloatField(required=False, allow_null=True)
    expected_daily_users = serializers.IntegerField(required=False, allow_null=True, max_value=MAX_DAILY_USERS)
    alpha = serializers.FloatField(required=False)
    power = serializers.FloatField(required=False)
    analysis_method = serializers.ChoiceField(
        choices=Experiment.AnalysisMethod.choices, required=False,
        help_text="sequential (default: always valid, safe to look at any time, also after an early stop) or "
        "fixed_horizon (needs baseline_rate and minimum_detectable_effect; the verdict waits for the plan)",
    )  # fmt: skip
    guardrail_tolerance = serializers.FloatField(
        required=False, help_text="relative drop a guardrail metric may show before it is breached, 0-1 (default 0)"
    )
    auto_pause = serializers.BooleanField(
        required=False, help_text="pause the experiment when an srm or guardrail alert opens (default false)"
    )
    bandit_min_share = serializers.FloatField(required=False)
    # Upper bounds only: the service words the refusal of values below its minimum.
    bandit_burn_in_trials = serializers.IntegerField(required=False, max_value=MAX_DAILY_USERS)
    bandit_burn_in_periods = serializers.IntegerField(required=False, max_value=10_000)
    bandit_update_minutes = serializers.IntegerField(required=False, max_value=MINUTES_A_YEAR)


class ExperimentPatch(ExperimentInput):
    key = None  # type: ignore[assignment]
    name = serializers.CharField(max_length=200, required=False)
    arms = ArmInput(many=True, required=False)


class ChangeSerializer(serializers.ModelSerializer[ExperimentChange]):
    user = serializers.CharField(source="user.username", default=None)

    class Meta:
        model = ExperimentChange
        fields = ["at", "user", "action", "before", "after"]


class EarlyReadAnswerSerializer(serializers.Serializer[Any]):
    """The early read recorded by POST /api/v1/experiments/{key}/early-read/."""

    by = serializers.CharField(help_text="the product manager's username")
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class DecisionSerializer(serializers.ModelSerializer[Decision]):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    winning_arm = serializers.CharField(source="winning_arm.name", default=None, allow_null=True, required=False)

    class Meta:
        model = Decision
        fields = ["outcome", "winning_arm", "rationale", "reviewer", "at"]
        read_only_fields = ["reviewer", "at"]
