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

from benchdata import bench_experiment, held_out_retail  # noqa: E402  (bench/, the script's directory)

from experiments.models import Experiment  # noqa: E402
from serving.models import Event  # noqa: E402
from simulation.services.runs import delete_simulation, run_simulation  # noqa: E402
from simulation.tasks import queue_simulation  # noqa: E402

NAME = "bench-simulation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=float, default=7200, help="mean sessions per simulated day (default 7200)")
    parser.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the simulated traffic")
    parser.add_argument("--design", choices=["ab", "interleaving"], default="ab",
                        help="an A/B test (default) or an interleaving experiment of the same two arms")  # fmt: skip
    args = parser.parse_args()
    experiment = _prepare(args.design)
    started = time.perf_counter()
    simulation = queue_simulation(experiment, {"daily_users": args.users, "days": args.days, "seed": args.seed},
                                  send=False)  # fmt: skip
    run_simulation(simulation.pk)
    seconds = time.perf_counter() - started
    simulation.refresh_from_db()
    if simulation.status != "succeeded":
        sys.exit(f"simulation failed: {simulation.error}\n{simulation.traceback}")
    events = Event.objects.filter(simulation=simulation).count()
    print(f"\nSimulation throughput ({args.design}), PostgreSQL, in-process, {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'sessions':>10}{'impressions':>13}{'events':>12}{'clicks':>9}{'seconds':>10}{'impressions/s':>15}")
    print(f"{simulation.sessions:>10,}{simulation.impressions:>13,}{events:>12,}{simulation.clicks:>9,}"
          f"{seconds:>10.1f}{simulation.impressions / seconds:>15,.0f}")  # fmt: skip
    print("(seconds include loading the shoppers and the models, simulating, storing and folding the rollups)")
    if not args.keep:
        delete_simulation(simulation)


def _prepare(design: str) -> Experiment:
    arms = [("control", f"{NAME}-popularity", "popularity", {}), ("knn", f"{NAME}-knn", "item_knn", {})]
    key = NAME if design == "ab" else f"{NAME}-{design}"
    return bench_experiment(key, "Simulation benchmark", held_out_retail(NAME), arms, design=design)


if __name__ == "__main__":
    main()
