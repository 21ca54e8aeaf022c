"""Simulated impressions per second, stored in PostgreSQL (the issue's in-process mode).

Imports the bundled Online Retail data as `bench-simulation` with the last 20 % of time held
out (once), trains popularity and item-kNN on the rest (once), creates and starts the
experiment `bench-simulation`, then runs one simulation in this process with --users sessions
a day for --days days and reports sessions, impressions and events stored, the wall time and
impressions per second. The run's traffic is deleted afterwards unless --keep.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/abplatform python bench/simulation_throughput.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402

from experiments.models import Event, Experiment  # noqa: E402
from experiments.services.lifecycle import ArmSpec, ExperimentSpec, create_experiment, transition  # noqa: E402
from experiments.services.simulation import delete_simulation, queue_simulation, run_simulation  # noqa: E402
from recommenders.importers.online_retail import parse_online_retail  # noqa: E402
from recommenders.models import Dataset, Variant  # noqa: E402
from recommenders.services.datasets import save_dataset  # noqa: E402
from recommenders.services.training import queue_training, run_training  # noqa: E402
from recommenders.services.variants import VariantSpec, register_variant  # noqa: E402

NAME = "bench-simulation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=float, default=7200, help="mean sessions per simulated day (default 7200)")
    parser.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the simulated traffic")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL=postgres://...: this measures the PostgreSQL set-up.")
    experiment = _prepare()
    started = time.perf_counter()
    simulation = queue_simulation(experiment, {"daily_users": args.users, "days": args.days, "seed": args.seed},
                                  send=False)  # fmt: skip
    run_simulation(simulation.pk)
    seconds = time.perf_counter() - started
    simulation.refresh_from_db()
    if simulation.status != "succeeded":
        sys.exit(f"simulation failed: {simulation.error}\n{simulation.traceback}")
    events = Event.objects.filter(simulation=simulation).count()
    print(f"\nSimulation throughput, PostgreSQL, in-process, {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'sessions':>10}{'impressions':>13}{'events':>12}{'clicks':>9}{'seconds':>10}{'impressions/s':>15}")
    print(f"{simulation.sessions:>10,}{simulation.impressions:>13,}{events:>12,}{simulation.clicks:>9,}"
          f"{seconds:>10.1f}{simulation.impressions / seconds:>15,.0f}")  # fmt: skip
    print("(seconds include loading the shoppers and the models, simulating, storing and folding the rollups)")
    if not args.keep:
        delete_simulation(simulation)


def held_out_retail(name: str) -> Dataset:
    """The bundled Online Retail data as data set `name`, the last 20 % of its time held out (imported once)."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        print("importing the Online Retail data with a 20 % hold-out ...", flush=True)
        parsed = parse_online_retail(REPO / "data" / "online-retail" / "online_retail.csv.gz")
        dataset = save_dataset(parsed, name, holdout_fraction=0.2)
    return dataset


def _prepare() -> Experiment:
    dataset = held_out_retail(NAME)
    owner, _ = User.objects.get_or_create(username="bench")
    for name, algorithm in ((f"{NAME}-popularity", "popularity"), (f"{NAME}-knn", "item_knn")):
        variant = Variant.objects.filter(name=name).first() or register_variant(
            VariantSpec(name, algorithm, dataset.name, {})
        )
        if variant.latest_successful_run() is None:
            print(f"training {variant.label} ...", flush=True)
            run_training(queue_training(variant, send=False).pk)
    experiment = Experiment.objects.filter(key=NAME).first()
    if experiment is None:
        arms = [ArmSpec("control", f"{NAME}-popularity", 1.0, True), ArmSpec("knn", f"{NAME}-knn", 1.0)]
        experiment = create_experiment(ExperimentSpec(NAME, "Simulation benchmark", arms), owner)
    if experiment.status == Experiment.Status.DRAFT:
        experiment = transition(experiment, "start", owner)
    return experiment


if __name__ == "__main__":
    main()
