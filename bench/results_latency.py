"""How long folding and the results take for a large experiment (PostgreSQL).

Creates the imported experiment `bench-results` with two arms, --users exposed users and
--events click/impression/purchase events spread over 14 days (written with the ingestion
path's own bulk insert, in batches), then times: a full recompute of the rollups, an
incremental fold with nothing new, an incremental fold of 1 % more events, and
`experiment_results` (best of 5), and the results, report and home pages as a logged-in user
sees them (Django test client, best of 5: the whole request, templates and charts included).
Prints one table. --keep leaves the data in place.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/abplatform python bench/results_latency.py --events 10000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.models import Arm, Event, Experiment, Exposure  # noqa: E402
from experiments.services.events import insert_events  # noqa: E402
from experiments.services.results import experiment_results  # noqa: E402
from experiments.services.rollups import fold, recompute  # noqa: E402

KEY = "bench-results"
START = datetime(2026, 11, 1, tzinfo=UTC)
BATCH = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate (default 10,000,000)")
    parser.add_argument("--users", type=int, default=1_000_000, help="exposed users (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the experiment and its events")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL=postgres://...: this measures the PostgreSQL set-up.")
    Experiment.objects.filter(key=KEY).delete()
    owner, _ = User.objects.get_or_create(username="bench")
    experiment = Experiment.objects.create(key=KEY, name="results benchmark", owner=owner, salt=KEY, status="stopped",
                                           source=Experiment.Source.IMPORTED, started_at=START)  # fmt: skip
    arms = [Arm.objects.create(experiment=experiment, name="control", is_control=True, position=0),
            Arm.objects.create(experiment=experiment, name="treatment", position=1)]  # fmt: skip
    rng = np.random.default_rng(args.seed)
    arm_of_user = rng.integers(0, 2, args.users)
    started = time.perf_counter()
    for low in tqdm(range(0, args.users, BATCH), desc="exposures", disable=not sys.stderr.isatty()):
        Exposure.objects.bulk_create(
            Exposure(
                experiment=experiment,
                arm=arms[arm_of_user[u]],
                user_id=f"u{u}",
                bucket=0,
                first_exposed_at=START + timedelta(seconds=int(u) % (14 * 86400)),
            )
            for u in range(low, min(low + BATCH, args.users))
        )
    base = args.events - args.events // 100
    _events(experiment, arms, arm_of_user, 0, base, rng)
    written = time.perf_counter() - started
    rows = [("write exposures and events", written, f"{args.users:,} users, {base:,} events")]
    t = time.perf_counter()
    recompute(experiment.pk, lag=timedelta(0))
    rows.append(("full recompute of the rollups", time.perf_counter() - t, f"{base:,} events"))
    t = time.perf_counter()
    fold(experiment.pk, lag=timedelta(0))
    rows.append(("fold with nothing new", time.perf_counter() - t, ""))
    _events(experiment, arms, arm_of_user, base, args.events, rng)
    t = time.perf_counter()
    fold(experiment.pk, lag=timedelta(0))
    rows.append(("incremental fold of 1 % more", time.perf_counter() - t, f"{args.events - base:,} events"))
    timings = []
    for _ in range(5):
        t = time.perf_counter()
        results = experiment_results(experiment)
        timings.append(time.perf_counter() - t)
    rows.append(("experiment_results (best of 5)", min(timings), f"{args.events:,} events in total"))
    rows += _pages(owner)
    print(f"\nResults latency, PostgreSQL, {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'step':<34}{'seconds':>10}  note")
    for name, seconds, note in rows:
        print(f"{name:<34}{seconds:>10.3f}  {note}")
    control, treatment = results["arms"]
    print(f"(check: {control['users'] + treatment['users']:,} users, "
          f"{control['impressions'] + treatment['impressions']:,} impressions in the results)")  # fmt: skip
    if not args.keep:
        Event.objects.filter(experiment=experiment)._raw_delete(Event.objects.db)  # type: ignore[attr-defined]
        experiment.delete()


def _pages(user: User) -> list[tuple[str, float, str]]:
    """Best-of-5 wall time of each page's whole request through Django (status 200 checked)."""
    from django.test import Client

    user.is_superuser = True  # sees every page, whatever the roles
    user.save()
    client = Client()
    client.force_login(user)
    rows = []
    for name, url in (("results page", f"/experiments/{KEY}/results/"), ("report page", f"/experiments/{KEY}/report/"),
                      ("home page", "/")):  # fmt: skip
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - t)
            assert response.status_code == 200, (url, response.status_code)
        rows.append((f"{name} (best of 5)", min(timings), f"GET {url}, {len(response.content):,} bytes"))
    return rows


def _events(experiment: Experiment, arms: list[Arm], arm_of_user: np.ndarray, low: int, high: int,
            rng: np.random.Generator) -> None:  # fmt: skip
    kinds = np.array(["impression", "click", "purchase"])
    for start in tqdm(range(low, high, BATCH), desc="events", disable=not sys.stderr.isatty()):
        stop = min(start + BATCH, high)
        n = stop - start
        users = rng.integers(0, len(arm_of_user), n)
        kind = kinds[np.searchsorted([0.9, 0.99], rng.random(n), side="right")]
        seconds = rng.integers(0, 14 * 86400, n)
        now = datetime.now(UTC)
        insert_events([
            (f"r{i}", kind[j], f"u{users[j]}", "85123A", None, experiment.pk, None, None, None,
             "12.50" if kind[j] == "purchase" else None, START + timedelta(seconds=int(seconds[j])), now)
            for j, i in enumerate(range(start, stop))
        ])  # fmt: skip


if __name__ == "__main__":
    main()
