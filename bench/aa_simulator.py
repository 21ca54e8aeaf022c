"""A/A check of the platform's always-valid verdict on the shopper simulator, looked at every day (needs Django).

The promise under test: an experiment analysed with the default `sequential` method may be looked at
after every day, and with no true difference its verdict declares a winner in at most alpha of
experiments. Both arms of one A/B experiment serve the same trained variant (`--variant`, trained on
the bundled Online Retail data with the last 20 % of its time held out); each seed is one simulation
run through the platform in this process (`queue_simulation` + `run_simulation`: the experiment's
bucketing, the arms' frozen models, storage and the fold of the rollups, as the Simulate button). The
results service's `lift_history` then holds the platform's look at the end of each (UTC) day: the
always-valid test of the primary metric's log ratio (shown as the relative lift) on that day's
cumulative statistics, at the experiment's N*. A seed declares a winner when any look has p < alpha.
The run is deleted before the next seed, so each seed starts from an empty experiment.

Each seed gets its own bucketing salt (`<key>-seed-<seed>`, written straight onto the running
experiment, whose salt the lifecycle otherwise locks): the guarantee is over the random split of the
shoppers, and with one salt every seed would compare the same two groups again (`--fixed-salt`).

N*, where the always-valid test is tightest, comes from the experiment's plan (`--plan BASELINE MDE`:
its planning fields, so N* = the plan's users of both arms), or with `--no-plan` the engine's default
(30,000). The default plan, a 14 % two-week conversion and a +34 % lift, needs 945 users an arm: the
plan a team would make to finish within the bundled shop's 1,893 shoppers, so the test is tightest
where this shop's data are. For contrast, on the same cumulative statistics
(`arm_metrics.cumulative_statistics`, what the looks of `lift_history` are computed from):
  * naive: the fixed-horizon test (`proportion_test`, relative) peeked at every day;
  * the fixed-horizon test at the last day only (exact 5 % when the statistic is calibrated);
  * the same always-valid test on the absolute difference (same null hypothesis, no ratio);
  * the same always-valid test on the relative form t / c - 1 (gbstats' scale, the verdict's before);
  * the always-valid test at each `--also-n-star` (default: the engine's default N*).
Declarations are split by direction (the relative lift's sign at the first declaring look): in an
A/A test "control wins" and "treatment wins" should be about equally frequent.

Seeds are `--first-seed` .. `--first-seed + --seeds - 1`: the same arguments give the same traffic.
Exits with status 1 when the platform's verdict declared a winner in more than alpha of the seeds.
Writes bench/results/<--name>.json (bench/report.py).

    nice -n 10 python bench/aa_simulator.py                  # 200 seeds x 14 days x 1,000 sessions a day
    nice -n 10 python bench/aa_simulator.py --seeds 5 --no-write   # a timing trial
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, importable from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

from report import Spread, write  # bench/, the script's directory

DEFAULT_N_STAR = 30_000.0  # engine.stats.DEFAULT_N_STAR, without importing the project for --help
VARIANTS = {"popularity": ("retail-popularity", "popularity", {}),
            "item_knn": ("retail-item-knn", "item_knn", {"neighbours": 200, "shrink": 20.0})}  # fmt: skip
PValues = tuple[float | None, ...]  # one per day, None where that test gave no look
CONTRASTS = {"naive": "naive: fixed-horizon test (relative), any daily look",
             "absolute": "always-valid on the absolute difference, platform's N*, any daily look",
             "relative": "always-valid on the relative form (gbstats'), platform's N*, any daily look"}  # fmt: skip


@dataclass(frozen=True)
class SeedOutcome:
    """One seed: per day (UTC dates from the first with traffic) the cumulative users and successes of
    both arms, the platform's look (p-value, relative lift) and the contrast procedures' p-values."""

    seed: int
    seconds: float
    sessions: int
    days: tuple[str, ...]
    users: tuple[int, ...]
    successes: tuple[int, ...]
    sequential_p: PValues
    effect: PValues
    contrasts: dict[str, PValues]  # contrast procedure (CONTRASTS) -> its p-value each day


def first_below(p_values: PValues, alpha: float) -> int | None:
    """Index of the first day with p < alpha (None: never)."""
    return next((i for i, p in enumerate(p_values) if p is not None and p < alpha), None)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200, help="simulated A/A experiments (default 200)")
    parser.add_argument("--first-seed", type=int, default=0, help="first simulation seed (default 0)")
    parser.add_argument("--daily-users", type=float, default=1_000,
                        help="mean sessions a simulated day (default 1000: ~7 a shopper in 14 days)")  # fmt: skip
    parser.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    parser.add_argument("--scale", type=int, default=1,
                        help="population_scale: a shop S times the 1,893 simulated shoppers (default 1)")  # fmt: skip
    parser.add_argument("--arrivals", choices=("at-start", "uniform", "first-purchase"), default="at-start",
                        help="when shoppers first come (SimulationConfig.arrivals; default at-start)")  # fmt: skip
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="popularity",
                        help="the trained variant both arms serve (default popularity)")  # fmt: skip
    parser.add_argument("--metric", choices=("conversion_rate", "add_to_cart_rate"), default="conversion_rate",
                        help="primary metric, a proportion of users (default conversion_rate)")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.05, help="the experiment's alpha (default 0.05)")
    plan = parser.add_mutually_exclusive_group()
    plan.add_argument("--plan", type=float, nargs=2, metavar=("BASELINE", "MDE"), default=(0.14, 0.34),
                      help="the experiment's planning fields: baseline rate and relative lift; N* = the "
                           "plan's users (default 0.14 0.34: 945 an arm)")  # fmt: skip
    plan.add_argument("--no-plan", action="store_true", help="no planning fields: the engine's default N*")
    parser.add_argument("--also-n-star", type=float, nargs="*", default=[DEFAULT_N_STAR],
                        help=f"also test the same looks at these N* (default {DEFAULT_N_STAR:.0f})")  # fmt: skip
    parser.add_argument("--fixed-salt", action="store_true",
                        help="one bucketing salt for every seed (the same split of shoppers each time)")  # fmt: skip
    parser.add_argument("--name", default="aa_simulator", help="results file bench/results/NAME.json")
    parser.add_argument("--no-write", action="store_true", help="print only (timing trials)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def prepare(args: argparse.Namespace) -> Any:
    """The A/A experiment for these settings: created, trained and started once, then reused."""
    import django

    django.setup()
    from benchdata import bench_experiment, held_out_retail

    variant, algorithm, params = VARIANTS[args.variant]
    arms = [("control", variant, algorithm, params), ("same", variant, algorithm, params)]
    fields: dict[str, Any] = {"primary_metric": args.metric, "alpha": args.alpha}
    plan = "noplan"
    if not args.no_plan:
        fields.update(baseline_rate=args.plan[0], minimum_detectable_effect=args.plan[1])
        plan = f"plan{args.plan[0]:g}x{args.plan[1]:g}"
    key = f"bench-aa-{args.variant}-{args.metric}-alpha{args.alpha:g}-{plan}".replace(".", "p").replace("_", "-")
    title = f"A/A: {variant} in both arms, {args.metric}"
    return bench_experiment(key, title, held_out_retail("online-retail-bench"), arms, **fields)


def run_seed(experiment: Any, args: argparse.Namespace, seed: int, n_star: float) -> SeedOutcome:
    """Simulate one seed on the empty experiment, read its looks, delete the run (`n_star`: the platform's)."""
    from analysis.services.arm_metrics import cumulative_statistics
    from analysis.services.results import experiment_results
    from engine.stats import StatisticError, proportion_test, sequential_test
    from experiments.models import Experiment
    from simulation.models import SimulationRun
    from simulation.services.runs import delete_simulation, run_simulation
    from simulation.tasks import queue_simulation

    began = time.perf_counter()
    if SimulationRun.objects.filter(experiment=experiment).exists():
        raise SystemExit(f"{experiment.key} has simulation runs left over: delete them first")
    if not args.fixed_salt:
        Experiment.objects.filter(pk=experiment.pk).update(salt=f"{experiment.key}-seed-{seed}")
        experiment.refresh_from_db()
    settings = {"daily_users": args.daily_users, "days": args.days, "seed": seed, "arrivals": args.arrivals,
                "population_scale": args.scale}  # fmt: skip
    simulation = queue_simulation(experiment, settings, send=False)
    try:
        run_simulation(simulation.pk)
        simulation.refresh_from_db()
        if simulation.status != "succeeded":
            raise SystemExit(f"seed {seed}: simulation {simulation.pk} {simulation.status}: {simulation.message}")
        results = experiment_results(experiment, traffic="simulated")
        treatment = next(arm.name for arm in results.arms if not arm.is_control)
        looks = {look.day: look for look in results.lift_history[treatment]}
        arms = list(experiment.arms.order_by("position", "pk"))
        cumulative = cumulative_statistics(experiment, arms, "simulated", experiment.primary_metric)
    finally:
        delete_simulation(simulation)

    def p_value(test: Any, *statistics: Any, **options: Any) -> float | None:
        if None in statistics:
            return None
        try:
            return float(test(*statistics, alpha=args.alpha, **{"difference": "relative", **options}).p_value)
        except StatisticError:
            return None  # the engine cannot test yet (no variance), as the lift history leaves the day out

    days, users, successes = [], [], []
    contrasts: dict[str, list[float | None]] = {name: [] for name in (*CONTRASTS, *map(n_star_key, args.also_n_star))}
    for day, statistics in cumulative:
        c, t = statistics[arms[0].pk], statistics[arms[1].pk]
        days.append(day.isoformat())
        users.append(sum(s.n for s in (c, t) if s is not None))
        successes.append(sum(s.successes for s in (c, t) if s is not None))
        contrasts["naive"].append(p_value(proportion_test, c, t))
        contrasts["absolute"].append(p_value(sequential_test, c, t, n_star=n_star, difference="absolute"))
        contrasts["relative"].append(p_value(sequential_test, c, t, n_star=n_star))
        for other in args.also_n_star:
            contrasts[n_star_key(other)].append(p_value(sequential_test, c, t, n_star=other))
    return SeedOutcome(
        seed=seed,
        seconds=time.perf_counter() - began,
        sessions=simulation.sessions,
        days=tuple(days),
        users=tuple(users),
        successes=tuple(successes),
        sequential_p=tuple(looks[d].p_value if d in looks else None for d in days),
        effect=tuple(looks[d].effect if d in looks else None for d in days),
        contrasts={name: tuple(p) for name, p in contrasts.items()},
    )


def n_star_key(n_star: float) -> str:
    return f"n_star_{n_star:g}"


def interval(k: int, n: int) -> dict[str, Any]:
    """k of n with its 95 % Wilson and Clopper-Pearson (exact) intervals."""
    test = binomtest(k, n)
    wilson, exact = test.proportion_ci(method="wilson"), test.proportion_ci(method="exact")
    return {"seeds": k, "of": n, "rate": k / n, "wilson_95": [wilson.low, wilson.high],
            "clopper_pearson_95": [exact.low, exact.high]}  # fmt: skip


def summarise(outcomes: list[SeedOutcome], alpha: float) -> dict[str, Any]:
    """Rates over seeds: any day, the last day, and by day (days counted from the run's first UTC date)."""
    n = len(outcomes)
    first = date.fromisoformat(outcomes[0].days[0])
    if any(o.days[0] != outcomes[0].days[0] or len(o.days) != len(outcomes[0].days) for o in outcomes):
        raise SystemExit("the seeds' runs cover different days: the per-day table would not line up")
    procedures = {"sequential": [o.sequential_p for o in outcomes]}
    procedures.update({name: [o.contrasts[name] for o in outcomes] for name in outcomes[0].contrasts})
    firsts = {name: [first_below(p, alpha) for p in ps] for name, ps in procedures.items()}
    signs = [np.sign(o.effect[f]) for o, f in zip(outcomes, firsts["sequential"], strict=True) if f is not None]
    by_day = []
    for i, day in enumerate(outcomes[0].days):
        row: dict[str, Any] = {"day": (date.fromisoformat(day) - first).days, "date": day,
                               "users_mean": float(np.mean([o.users[i] for o in outcomes])),
                               "rate_mean": float(np.mean([o.successes[i] / max(o.users[i], 1) for o in outcomes])),
                               "looks": sum(o.sequential_p[i] is not None for o in outcomes)}  # fmt: skip
        for name, found in firsts.items():
            row[f"{name}_declared_by"] = sum(f is not None and f <= i for f in found) / n
        today = [o.contrasts["naive"][i] for o in outcomes]
        row["naive_this_day"] = sum(p is not None and p < alpha for p in today) / n
        by_day.append(row)
    last = [next((p for p in reversed(o.contrasts["naive"]) if p is not None), None) for o in outcomes]
    return {
        **{f"{name}_any_day": interval(sum(f is not None for f in found), n) for name, found in firsts.items()},
        "fixed_last_day": interval(sum(p is not None and p < alpha for p in last), n),
        "sequential_control_wins": sum(s < 0 for s in signs),
        "sequential_treatment_wins": sum(s > 0 for s in signs),
        "by_day": by_day,
    }


def print_tables(args: argparse.Namespace, summary: dict[str, Any], outcomes: list[SeedOutcome],
                 seconds: Spread, n_star: tuple[float, str]) -> None:  # fmt: skip
    users = np.array([o.users[-1] for o in outcomes])
    rate = np.array([o.successes[-1] / o.users[-1] for o in outcomes])
    sessions = np.array([o.sessions for o in outcomes])
    salt = "one salt for all seeds" if args.fixed_salt else "a salt per seed"
    print(f"\nA/A on the simulator: {len(outcomes)} seeds ({outcomes[0].seed}-{outcomes[-1].seed}) x {args.days} "
          f"days x ~{args.daily_users:,.0f} sessions a day ({args.arrivals} arrivals, population x {args.scale}); "
          f"{args.variant} in both arms; {args.metric}, alpha {args.alpha}, N* {n_star[0]:,.0f} ({n_star[1]}); "
          f"{salt}")  # fmt: skip
    print(f"per seed: {np.median(sessions):,.0f} sessions, {np.median(users):,.0f} users ({users.min():,}-"
          f"{users.max():,}), {args.metric} {np.mean(rate):.2%} ({rate.min():.2%}-{rate.max():.2%}) by the end; "
          f"{len(outcomes[0].days)} daily looks (UTC days; the first is the part-day from the start at the hold-out "
          f"time); seconds a seed {seconds.text(1)}\n")  # fmt: skip
    print(f"| procedure: a winner when p < {args.alpha} at ... | seeds | rate | 95 % Wilson | 95 % Clopper-Pearson |")
    print("|---|---|---|---|---|")
    rows = [("platform verdict: always-valid (log ratio, shown as the relative lift), any daily look",
             "sequential_any_day"),
            *((label, f"{name}_any_day") for name, label in CONTRASTS.items()),
            ("fixed-horizon test (relative), last day only", "fixed_last_day")]  # fmt: skip
    rows += [(f"always-valid (relative) at N* {n:,.0f}, any daily look", f"{n_star_key(n)}_any_day")
             for n in args.also_n_star]  # fmt: skip
    for label, key in rows:
        r = summary[key]
        (w_low, w_high), (cp_low, cp_high) = r["wilson_95"], r["clopper_pearson_95"]
        print(f"| {label} | {r['seeds']}/{r['of']} | {r['rate']:.3f} | {w_low:.3f}-{w_high:.3f} | "
              f"{cp_low:.3f}-{cp_high:.3f} |")  # fmt: skip
    print(f"\nDirection of the platform's declarations (the lift's sign at the first declaring look): control wins "
          f"{summary['sequential_control_wins']}, treatment wins {summary['sequential_treatment_wins']}.")  # fmt: skip
    also = [n_star_key(n) for n in args.also_n_star]
    print("\nShare of seeds declared by the end of each day (cumulative), and the naive test on that day alone:\n")
    print("| day | date | users | rate | platform looks | platform | naive | naive, that day | absolute | relative | "
          + " | ".join(f"N* {n:,.0f}" for n in args.also_n_star) + " |")  # fmt: skip
    print("|---" * (10 + len(also)) + "|")
    for row in summary["by_day"]:
        print(f"| {row['day']} | {row['date']} | {row['users_mean']:,.0f} | {row['rate_mean']:.2%} | {row['looks']} | "
              f"{row['sequential_declared_by']:.3f} | {row['naive_declared_by']:.3f} | {row['naive_this_day']:.3f} | "
              f"{row['absolute_declared_by']:.3f} | {row['relative_declared_by']:.3f} | "
              + " | ".join(f"{row[f'{k}_declared_by']:.3f}" for k in also) + " |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    experiment = prepare(args)
    from analysis.services.horizon import sequential_n_stars

    arms = list(experiment.arms.order_by("position", "pk"))
    n_star = sequential_n_stars(experiment, arms)[arms[1].pk]
    started = time.perf_counter()
    outcomes: list[SeedOutcome] = []
    declared = 0
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tqdm(seeds, desc="A/A seeds", unit="seed", file=sys.stderr) as bar:
        for seed in bar:
            outcome = run_seed(experiment, args, seed, n_star[0])
            outcomes.append(outcome)
            declared += first_below(outcome.sequential_p, args.alpha) is not None
            bar.set_postfix(declared=f"{declared}/{len(outcomes)}", seconds=f"{outcome.seconds:.1f}")
    total = time.perf_counter() - started
    seconds = Spread.of([o.seconds for o in outcomes])
    summary = summarise(outcomes, args.alpha)
    print_tables(args, summary, outcomes, seconds, n_star)
    print(f"\n{len(outcomes)} seeds in {total:.0f} s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    if not args.no_write:
        settings = {k: v for k, v in vars(args).items() if k not in ("no_write", "name")}
        path = write(args.name, {
            "settings": settings, "experiment": experiment.key, "n_star": n_star[0], "n_star_source": n_star[1],
            **summary, "seconds_per_seed": seconds, "seconds_total": total, "seeds": [asdict(o) for o in outcomes],
        })  # fmt: skip
        print(f"written to {path}")
    rate = summary["sequential_any_day"]["rate"]
    if rate > args.alpha:
        print(f"FAIL: the platform's always-valid verdict declared a winner in {rate:.1%} of the A/A seeds, more "
              f"than alpha = {args.alpha:.0%}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
