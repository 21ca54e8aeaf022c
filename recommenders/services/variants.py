"""Registering variants: validation against the algorithm's parameter schema, and versions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from recommenders.algorithms import registry
from recommenders.algorithms.base import ParameterError, RecommenderError
from recommenders.models import Dataset, Variant

_VARIANT_REF = re.compile(r"^(?P<name>[-\w]+)(@(?P<version>\d+))?$")


class VariantError(Exception):
    """A registration is refused; `errors` maps field names to messages (as forms and APIs show them)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class VariantSpec:
    """What a data scientist submits; `params` are validated against the algorithm's schema."""

    name: str
    algorithm: str
    dataset: str
    params: Mapping[str, Any]
    description: str = ""


def register_variant(spec: VariantSpec, author: User | None = None) -> Variant:
    """Validate `spec` and store it as the next version of `spec.name` (version 1 for a new name).

    Hybrid components may name registered variants instead of algorithms:
    `{"variant": "ease-default@2", "weight": 0.6}` (without @N: the newest version). They are
    resolved now into the variants' algorithm and parameters, so the hybrid trains the same
    components whatever happens to those names later.
    """
    errors: dict[str, str] = {}
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", spec.name or ""):
        errors["name"] = "use letters, digits, hyphens and underscores only"
    dataset = Dataset.objects.filter(name=spec.dataset).first()
    if dataset is None:
        known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none imported yet"
        errors["dataset"] = f"no data set named {spec.dataset!r} (known: {known})"
    params: dict[str, Any] = dict(spec.params or {})
    try:
        algorithm = registry.get(spec.algorithm)
    except RecommenderError as error:
        errors["algorithm"] = str(error)
    else:
        try:
            if spec.algorithm == "hybrid" and dataset is not None:
                params = _resolve_components(params, dataset)
            algorithm.parse_params(params)
        except ParameterError as error:
            errors[f"params.{error.field}"] = error.message
    if errors:
        raise VariantError(errors)
    assert dataset is not None
    # Two registrations of one name at once: the unique (name, version) constraint makes
    # the loser fail; retry with the next number rather than report a conflict.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                latest = Variant.objects.filter(name=spec.name).order_by("-version").values_list("version", flat=True)
                return Variant.objects.create(
                    name=spec.name,
                    version=(latest.first() or 0) + 1,
                    algorithm=spec.algorithm,
                    params=params,
                    dataset=dataset,
                    description=spec.description,
                    author=author,
                )
        except IntegrityError:
            continue
    raise VariantError({"name": "too many concurrent registrations of this name; try again"})


def find_variant(reference: str) -> Variant:
    """`name@version`, or `name` for the newest version; VariantError when there is none."""
    match = _VARIANT_REF.match(reference.strip())
    if match is None:
        raise VariantError({"variant": f"{reference!r} is not NAME or NAME@VERSION"})
    variants = Variant.objects.filter(name=match["name"])
    if match["version"]:
        variants = variants.filter(version=int(match["version"]))
    variant = variants.order_by("-version").first()
    if variant is None:
        raise VariantError({"variant": f"no variant {reference!r}"})
    return variant


def _resolve_components(params: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    components = params.get("components")
    if not isinstance(components, list):
        return params
    resolved = []
    for position, component in enumerate(components):
        if isinstance(component, Mapping) and "variant" in component:
            extra = sorted(set(component) - {"variant", "weight"})
            if extra:
                raise ParameterError(f"components[{position}].{extra[0]}", "unknown key; with variant use: weight")
            try:
                source = find_variant(str(component["variant"]))
            except VariantError as error:
                raise ParameterError(f"components[{position}].variant", error.errors["variant"]) from None
            if source.algorithm == "hybrid":
                raise ParameterError(f"components[{position}].variant", "a hybrid cannot contain a hybrid")
            if source.dataset_id != dataset.pk:
                raise ParameterError(
                    f"components[{position}].variant",
                    f"{source.label} is on data set {source.dataset.name}, not {dataset.name}",
                )
            component = {"algorithm": source.algorithm, "params": source.params, "weight": component.get("weight", 1.0)}
        resolved.append(component)
    return {**params, "components": resolved}
