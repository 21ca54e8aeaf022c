"""REST representations of variants, training runs and evaluations."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api_schema import IdField, TextField
from recommenders.models import Evaluation, TrainingRun, Variant


class TrainingRunSerializer(serializers.ModelSerializer[TrainingRun]):
    variant = serializers.CharField(source="variant.label", read_only=True)
    seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="null until the run has finished")

    class Meta:
        model = TrainingRun
        fields = ["id", "variant", "status", "progress", "message", "queued_at", "started_at", "finished_at", "seconds",
                  "data_fingerprint", "artifact_sha256", "fit_report", "peak_memory_mb", "error", "log"]  # fmt: skip
        read_only_fields = fields


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    variant = serializers.CharField(source="variant.label", read_only=True)

    class Meta:
        model = Evaluation
        fields = ["id", "variant", "split", "ratio", "seed", "k", "status", "progress", "message", "queued_at",
                  "started_at", "finished_at", "data_fingerprint", "metrics", "train_seconds", "evaluate_seconds",
                  "error"]  # fmt: skip
        read_only_fields = fields


class VariantSerializer(serializers.ModelSerializer[Variant]):
    dataset = serializers.CharField(source="dataset.name")
    author = serializers.CharField(source="author.username", default=None, read_only=True, allow_null=True)
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]  # the variant's label, not Field.label
    latest_run = serializers.SerializerMethodField()

    class Meta:
        model = Variant
        fields = ["id", "label", "name", "version", "algorithm", "params", "dataset", "description", "author",
                  "status", "created_at", "latest_run"]  # fmt: skip
        read_only_fields = ["id", "label", "version", "author", "status", "created_at", "latest_run"]

    def get_latest_run(self, variant: Variant) -> dict[str, Any] | None:
        run = variant.training_runs.order_by("-queued_at").first()
        return TrainingRunSerializer(run).data if run else None


class RegisterVariantSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    algorithm = serializers.CharField(max_length=100)
    dataset = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class EvaluateSerializer(serializers.Serializer[Any]):
    split = serializers.ChoiceField(choices=Evaluation.Split.values, default=Evaluation.Split.STRATIFIED)
    ratio = serializers.FloatField(default=0.75, min_value=0.01, max_value=0.99)
    seed = serializers.IntegerField(default=42)
    k = serializers.IntegerField(default=10, min_value=1, max_value=1000)


class RecommendSerializer(serializers.Serializer[Any]):
    """The body of POST /api/v1/variants/{id}/recommend/."""

    user_id = IdField(max_length=100, help_text="the data set's user id; an unknown user gets the cold-start list")
    k = serializers.IntegerField(default=10, min_value=1, max_value=1000, help_text="how many items")
    query = TextField(
        required=False, allow_blank=True, default="",
        help_text="a free-text search, used by algorithms that support queries (see /api/v1/algorithms/)",
    )  # fmt: skip


class VariantRecommendedItemSerializer(serializers.Serializer[Any]):
    item_id = serializers.CharField(help_text="the data set's item id")
    score = serializers.FloatField(help_text="the model's score (higher is better; its scale is the algorithm's)")
    position = serializers.IntegerField(help_text="1-based rank in the list")


class RecommendAnswerSerializer(serializers.Serializer[Any]):
    """The answer of POST /api/v1/variants/{id}/recommend/: nothing is logged, no experiment is involved."""

    items = VariantRecommendedItemSerializer(many=True, help_text="best first; the user's seen items are left out")


class AlgorithmSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    supports_query = serializers.BooleanField()
    params = serializers.DictField(help_text="{parameter: {type, default}}")
    doc = serializers.CharField()
