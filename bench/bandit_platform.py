"""``bandit_regret.py --platform``: the bandit mode end to end on the shopper simulator (needs Django).

A bandit experiment (CTR, minimum share 5 %, burn-in 1,000 impressions per arm and one period, daily
updates) whose two arms serve the same trained popularity variant on the bundled Online Retail data,
with a known +``lift`` injected into arm 1's click probability (``SimulationConfig.injected_effect``).
Each seed is one simulation run through ``run_simulation``: the same code as the Simulate button,
which stores each simulated day, folds it and runs the weight update service before the next day.
The experiment's salt changes per seed, so shoppers land at other hash points. One experiment per
``--platform-arrivals`` mode (``SimulationConfig.arrivals``): "at-start" (every shopper may come
from day 0, so nearly all first visits fall in the first days) or "uniform" / "first-purchase"
(first visits spread over the run, so new shoppers keep arriving). ``--platform-scale S`` runs a
shop S times as large (``SimulationConfig.population_scale``; scale ``--platform-users`` with it):
the data set's 1,893 shoppers make +10 % a 1.5-standard-error effect, which caps any allocation
rule near the fixed split's 90-94 %; ``--platform-holdout``, ``--min-share``, ``--burn-in-users``
and ``--burn-in-periods`` change the data set's hold-out and the bandit's settings (each
combination gets its own experiment, created once).

A shopper keeps the arm of their first exposure, so the weights decide the arm of *new* shoppers
only. Per seed it reports the final weights (the update after the last day), the last day's share
of new shoppers (first exposures) and of sessions on the better arm, the total sessions, and the
regret against a fixed 50/50 split of the same sessions.

Regret in expected clicks lost, estimated from the run's own clicks: the injected lift makes arm 1's
click probability (1 + lift) times arm 0's for every impression, so a session served arm 0 with C
clicks lost lift x E[C] clicks in expectation (estimated by lift x C), and a session served arm 1
with C clicks would have had C / (1 + lift) on arm 0. Hence, with C0_d and C1_d the clicks of day d
on each arm, regret_bandit_d = lift x C0_d and regret_50/50_d = lift / 2 x (C0_d + C1_d / (1 + lift)):
both unbiased and paired (the same sessions), which also allows for heavy and light shoppers.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SeedRun:
    """One simulation run; per-day arrays are (days, 2): [worse arm 0, better arm 1]."""

    seed: int
    sessions: np.ndarray
    new_shoppers: np.ndarray
    clicks: np.ndarray
    weights: np.ndarray  # (days + 1, 2): the weights of each day's new shoppers, then the final update
    final_probability_best: float

    def regret(self, lift: float) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative expected clicks lost per day: (bandit, fixed 50/50) (see the module docstring)."""
        bandit = lift * self.clicks[:, 0]
        fixed = lift / 2 * (self.clicks[:, 0] + self.clicks[:, 1] / (1 + lift))
        return np.cumsum(bandit), np.cumsum(fixed)


def _share(counts: np.ndarray) -> float:
    """Better arm's share of a [worse, better] pair (NaN when both are 0)."""
    total = counts.sum()
    return float(counts[1] / total) if total else float("nan")


def _by_day(rows: Any, day0: datetime, days: int) -> np.ndarray:
    """(time, arm position) rows -> (days, 2) counts."""
    out = np.zeros((days, 2), dtype=np.int64)
    for at, position in rows:
        day = int((at - day0).total_seconds() // SECONDS_PER_DAY)
        if 0 <= day < days:
            out[day, position] += 1
    return out


def bench_bandit(args: argparse.Namespace, arrivals: str) -> Any:
    """The CTR bandit experiment for these settings (created, trained and started once, then reused).

    The default settings (20 % hold-out, the experiment defaults: 5 % floor, burn-in 1,000 impressions
    per arm and one period) keep the keys of the earlier runs; other settings get their own data set,
    variant and experiment (a running bandit's settings are locked, and a data set's hold-out is fixed).
    """
    from benchdata import bench_experiment, held_out_retail

    holdout = round(args.platform_holdout * 100)
    dataset_suffix = "" if holdout == 20 else f"-h{holdout}"
    settings = {"bandit_min_share": args.min_share, "bandit_burn_in_trials": args.burn_in_users,
                "bandit_burn_in_periods": args.burn_in_periods}  # fmt: skip
    defaults = {"bandit_min_share": 0.05, "bandit_burn_in_trials": 1_000, "bandit_burn_in_periods": 1}
    settings_suffix = "" if settings == defaults else (
        f"-m{args.min_share:g}-b{args.burn_in_users}x{args.burn_in_periods}")  # fmt: skip
    mode_suffix = "" if arrivals == "at-start" else f"-{arrivals}"
    key = f"bench-bandit-platform{mode_suffix}{dataset_suffix}{settings_suffix}"
    variant = f"retail-popularity{dataset_suffix}"
    arms = [("control", variant, "popularity", {}), ("boosted", variant, "popularity", {})]
    title = f"Bandit on the simulator ({arrivals}, {holdout} % hold-out{settings_suffix})"
    dataset = held_out_retail(f"online-retail-bench{dataset_suffix}", args.platform_holdout)
    return bench_experiment(key, title, dataset, arms, design="bandit", primary_metric="ctr", **settings)


def simulate_mode(args: argparse.Namespace, arrivals: str) -> list[SeedRun]:
    from experiments.models import Experiment
    from experiments.services import bandit_schedule
    from serving.models import Event, Exposure, ServedRequest
    from simulation.services.runs import delete_simulation, run_simulation
    from simulation.tasks import queue_simulation

    experiment = bench_bandit(args, arrivals)
    days = args.platform_days
    runs: list[SeedRun] = []
    started = time.perf_counter()
    for seed in range(args.platform_first_seed, args.platform_first_seed + args.platform_seeds):
        Experiment.objects.filter(pk=experiment.pk).update(salt=f"bench-bandit-platform-{seed}")
        experiment.refresh_from_db()
        settings = {"daily_users": args.platform_users, "days": days, "seed": seed, "injected_effect": args.lift,
                    "arrivals": arrivals, "population_scale": args.platform_scale}  # fmt: skip
        simulation = queue_simulation(experiment, settings, send=False)
        run_simulation(simulation.pk)
        simulation.refresh_from_db()
        if simulation.status != "succeeded":
            raise SystemExit(f"simulation {simulation.pk} {simulation.status}: {simulation.message}")
        history = bandit_schedule.history(experiment.pk, simulation.pk)
        day0 = history[0].starts_at  # simulated day d is [day0 + d days, day0 + d + 1 days)
        served = ServedRequest.objects.filter(simulation=simulation).values_list("served_at", "arm__position")
        exposed = Exposure.objects.filter(simulation=simulation).values_list("first_exposed_at", "arm__position")
        clicked = Event.objects.filter(simulation=simulation, type="click").values_list("timestamp", "arm__position")
        run = SeedRun(
            seed=seed,
            sessions=_by_day(served.iterator(), day0, days),
            new_shoppers=_by_day(exposed.iterator(), day0, days),
            clicks=_by_day(clicked.iterator(), day0, days),
            weights=np.array([row.weights for row in history], dtype=np.float64),
            final_probability_best=float(history[-1].probability_best[1]),
        )
        runs.append(run)
        print(f"  {arrivals} seed {seed}: {simulation.sessions:,} sessions, final weights "
              f"{run.weights[-1][0]:.3f} / {run.weights[-1][1]:.3f}, {time.perf_counter() - started:.0f} s",
              flush=True)  # fmt: skip
        if not args.keep:
            delete_simulation(simulation)
    return runs


def print_mode(args: argparse.Namespace, arrivals: str, runs: list[SeedRun]) -> dict[str, list[float]]:
    days, lift, n = args.platform_days, args.lift, len(runs)
    tail = min(3, days)
    print(f"\n#### arrivals = {arrivals}: {n} seeds ({runs[0].seed}-{runs[-1].seed}) x {days} days x "
          f"~{args.platform_users:,.0f} sessions a day, +{lift:.0%} on arm 1; {args.platform_holdout:.0%} hold-out, "
          f"population x {args.platform_scale}, "
          f"floor {args.min_share:g}, burn-in {args.burn_in_users:,} impressions per arm and {args.burn_in_periods} "
          "period(s)\n")  # fmt: skip
    print(f"Per seed (better arm = arm 1; new shoppers = first exposures; last {tail} days = days {days - tail}-"
          f"{days - 1}):\n")  # fmt: skip
    print(
        "| seed | sessions | final weight | P(best) | weight on the last day | new shoppers, last day | "
        f"new shoppers, last {tail} days | sessions, last day | sessions, all days | regret bandit / 50/50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        bandit_regret, fixed_regret = run.regret(lift)
        last_new, tail_new = run.new_shoppers[-1], run.new_shoppers[-tail:].sum(axis=0)
        print(
            f"| {run.seed} | {run.sessions.sum():,} | {run.weights[-1][1]:.3f} | {run.final_probability_best:.3f} | "
            f"{run.weights[days - 1][1]:.3f} | {last_new[1]}/{last_new.sum()} | {tail_new[1]}/{tail_new.sum()} | "
            f"{_share(run.sessions[-1]):.3f} | {_share(run.sessions.sum(axis=0)):.3f} | "
            f"{bandit_regret[-1]:.1f} / {fixed_regret[-1]:.1f} |"
        )

    def seeds(condition: list[bool]) -> str:
        return f"{sum(condition)}/{n} ({sum(condition) / n:.0%})"

    regrets = [run.regret(lift) for run in runs]
    bandit_end = np.array([b[-1] for b, _ in regrets])
    fixed_end = np.array([f[-1] for _, f in regrets])
    print("\n| check (better arm = arm 1) | seeds |")
    print("|---|---|")
    print(f"| larger final weight | {seeds([r.weights[-1][1] > r.weights[-1][0] for r in runs])} |")
    print(f"| larger weight on the last day (the share of that day's new shoppers it gets) | "
          f"{seeds([r.weights[days - 1][1] > r.weights[days - 1][0] for r in runs])} |")  # fmt: skip
    print(f"| most new shoppers on the last day | "
          f"{seeds([r.new_shoppers[-1][1] > r.new_shoppers[-1][0] for r in runs])} |")  # fmt: skip
    print(f"| most new shoppers over the last {tail} days | "
          f"{seeds([r.new_shoppers[-tail:, 1].sum() > r.new_shoppers[-tail:, 0].sum() for r in runs])} |")  # fmt: skip
    print(f"| most sessions on the last day | {seeds([r.sessions[-1][1] > r.sessions[-1][0] for r in runs])} |")
    print(f"| most sessions in total | {seeds([r.sessions[:, 1].sum() > r.sessions[:, 0].sum() for r in runs])} |")
    print(f"| bandit regret below 50/50 by the end | {seeds(list(bandit_end < fixed_end))} |")
    new_last = np.array([r.new_shoppers[-1].sum() for r in runs])
    print(f"\nNew shoppers on the last day: mean {new_last.mean():.1f} (min {new_last.min()}, max {new_last.max()}); "
          f"sessions per seed: mean {np.mean([r.sessions.sum() for r in runs]):,.0f}. Regret by the end (expected "
          f"clicks lost): bandit {bandit_end.mean():.1f} (5th-95th pct {np.percentile(bandit_end, 5):.1f}-"
          f"{np.percentile(bandit_end, 95):.1f}) vs 50/50 {fixed_end.mean():.1f}: "
          f"{bandit_end.mean() / fixed_end.mean():.0%} of it.\n")  # fmt: skip

    print("Per day (means over seeds; shares pooled over seeds; regret cumulative):\n")
    print(
        "| day | weight on better arm | new shoppers | share of new shoppers on better arm | sessions | "
        "share of sessions on better arm | regret bandit | regret 50/50 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    weight = np.mean([r.weights[:days, 1] for r in runs], axis=0)
    new = np.sum([r.new_shoppers for r in runs], axis=0)
    sessions = np.sum([r.sessions for r in runs], axis=0)
    bandit_mean = np.mean([b for b, _ in regrets], axis=0)
    fixed_mean = np.mean([f for _, f in regrets], axis=0)
    for d in range(days):
        print(f"| {d} | {weight[d]:.3f} | {new[d].sum() / n:.1f} | {_share(new[d]):.3f} | "
              f"{sessions[d].sum() / n:,.0f} | {_share(sessions[d]):.3f} | {bandit_mean[d]:.1f} | "
              f"{fixed_mean[d]:.1f} |")  # fmt: skip
    return {
        "bandit": list(bandit_mean),
        "fixed": list(fixed_mean),
        "weight": list(weight),
        "new_share": [_share(new[d]) for d in range(days)],
        "session_share": [_share(sessions[d]) for d in range(days)],
    }


def fixed_split_control(args: argparse.Namespace, arrivals: str) -> None:
    """How often could any design see the +lift on these shoppers? The same simulated traffic split 50/50
    for the whole run (Django-free engine, nothing stored; assignment salt and simulation seed vary per
    seed), CTR compared with users as units (delta method, as the bandit's design effect does)."""
    from engine import bucketing
    from engine.simulation import SimulationConfig, run
    from engine.stats import RatioSample
    from recommenders.serving import model_for_run
    from simulation.services.runs import BatchScorer, load_shoppers

    experiment = bench_bandit(args, arrivals)
    data, shoppers = load_shoppers(experiment)
    arm = experiment.arms.order_by("position").select_related("training_run").first()
    if arm is None or arm.training_run is None:
        raise SystemExit(f"{experiment.key} has no trained control arm")
    scorer = BatchScorer(model_for_run(arm.training_run), data.user_ids, data.item_ids)

    def recommend(arm: int, users: np.ndarray, queries: Any) -> np.ndarray:
        return scorer(users, queries, SimulationConfig().k)

    allocation = bucketing.Allocation(traffic=1.0, weights=(0.5, 0.5))
    first = args.platform_fixed_first_seed
    right, significant, zs, effects, binomial_zs = [], [], [], [], []
    design_effects: list[list[float]] = []
    started = time.perf_counter()
    for seed in range(first, first + args.platform_fixed_seeds):
        config = SimulationConfig(daily_users=args.platform_users, days=args.platform_days, seed=seed,
                                  injected_effect=args.lift, arrivals=arrivals,
                                  population_scale=args.platform_scale)  # fmt: skip
        salt = f"fixed-split-{seed}"

        def assign(ids: np.ndarray, salt: str = salt) -> np.ndarray:
            return np.asarray(bucketing.assign_many(allocation, salt, ids).arm)

        result = run(config, shoppers, recommend, assign)
        out = result.outcomes
        user = result.sessions.user[out.session]
        samples = []
        population = len(data.user_ids) * args.platform_scale  # replica r of user u is u + r x users
        for a in (0, 1):
            mine = out.arm == a
            impressions = np.bincount(user[mine], minlength=population)
            clicks = np.bincount(user[mine], weights=out.clicked[mine], minlength=population)
            seen = impressions > 0
            samples.append(RatioSample.from_values(clicks[seen], impressions[seen]))
        diff = samples[1].mean - samples[0].mean
        z = diff / math.sqrt(sum(s.variance / s.n for s in samples))
        # What a Beta posterior over independent impressions assumes: Var = R (1 - R) / impressions.
        binomial_zs.append(diff / math.sqrt(sum(s.mean * (1 - s.mean) / s.sum_y for s in samples)))
        design_effects.append([s.variance / s.n / (s.mean * (1 - s.mean) / s.sum_y) for s in samples])
        right.append(diff > 0)
        significant.append(z > 1.6449)  # one-sided 5 %
        zs.append(z)
        effects.append(diff / samples[0].mean)
    n = len(zs)
    print(f"\n#### Fixed 50/50 split, same traffic (arrivals = {arrivals}, {len(shoppers.users):,} shoppers x "
          f"{args.platform_scale}): {n} seeds "
          f"({first}-{first + n - 1}), {time.perf_counter() - started:.0f} s\n")  # fmt: skip
    print("| check | result |")
    print("|---|---|")
    print(f"| better arm has the higher CTR by the end | {sum(right)}/{n} ({sum(right) / n:.0%}) |")
    print(f"| ... significantly (one-sided z > 1.645, users as units) | {sum(significant)}/{n} "
          f"({sum(significant) / n:.0%}) |")  # fmt: skip
    print(f"| z with users as units (delta method): mean, s.d. | {np.mean(zs):.2f}, {np.std(zs, ddof=1):.2f} |")
    print(f"| z with impressions as independent (binomial): mean, s.d. | {np.mean(binomial_zs):.2f}, "
          f"{np.std(binomial_zs, ddof=1):.2f} |")  # fmt: skip
    print(f"| design effect per arm (delta / binomial variance): mean, range | {np.mean(design_effects):.2f}, "
          f"{np.min(design_effects):.2f}-{np.max(design_effects):.2f} |")  # fmt: skip
    print(f"| observed relative lift, mean (true {args.lift:+.0%}) | {np.mean(effects):+.1%} "
          f"(5th-95th pct {np.percentile(effects, 5):+.1%} to {np.percentile(effects, 95):+.1%}) |")  # fmt: skip


def write_html(path: Path, series: dict[str, dict[str, list[float]]]) -> None:
    import plotly.graph_objects as go  # only when asked for
    from plotly.subplots import make_subplots

    titles = ("Cumulative regret (expected clicks lost), mean over seeds", "Better arm: weight and shares")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    for arrivals, s in series.items():
        days = list(range(len(s["bandit"])))
        fig.add_trace(go.Scatter(x=days, y=s["bandit"], name=f"Thompson bandit ({arrivals})"), row=1, col=1)
        fig.add_trace(go.Scatter(x=days, y=s["fixed"], name=f"fixed 50/50 ({arrivals})", line={"dash": "dash"}),
                      row=1, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(x=days, y=s["weight"], name=f"weight ({arrivals})"), row=1, col=2)
        fig.add_trace(go.Scatter(x=days, y=s["new_share"], name=f"new shoppers' share ({arrivals})",
                                 line={"dash": "dot"}), row=1, col=2)  # fmt: skip
        fig.add_trace(go.Scatter(x=days, y=s["session_share"], name=f"sessions' share ({arrivals})",
                                 line={"dash": "dash"}), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="simulated day")
    fig.write_html(path, include_plotlyjs=True)  # self-contained (3.6 MB): opens without a network
    print(f"Chart written to {path}\n")


def platform_tables(args: argparse.Namespace) -> None:
    import django

    django.setup()
    started = time.perf_counter()
    series = {}
    for arrivals in args.platform_arrivals:
        if args.platform_seeds > 0:
            runs = simulate_mode(args, arrivals)
            series[arrivals] = print_mode(args, arrivals, runs)
        if args.platform_fixed_seeds > 0:
            fixed_split_control(args, arrivals)
        print(f"\nTook {time.perf_counter() - started:.0f} s so far; load average {os.getloadavg()}.", flush=True)
    if args.html is not None and series:
        write_html(args.html, series)
