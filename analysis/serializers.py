"""Read-only representations of the analysis services' results for the API and the pages."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from analysis.results_types import ABSENT_WHEN_NULL, ABResults, InterleavingResults, MetricResult
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


# ---- an experiment's results: the API schema of analysis.results_types, generated from the dataclasses ----
# The results are serialised by results_types.results_data (dataclasses.asdict); these serializers only
# describe that JSON in the OpenAPI schema. They are built from the dataclasses' type hints, so the schema
# cannot drift from the types: a field added to a dataclass is in the schema too.

_SCALARS: dict[Any, type[serializers.Field[Any, Any, Any, Any]]] = {
    str: serializers.CharField,
    int: serializers.IntegerField,
    float: serializers.FloatField,
    bool: serializers.BooleanField,
}
# Components that are one of several dataclasses, by their members' names.
_UNION_NAMES: dict[tuple[str, ...], str] = {
    ("SequentialResult", "TestResult"): "AbsoluteTest",
    ("BanditSrm", "SrmResult", "SrmUnavailable"): "SrmCheck",
}
# Choice sets that several fields share, named once.
_ENUM_NAMES: dict[tuple[str, ...], str] = {("A", "B"): "Team"}
_BUILT: dict[type, type[serializers.Serializer[Any]]] = {}


def dataclass_serializer(cls: type) -> type[serializers.Serializer[Any]]:
    """A read-only serializer class mirroring the dataclass `cls` field by field, for the API schema; its
    component is named after the dataclass and described by its docstring."""
    if cls not in _BUILT:
        hints = get_type_hints(cls)
        optional = ABSENT_WHEN_NULL if cls is MetricResult else ()
        attrs: dict[str, Any] = {
            field.name: _schema_field(hints[field.name], **({"required": False} if field.name in optional else {}))
            for field in dataclasses.fields(cls)
        }
        attrs.update(__doc__=cls.__doc__, __module__=__name__)
        _BUILT[cls] = type(f"{cls.__name__}Serializer", (serializers.Serializer,), attrs)
    return _BUILT[cls]


def _schema_field(hint: Any, **options: Any) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field of a type hint: scalars, X | None, unions of dataclasses, Literal, tuples,
    mappings with string keys, nested dataclasses and Any (free-form JSON)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        if len(members) < len(args):
            options["allow_null"] = True
        if len(members) == 1:
            return _schema_field(members[0], **options)
        names = tuple(sorted(member.__name__ for member in members))
        return PolymorphicProxySerializer(  # type: ignore[no-any-return]
            component_name=_UNION_NAMES.get(names, "Or".join(names)),
            serializers=[dataclass_serializer(member) for member in members],
            resource_type_field_name=None,
            many=False,
            **options,
        )
    if origin is Literal:
        if args in _ENUM_NAMES:  # one choice set under several field names: one component
            return _named_choices(args)(choices=list(args), **options)
        return serializers.ChoiceField(choices=list(args), **options)
    if origin in (tuple, list):
        item = args[0]
        if origin is tuple and args[-1] is not Ellipsis:  # a fixed-length tuple: an interval (low, high)
            options.update(min_length=len(args), max_length=len(args))
        if dataclasses.is_dataclass(item) and origin is tuple and args[-1] is Ellipsis:
            return dataclass_serializer(item)(many=True, **options)  # type: ignore[arg-type]
        return serializers.ListField(child=_schema_field(item), **options)
    if origin in (Mapping, dict):
        return serializers.DictField(child=_schema_field(args[1]), **options)
    if hint is Any:
        return serializers.JSONField(**options)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return dataclass_serializer(hint)(**options)
    return _SCALARS[hint](**options)


@cache
def _named_choices(choices: tuple[str, ...]) -> type[serializers.ChoiceField]:
    """A ChoiceField class whose choices are the schema component _ENUM_NAMES[choices]."""
    name = _ENUM_NAMES[choices]
    field = type(f"{name}Field", (serializers.ChoiceField,), {"__module__": __name__})
    return extend_schema_field({"type": "string", "enum": list(choices)}, component_name=name)(field)


RESULTS_RESPONSE = PolymorphicProxySerializer(
    component_name="ExperimentResults",
    serializers={
        "ab": dataclass_serializer(ABResults),
        "bandit": dataclass_serializer(ABResults),
        "interleaving": dataclass_serializer(InterleavingResults),
    },
    resource_type_field_name="design",
)
