"""Shared set-up of the benchmarks that need data and trained variants in the database.

Imported by the bench scripts after they call django.setup(); everything here is idempotent,
so a second run reuses what the first one imported and trained.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from experiments.models import Experiment
from experiments.services.lifecycle import ArmSpec, ExperimentSpec, create_experiment, transition
from recommenders.importers.online_retail import parse_online_retail
from recommenders.models import Dataset, Variant
from recommenders.services.datasets import save_dataset
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training

REPO = Path(__file__).resolve().parents[1]


def held_out_retail(name: str, holdout_fraction: float = 0.2) -> Dataset:
    """The bundled Online Retail data as data set `name`, the last `holdout_fraction` of its time held out
    (imported once: an existing data set `name` is returned as it is)."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        print(f"importing the Online Retail data with a {holdout_fraction:.0%} hold-out ...", flush=True)
        parsed = parse_online_retail(REPO / "data" / "online-retail" / "online_retail.csv.gz")
        dataset = save_dataset(parsed, name, holdout_fraction=holdout_fraction)
    return dataset


def trained_variant(name: str, algorithm: str, dataset: Dataset, params: dict[str, Any] | None = None) -> Variant:
    """The newest version of variant `name` (registered if missing), trained in this process if it never was."""
    variant = Variant.objects.filter(name=name).order_by("-version").first() or register_variant(
        VariantSpec(name, algorithm, dataset.name, params or {})
    )
    if variant.latest_successful_run() is None:
        print(f"training {variant.label} ...", flush=True)
        began = time.perf_counter()
        training = queue_training(variant, send=False)
        run_training(training.pk)
        training.refresh_from_db()
        if training.status != "succeeded":
            sys.exit(f"training {variant.label} failed: {training.error}")
        print(f"  {time.perf_counter() - began:.0f} s", flush=True)
    return variant


def bench_experiment(
    key: str,
    title: str,
    dataset: Dataset,
    arms: Sequence[tuple[str, str, str, dict[str, Any]]],
    *,
    start: bool = True,
    **fields: Any,
) -> Experiment:
    """Experiment `key` with one arm per (arm name, variant name, algorithm, params), the first arm the
    control, each variant trained; created once (with ExperimentSpec `fields`, e.g. design="bandit"),
    and started unless `start` is false."""
    owner, _ = User.objects.get_or_create(username="bench")
    for _, variant, algorithm, params in arms:
        trained_variant(variant, algorithm, dataset, params)
    experiment = Experiment.objects.filter(key=key).first()
    if experiment is None:
        specs = [ArmSpec(arm, variant, 1.0, index == 0) for index, (arm, variant, _, _) in enumerate(arms)]
        experiment = create_experiment(ExperimentSpec(key, title, specs, **fields), owner)
    if start and experiment.status == Experiment.Status.DRAFT:
        experiment = transition(experiment, "start", owner)
    return experiment
