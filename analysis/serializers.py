"""Read-only representations of the analysis services' results for the API and the pages."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from analysis.services.segments import SegmentBreakdown

# ---- results by segment: read-only representations of analysis.services.segments' dataclasses -----------


class SegmentLiftSerializer(serializers.Serializer[Any]):
    segment = serializers.CharField()
    arm = serializers.CharField()
    is_control = serializers.BooleanField()
    users = serializers.IntegerField(help_text="exposed users of this arm in this segment (without events: zeros)")
    effect = serializers.FloatField(allow_null=True, help_text="relative lift t / c - 1 (null for the control)")
    ci_low = serializers.FloatField(allow_null=True, help_text="interval of the metric's test, at 1 - alpha")
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_value_adjusted = serializers.FloatField(allow_null=True, help_text="Holm across the metric's segments")
    error = serializers.CharField(allow_null=True, help_text="why this treatment could not be tested here")


class MetricSegmentsSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    primary = serializers.BooleanField()
    test = serializers.CharField(help_text="the engine's test behind the lifts and intervals")
    rows = SegmentLiftSerializer(many=True, help_text="every arm of every segment")


class SegmentSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    users = serializers.IntegerField()
    members = serializers.ListField(child=serializers.CharField(), help_text='the values counted in it ("other")')


class SegmentBreakdownSerializer(serializers.Serializer[Any]):
    experiment = serializers.CharField()
    dimension = serializers.CharField()
    dimension_label = serializers.CharField()
    definition = serializers.CharField()
    traffic = serializers.CharField()
    primary_metric = serializers.CharField()
    alpha = serializers.FloatField()
    confidence = serializers.FloatField()
    min_users = serializers.IntegerField(help_text='countries with fewer exposed users are counted as "other"')
    note = serializers.CharField(help_text="exploratory: not a verdict")
    segments = SegmentSerializer(many=True)
    metrics = MetricSegmentsSerializer(many=True, help_text="the primary metric first")
    warnings = serializers.ListField(child=serializers.CharField())
    empty_reason = serializers.CharField(allow_null=True, help_text="why there is nothing to show")


def segment_breakdown_data(breakdown: SegmentBreakdown) -> dict[str, Any]:
    """The JSON-ready form of a breakdown: what the API answers and the segments page shows."""
    return dict(SegmentBreakdownSerializer(breakdown).data)
