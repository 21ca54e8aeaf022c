"""``bandit_regret.py --platform``: the bandit mode end to end on the shopper simulator (needs Django).

A bandit experiment (CTR, minimum share 5 %, burn-in 1,000 impressions per arm and one period, daily
updates) whose two arms serve the same trained popularity variant on the bundled Online Retail data,
with a known +``lift`` injected into arm 1's click probability (``SimulationConfig.injected_effect``).
Each seed is one simulation run through ``run_simulation``: the same code as the Simulate button,
which stores each simulated day, folds it and runs the weight update service before the next day.
The experiment's salt changes per seed, so shoppers land at other hash points.

Regret in expected clicks: the injected lift makes arm 1's click probability (1 + lift) times arm 0's
for every impression, so a session served arm 0 loses ``delta`` = lift x (arm 0's clicks per session,
pooled over all seeds) clicks in expectation; a fixed 50/50 split loses ``delta`` / 2 per session.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")


def platform_tables(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from benchdata import bench_experiment, held_out_retail
    from django.db.models import Count

    from experiments.models import Event, Experiment, ServedRequest
    from experiments.services import bandit
    from experiments.services.simulation import delete_simulation, queue_simulation, run_simulation

    arms = [("control", "retail-popularity", "popularity", {}), ("boosted", "retail-popularity", "popularity", {})]
    experiment = bench_experiment("bench-bandit-platform", "Bandit on the simulator", held_out_retail(
        "online-retail-bench"), arms, design="bandit", primary_metric="ctr")  # fmt: skip
    sessions: list[list[list[int]]] = []  # seed -> day -> [arm 0, arm 1]
    weights: list[list[float]] = []
    clicks = [0, 0]
    started = time.perf_counter()
    for seed in range(args.platform_seeds):
        Experiment.objects.filter(pk=experiment.pk).update(salt=f"bench-bandit-platform-{seed}")
        experiment.refresh_from_db()
        run = queue_simulation(experiment, {"daily_users": args.platform_users, "days": args.platform_days,
                                            "seed": seed, "injected_effect": args.lift}, send=False)  # fmt: skip
        run_simulation(run.pk)
        run.refresh_from_db()
        if run.status != "succeeded":
            raise SystemExit(f"simulation {run.pk} {run.status}: {run.message}")
        history = bandit.history(experiment.pk, run.pk)
        day0 = history[0].starts_at  # simulated day d is [day0 + d days, day0 + d + 1 days)
        per_day: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for served_at, position in ServedRequest.objects.filter(simulation=run).values_list(
            "served_at", "arm__position"
        ):
            per_day[int((served_at - day0).total_seconds() // 86_400)][position] += 1
        sessions.append([per_day[day] for day in range(args.platform_days)])
        weights.append(list(history[-1].weights))
        for position, n in (
            Event.objects.filter(simulation=run, type="click").values_list("arm__position").annotate(n=Count("pk"))
        ):
            clicks[position] += n
        print(f"  seed {seed}: {run.sessions:,} sessions, final weights {weights[-1][0]:.3f} / {weights[-1][1]:.3f}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        if not args.keep:
            delete_simulation(run)
    control_sessions = sum(day[0] for seed in sessions for day in seed)
    delta = args.lift * clicks[0] / control_sessions
    days = min(len(seed) for seed in sessions)
    per_session = clicks[0] / control_sessions
    print(f"\n{args.platform_seeds} seeds x {days} days x ~{args.platform_users:,.0f} sessions a day; arm 0 clicks "
          f"per session {per_session:.4f}, so delta = {delta:.5f} expected clicks per session\n")  # fmt: skip
    print("| day | share of sessions on the better arm | regret bandit (clicks) | regret 50/50 |")
    print("|---|---|---|---|")
    cumulative_bandit = [0.0] * len(sessions)
    cumulative_fixed = [0.0] * len(sessions)
    for day in range(days):
        shares = []
        for s, seed in enumerate(sessions):
            worse, better = seed[day]
            cumulative_bandit[s] += worse * delta
            cumulative_fixed[s] += (worse + better) / 2 * delta
            shares.append(better / (worse + better))
        n = len(sessions)
        print(f"| {day} | {sum(shares) / n:.3f} | {sum(cumulative_bandit) / n:.1f} | {sum(cumulative_fixed) / n:.1f} |")
    last_day_better = sum(seed[days - 1][1] > seed[days - 1][0] for seed in sessions)
    total_better = sum(sum(d[1] for d in seed) > sum(d[0] for d in seed) for seed in sessions)
    weight_better = sum(w[1] > w[0] for w in weights)
    print(f"\nBetter arm has the larger final weight in {weight_better} of {len(sessions)} seeds, more sessions on the "
          f"last day in {last_day_better}, more sessions in total in {total_better}.")  # fmt: skip
    print(f"Took {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}.")
