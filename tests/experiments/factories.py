"""Trained variants and experiments for the experiments tests (real data, real training)."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import User

from accounts.roles import PRODUCT_MANAGERS
from experiments.models import Experiment
from experiments.services.lifecycle import ArmSpec, ExperimentSpec, create_experiment
from recommenders.models import Variant
from recommenders.services.training import queue_training, run_training
from recommenders.services.variants import VariantSpec, register_variant
from tests.recommenders.factories import retail_sample, user_with_role


def trained_variants(tmp_path: Path, rows: int = 1500) -> tuple[Variant, Variant]:
    """Popularity (control) and item-kNN (treatment) trained on the first rows of Online Retail."""
    dataset = retail_sample(tmp_path, rows=rows)
    variants = []
    for name, algorithm in (("pop", "popularity"), ("knn", "item_knn")):
        variant = register_variant(VariantSpec(name, algorithm, dataset.name, {}))
        run_training(queue_training(variant, send=False).pk)
        variant.refresh_from_db()
        variants.append(variant)
    return variants[0], variants[1]


def product_manager(username: str = "pm") -> User:
    return user_with_role(username, PRODUCT_MANAGERS)


def draft_experiment(owner: User, key: str = "recs-ab", **fields: object) -> Experiment:
    spec = ExperimentSpec(
        key=key,
        name="Item-kNN against popularity",
        arms=[ArmSpec("control", "pop@1", 1.0, True), ArmSpec("knn", "knn@1", 1.0)],
        **fields,  # type: ignore[arg-type]
    )
    return create_experiment(spec, owner)
