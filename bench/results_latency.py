"""How long folding and the results take for a large experiment.

Creates the imported experiment `bench-results` with two arms, --users exposed users and
--events click/impression/purchase events spread over 14 days, written into the real (logged)
events table with the ingestion path's own bulk insert. Then, --repeat times each, alternating:

- a full recompute of the rollups (users, arms, the daily series and the CUPED sums), side by
  side with the reference: the plain per-user -> per-arm GROUP BY over the same raw events (the
  least any recompute must do: one join of events to exposures, sums and squares per arm), run
  with the same session settings. The ratio of the medians is the figure the recompute is held to
  (at most 1.5x);
- an incremental fold with nothing new, `experiment_results`, and the results, report and home
  pages as a logged-in user sees them (Django test client: the whole request);

and once: an incremental fold of 1 % more events. Prints medians with min-max and writes
bench/results/results_latency.json. --keep leaves the data in place.

    python bench/results_latency.py --events 1000000 --users 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from analysis.models import ArmRollup  # noqa: E402
from analysis.services.results import experiment_results  # noqa: E402
from analysis.services.rollups import fold, recompute  # noqa: E402
from bench.report import Spread, write  # noqa: E402
from experiments.models import Arm, Experiment  # noqa: E402
from serving.models import Event, Exposure  # noqa: E402
from serving.services.events import insert_events  # noqa: E402

KEY = "bench-results"
START = datetime(2026, 11, 1, tzinfo=UTC)
BATCH = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate (default 1,000,000)")
    parser.add_argument("--users", type=int, default=100_000, help="exposed users (default 100,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each timed step (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the experiment and its events")
    args = parser.parse_args()
    Experiment.objects.filter(key=KEY).delete()
    owner, _ = User.objects.get_or_create(username="bench")
    experiment = Experiment.objects.create(key=KEY, name="results benchmark", owner=owner, salt=KEY, status="stopped",
                                           source=Experiment.Source.IMPORTED, started_at=START)  # fmt: skip
    arms = [Arm.objects.create(experiment=experiment, name="control", is_control=True, position=0),
            Arm.objects.create(experiment=experiment, name="treatment", position=1)]  # fmt: skip
    rng = np.random.default_rng(args.seed)
    arm_of_user = rng.integers(0, 2, args.users)
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
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Event._meta.db_table}")
        cursor.execute(f"ANALYZE {Exposure._meta.db_table}")
    timings: dict[str, list[float]] = {name: [] for name in STEPS}
    reference: list[tuple[Any, ...]] = []
    for _ in tqdm(range(args.repeat), desc="runs", disable=not sys.stderr.isatty()):
        timings["full recompute of the rollups"].append(_timed(lambda: recompute(experiment.pk, lag=timedelta(0))))
        timings["plain per-user -> per-arm GROUP BY"].append(_timed(lambda: reference.append(_group_by(experiment))))
        timings["fold with nothing new"].append(_timed(lambda: fold(experiment.pk, lag=timedelta(0))))
        timings["experiment_results"].append(_timed(lambda: experiment_results(experiment)))
        for name, seconds in _pages(experiment.owner):
            timings[name].append(seconds)
    _check(experiment, reference[-1])
    _events(experiment, arms, arm_of_user, base, args.events, rng)
    timings["incremental fold of 1 % more"].append(_timed(lambda: fold(experiment.pk, lag=timedelta(0))))
    spreads = {name: Spread.of(values) for name, values in timings.items()}
    ratio = spreads["full recompute of the rollups"].median / spreads["plain per-user -> per-arm GROUP BY"].median
    print(f"\nResults latency, {args.events:,} events, {args.users:,} users, {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'step':<38}  seconds: median (min-max, runs)")
    for name, spread in spreads.items():
        print(f"{name:<38}  {spread.text()}")
    print(f"recompute / plain GROUP BY (medians): {ratio:.2f}x")
    path = write("results_latency", {"events": args.events, "users": args.users, **spreads,
                                     "recompute_over_group_by": round(ratio, 3)})  # fmt: skip
    print(f"written to {path.relative_to(REPO)}")
    if not args.keep:
        Event.objects.filter(experiment=experiment)._raw_delete(Event.objects.db)  # type: ignore[attr-defined]
        experiment.delete()


STEPS = ("full recompute of the rollups", "plain per-user -> per-arm GROUP BY", "fold with nothing new",
         "experiment_results", "results page", "report page", "home page", "incremental fold of 1 % more")  # fmt: skip


def _timed(step: Any) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _group_by(experiment: Experiment) -> list[tuple[Any, ...]]:
    """The reference: per user, then per arm, the sums and squares a test needs, straight from the raw events."""
    sql = f"""
        SELECT arm_id, COUNT(*), SUM(imp), SUM(clk), SUM(pur), SUM(rev), SUM(imp * imp), SUM(clk * clk),
               SUM(clk * imp), SUM(rev * rev)
        FROM (SELECT x.arm_id, e.user_id, SUM(CASE WHEN e.type = 'impression' THEN 1 ELSE 0 END) AS imp,
                     SUM(CASE WHEN e.type = 'click' THEN 1 ELSE 0 END) AS clk,
                     SUM(CASE WHEN e.type = 'purchase' THEN 1 ELSE 0 END) AS pur, COALESCE(SUM(e.revenue), 0) AS rev
              FROM {Event._meta.db_table} e
              JOIN {Exposure._meta.db_table} x ON x.experiment_id = e.experiment_id AND x.user_id = e.user_id
              WHERE e.experiment_id = %s GROUP BY x.arm_id, e.user_id) u
        GROUP BY arm_id ORDER BY arm_id"""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop = off")  # the recompute's own settings, for a fair reference
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(sql, [experiment.pk])
        return list(cursor.fetchall())


def _check(experiment: Experiment, reference: list[tuple[Any, ...]]) -> None:
    """The recompute's arm rows hold the same counts, sums and squares as the reference."""
    stored = {row["arm_id"]: row for row in ArmRollup.objects.filter(experiment=experiment).values()}
    for arm_id, users, imp, clk, pur, rev, imp_sq, clk_sq, clk_imp, rev_sq in reference:
        row = stored[arm_id]
        got = (row["active_users"], row["impressions"], row["clicks"], row["purchases"], row["revenue"],
               row["impressions_sq"], row["clicks_sq"], row["clicks_x_impressions"], row["revenue_sq"])  # fmt: skip
        want = (users, imp, clk, pur, rev, imp_sq, clk_sq, clk_imp, rev_sq)
        if [float(v) for v in got] != [float(v) for v in want]:
            sys.exit(f"the recompute's arm {arm_id} differs from the reference: {got} != {want}")


def _pages(user: User) -> list[tuple[str, float]]:
    """Each page's whole request through Django (status 200 checked)."""
    from django.test import Client

    user.is_superuser = True  # sees every page, whatever the roles
    user.save()
    client = Client()
    client.force_login(user)
    rows = []
    for name, url in (("results page", f"/experiments/{KEY}/results/"), ("report page", f"/experiments/{KEY}/report/"),
                      ("home page", "/")):  # fmt: skip
        started = time.perf_counter()
        response = client.get(url)
        rows.append((name, time.perf_counter() - started))
        assert response.status_code == 200, (url, response.status_code)
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
