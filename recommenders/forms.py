"""Forms of the variant pages: the register form is built from the chosen algorithm's parameter schema.

Validation of the parameters stays in `register_variant` (the algorithms' `parse_params`);
these forms only turn text into typed values and map the service's errors back onto fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from django import forms

from recommenders.algorithms import registry
from recommenders.models import Dataset, Evaluation, Variant
from recommenders.services.overview import Headline
from recommenders.services.variants import VariantSpec

PARAM_PREFIX = "param_"
WEIGHT_PREFIX = "weight_"
HYBRID = "hybrid"
DEFAULT_WEIGHT = 0.5
LEARN_WEIGHTS = "learn_weights"


class ChooseAlgorithmForm(forms.Form):
    """Step one (GET): the algorithm decides the parameter fields, the data set the hybrid's components."""

    algorithm = forms.ChoiceField(choices=())
    dataset = forms.ChoiceField(choices=(), label="Data set")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["algorithm"]).choices = [(name, name) for name in registry.names()]
        cast(forms.ChoiceField, self.fields["dataset"]).choices = [
            (name, name) for name in Dataset.objects.values_list("name", flat=True)
        ]


class RegisterVariantForm(forms.Form):
    """Step two (POST): name, description, the algorithm's parameters and, for a hybrid, its components."""

    name = forms.SlugField(
        max_length=100, help_text="Letters, digits, hyphens, underscores; an existing name gets a new version."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    train_now = forms.BooleanField(required=False, initial=True, label="Train right after registering")

    def __init__(
        self,
        *args: Any,
        algorithm: str,
        dataset: Dataset,
        candidates: Sequence[tuple[Variant, Headline | None]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.algorithm = algorithm
        self.dataset = dataset
        self.candidates = list(candidates)
        schema = registry.get(algorithm).params_schema()
        self.param_names: list[str] = []
        self.defaults = {param: spec.get("default") for param, spec in schema.items()}
        for param, spec in schema.items():
            if algorithm == HYBRID and param == "components":
                continue  # chosen from the trained variants below, not typed in
            self.fields[PARAM_PREFIX + param] = _param_field(param, spec)
            self.param_names.append(param)
        if algorithm == HYBRID:
            self.fields["components"] = forms.MultipleChoiceField(
                required=False,
                choices=[(str(v.pk), v.label) for v, _ in self.candidates],
                widget=forms.CheckboxSelectMultiple,
            )
            for variant, _ in self.candidates:
                self.fields[WEIGHT_PREFIX + str(variant.pk)] = forms.FloatField(
                    required=False,
                    min_value=0.0,
                    max_value=1.0,
                    initial=DEFAULT_WEIGHT,
                    widget=forms.NumberInput(attrs={"type": "range", "min": 0, "max": 1, "step": 0.05}),
                )

    def param_fields(self) -> list[forms.BoundField]:
        """The parameter fields except a hybrid's learn_weights, which sits beside the weight sliders."""
        beside_sliders = LEARN_WEIGHTS if self.learn_weights_field() is not None else None
        return [self[PARAM_PREFIX + name] for name in self.param_names if name != beside_sliders]

    def learn_weights_field(self) -> forms.BoundField | None:
        """The hybrid's "learn weights" option, when its algorithm has one."""
        name = PARAM_PREFIX + LEARN_WEIGHTS
        return self[name] if self.algorithm == HYBRID and name in self.fields else None

    def component_rows(self) -> list[dict[str, Any]]:
        """One row per candidate: its checkbox value, weight slider and offline metrics (for the template)."""
        chosen = set(self["components"].value() or []) if self.algorithm == HYBRID else set()
        return [
            {"variant": v, "metrics": m, "checked": str(v.pk) in chosen, "weight": self[WEIGHT_PREFIX + str(v.pk)]}
            for v, m in self.candidates
        ]

    def spec(self) -> VariantSpec:
        """The registration the cleaned form describes (call after is_valid)."""
        data = self.cleaned_data
        params: dict[str, Any] = {}
        for name in self.param_names:
            value = data.get(PARAM_PREFIX + name)
            # Like the YAML and API registrations, only what differs from the defaults is stored
            # (an unticked checkbox cannot say "default" otherwise).
            if value is not None and value != "" and value != self.defaults[name]:
                params[name] = value
        if self.algorithm == HYBRID:
            labels = {str(v.pk): v.label for v, _ in self.candidates}
            params["components"] = [
                {"variant": labels[pk], "weight": _weight(data.get(WEIGHT_PREFIX + pk))} for pk in data["components"]
            ]
        return VariantSpec(data["name"], self.algorithm, self.dataset.name, params, data.get("description", ""))

    def add_service_errors(self, errors: Mapping[str, str]) -> None:
        """Put `VariantError.errors` ("name", "params.l2", "params.components[0].weight"…) on their fields."""
        for key, message in errors.items():
            field = _field_for(key, self.fields)
            exact = field is not None and key in {field, "params." + field.removeprefix(PARAM_PREFIX)}
            self.add_error(field, message if exact else f"{key.removeprefix('params.')}: {message}")


def _param_field(name: str, spec: Mapping[str, Any]) -> forms.Field:
    """A form field for one schema entry {"type", "default"}; blank means "use the default"."""
    kind, default = spec.get("type"), spec.get("default")
    help_text = f"{kind}, default {json.dumps(default)}"
    if kind == "bool":
        return forms.BooleanField(label=name, required=False, initial=default, help_text=help_text)
    if kind == "int":
        return forms.IntegerField(label=name, required=False, initial=default, help_text=help_text)
    if kind == "float":
        return forms.FloatField(
            label=name,
            required=False,
            initial=default,
            help_text=help_text,
            widget=forms.NumberInput(attrs={"step": "any"}),
        )
    if kind == "str":
        return forms.CharField(label=name, required=False, initial=default, help_text=help_text)
    # Lists and mappings (and types the schema spells out as text) are typed in as JSON.
    return forms.JSONField(label=name, required=False, initial=default, help_text=f"{help_text} (JSON)")


def _weight(value: float | None) -> float:
    return DEFAULT_WEIGHT if value is None else value


def _field_for(key: str, fields: Mapping[str, forms.Field]) -> str | None:
    if key in fields:
        return key
    if key.startswith("params.components"):
        return "components" if "components" in fields else None
    if key.startswith("params."):
        name = PARAM_PREFIX + key.removeprefix("params.").split(".")[0].split("[")[0]
        return name if name in fields else None
    return None


class EvaluateForm(forms.Form):
    """How to evaluate offline; the service checks the ranges again (the API and commands share them)."""

    split = forms.ChoiceField(choices=Evaluation.Split.choices, initial=Evaluation.Split.STRATIFIED)
    ratio = forms.FloatField(
        min_value=0.01,
        max_value=0.99,
        initial=0.75,
        help_text="share of each user's (or the time span's) data to train on",
    )
    k = forms.IntegerField(min_value=1, max_value=1000, initial=10)
