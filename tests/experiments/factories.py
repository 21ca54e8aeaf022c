"""Experiments, traffic and clients for the experiments tests: hand-built experiments with traffic sent
through the real ingestion path, and trained variants on real data."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

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


# The experiment of the API tests, as the API takes it.
EXPERIMENT = {
    "key": "home-recs",
    "name": "kNN against popularity on the home page",
    "hypothesis": "Similar items get more clicks than best sellers",
    "traffic_percent": 100,
    "primary_metric": "ctr",
    "secondary_metrics": ["conversion_rate"],
    "arms": [
        {"name": "control", "variant": "pop@1", "is_control": True},
        {"name": "knn", "variant": "knn@1"},
    ],
}


def wizard_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "key": "home-knn", "name": "Item-kNN on the home page", "hypothesis": "similar items sell",
        "surface": "recommendations", "traffic_percent": "50", "layer": "", "layer_share_percent": "100",
        "primary_metric": "ctr", "secondary_metrics": ["conversion_rate"], "guardrail_metrics": [],
        "baseline_rate": "0.015", "minimum_detectable_effect": "0.1", "expected_daily_users": "2000",
        "alpha": "0.05", "power": "0.8", "control": "0",
        "arm-0-name": "control", "arm-0-variant": "pop@1", "arm-0-weight": "1",
        "arm-1-name": "knn", "arm-1-variant": "knn@1", "arm-1-weight": "1",
    }  # fmt: skip
    for i in range(2, 5):
        data.update({f"arm-{i}-name": "", f"arm-{i}-variant": "", f"arm-{i}-weight": ""})
    data.update(overrides)
    return data


# Shoppers of the bundled data set with history before its hold-out date.
USERS = ("17850", "13047", "12583", "13748", "15100", "15291", "14688", "17809", "15311", "16098")


def exploring(percent: float = 20.0, key: str = "explore-ab") -> Experiment:
    owner = User.objects.filter(username="pm").first() or product_manager()
    experiment = draft_experiment(owner, key, exploration_percent=percent)
    return transition(experiment, "start", owner)
