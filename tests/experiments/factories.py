"""Experiments, traffic and clients for the experiments tests: hand-built experiments with traffic sent
through the real ingestion path, and trained variants on real data."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client

from accounts.roles import PRODUCT_MANAGERS
from analysis.services.rollups import fold
from experiments.models import Experiment
from experiments.services.lifecycle import ArmSpec, ExperimentSpec, create_experiment, transition
from recommenders.importers.online_retail import parse_online_retail
from recommenders.models import Variant
from recommenders.services.datasets import save_dataset
from recommenders.services.training import run_training
from recommenders.services.variants import VariantSpec, register_variant
from recommenders.tasks import queue_training
from simulation.services.runs import run_simulation
from simulation.tasks import queue_simulation
from tests.recommenders.factories import retail_sample, user_with_role
from tests.support import ONLINE_RETAIL


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


def client_for(user: User) -> Client:
    """A test client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client


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


def held_out_experiment(tmp_path: Path, key: str = "recs-ab", **fields: object) -> Experiment:
    """A started experiment, popularity against item-kNN, trained on the first 20,000 Online Retail lines
    minus the last 30 % of their time (held out: what simulated shoppers want)."""
    sample = tmp_path / "sample.csv"
    with gzip.open(ONLINE_RETAIL, "rt", encoding="utf-8", newline="") as source:
        sample.write_text("".join(next(source) for _ in range(20_001)), encoding="utf-8")
    dataset = save_dataset(parse_online_retail(sample), "retail-held-out", holdout_fraction=0.3)
    for name, algorithm in (("pop", "popularity"), ("knn", "item_knn")):
        variant = register_variant(VariantSpec(name, algorithm, dataset.name, {}))
        run_training(queue_training(variant, send=False).pk)
    pm = product_manager()
    return transition(draft_experiment(pm, key, **fields), "start", pm)


def simulated_retail_experiment(tmp_path: Path, key: str = "recs-ab") -> Experiment:
    """`held_out_experiment` with two simulated days of a 20-fold population (the sample has a few dozen
    eligible shoppers; 20 replicas of each give the arms a few hundred users), folded."""
    experiment = held_out_experiment(tmp_path, key)
    run = queue_simulation(experiment, {"daily_users": 400, "days": 2, "seed": 5, "population_scale": 20}, send=False)
    run_simulation(run.pk)
    fold(experiment.pk, lag=timedelta(0))
    return experiment
