"""Simulator check of engine.bandits: does Thompson allocation find a +10 % arm, at what regret,
and does the analysis stay honest under A/A with changing weights?

Prints Markdown tables (run by hand; no Django, no data files):

  1. Effect run: two arms converting at ``--rate`` and ``--rate`` x (1 + ``--lift``) (default 5 % and
     5.5 %: +10 %), ``--periods`` periods of ``--users`` new users each. Before each period the
     weights are recomputed with ``thompson_update`` from the cumulative (users, purchasers) of the
     periods before it, exactly what the beat task will do from the rollups; the period's new users
     are split by the 1/10,000-rounded shares the bucketing really serves (``served_weights``), a
     binomial draw standing in for the uniform hash, and each user converts as a Bernoulli. Over
     ``--seeds`` seeds: the share of seeds in which the better arm holds the larger weight at the end
     and has received more users in total (target >= 90 %), and per period the mean cumulative
     regret (expected conversions lost: users sent to the worse arm x the rate gap) against a fixed
     50/50 split, whose regret is users / 2 x gap per period. At the end, both designs are analysed
     (the bandit with ``stratified_comparison``, the fixed split with the same function on its one
     stratum per period) to show what the regret saving costs in power.
  2. A/A runs with bandit allocation (both arms at the same rate): stationary, and with a time trend
     (the rate falls linearly from ``--trend-start`` to ``--trend-end``). False-positive rate at
     alpha = 0.05 of the batched test (the one to decide on), of the period-weighted Wald test and
     of the naive pooled two-proportion test, and the alarm rate of the SRM check against the
     served weights (alpha = 0.001).

  3. ``--platform`` (needs Django and a database): the bandit mode end to end on the shopper
     simulator, see ``bench/bandit_platform.py``; skips 1 and 2.

Usage: python bench/bandit_regret.py [--seeds 200] [--aa-seeds 400] [--periods 21] [--users 5000]
       [--html regret.html]   (a plotly chart, not committed)
       DATABASE_URL=postgres://... python bench/bandit_regret.py --platform [--platform-seeds 20]
       [--platform-days 14] [--platform-users 1000] [--platform-arrivals at-start uniform] [--html p.html]
       [--platform-scale 1] [--platform-holdout 0.2] [--min-share 0.05] [--burn-in-users 1000] [--burn-in-periods 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from engine.bandits import (
    ArmCounts,
    PeriodData,
    ThompsonConfig,
    allocation_for,
    bandit_srm,
    pooled_counts,
    served_weights,
    stratified_comparison,
    thompson_update,
)
from engine.stats import Proportion, proportion_test


class Run(NamedTuple):
    """One simulated bandit experiment: per period (rows) and arm (columns).

    A NamedTuple, not a dataclass: the smoke test loads this file without registering it in
    ``sys.modules``, which dataclasses need.
    """

    weights: npt.NDArray[np.float64]  # served shares of new users
    users: npt.NDArray[np.int64]
    successes: npt.NDArray[np.int64]
    final_weights: tuple[float, ...]  # the update after the last period: the allocation "by the end"

    def periods(self) -> list[PeriodData]:
        return [
            PeriodData(
                period=t,
                weights=tuple(float(w) for w in self.weights[t]),
                users=tuple(int(n) for n in self.users[t]),
                successes=tuple(int(s) for s in self.successes[t]),
            )
            for t in range(len(self.users))
        ]


def simulate(rates: npt.NDArray[np.float64], users: int, config: ThompsonConfig, rng: np.random.Generator) -> Run:
    """``rates``: periods x arms conversion rates. Weights of period t use periods < t only."""
    periods, arms = rates.shape
    served = np.zeros((periods, arms))
    n = np.zeros((periods, arms), dtype=np.int64)
    s = np.zeros((periods, arms), dtype=np.int64)
    for t in range(periods):
        counts = [ArmCounts(int(n[:t, a].sum()), int(s[:t, a].sum())) for a in range(arms)]
        update = thompson_update(counts, period=t, config=config)
        served[t] = served_weights(allocation_for(update.weights))
        n[t] = rng.multinomial(users, served[t])
        s[t] = rng.binomial(n[t], rates[t])
    counts = [ArmCounts(int(n[:, a].sum()), int(s[:, a].sum())) for a in range(arms)]
    final = thompson_update(counts, period=periods, config=config)
    return Run(weights=served, users=n, successes=s, final_weights=final.weights)


def fixed_split(rates: npt.NDArray[np.float64], users: int, rng: np.random.Generator) -> Run:
    periods, arms = rates.shape
    weights = np.full((periods, arms), 1.0 / arms)
    n = np.array([rng.multinomial(users, weights[t]) for t in range(periods)], dtype=np.int64)
    s = rng.binomial(n, rates).astype(np.int64)
    return Run(weights=weights, users=n, successes=s, final_weights=tuple(weights[-1]))


def _mean_se(values: Sequence[float]) -> str:
    """Mean +- its Monte Carlo standard error, in percentage points."""
    array = 100.0 * np.asarray(values)
    return f"{array.mean():+.3f} +- {array.std(ddof=1) / math.sqrt(len(array)):.3f} pp"


def naive_p_value(run: Run) -> float:
    (n0, s0), (n1, s1) = pooled_counts(run.periods())
    return proportion_test(Proportion(n0, s0), Proportion(n1, s1)).p_value


def effect_tables(args: argparse.Namespace, config: ThompsonConfig) -> tuple[list[float], list[float], list[float]]:
    base, better = args.rate, args.rate * (1.0 + args.lift)
    gap = better - base
    rates = np.tile([base, better], (args.periods, 1))
    rng = np.random.default_rng(args.seed)
    bandit_regret = np.zeros((args.seeds, args.periods))
    winner_weight = np.zeros((args.seeds, args.periods))
    winner_more_users = np.zeros((args.seeds, args.periods), dtype=bool)
    final_weight_ok, total_users_ok = [], []
    bandit_sig, bandit_batched_sig, fixed_sig, bandit_effect, naive_effect, fixed_effect = [], [], [], [], [], []
    covered = []
    for seed in range(args.seeds):
        run = simulate(rates, args.users, config, rng)
        bandit_regret[seed] = np.cumsum(run.users[:, 0]) * gap
        winner_weight[seed] = run.weights[:, 1]
        cum = np.cumsum(run.users, axis=0)
        winner_more_users[seed] = cum[:, 1] > cum[:, 0]
        final_weight_ok.append(run.final_weights[1] > run.final_weights[0])
        total_users_ok.append(bool(cum[-1, 1] > cum[-1, 0]))
        (result,) = stratified_comparison(run.periods())
        bandit_sig.append(result.p_value < 0.05 and result.effect > 0)
        bandit_batched_sig.append(result.batched_p_value < 0.05 and result.batched_z > 0)
        covered.append(result.ci_low <= gap <= result.ci_high)
        bandit_effect.append(result.effect)
        (n0, s0), (n1, s1) = pooled_counts(run.periods())
        naive_effect.append(s1 / n1 - s0 / n0)
        fixed = fixed_split(rates, args.users, rng)
        (fixed_result,) = stratified_comparison(fixed.periods())
        fixed_sig.append(fixed_result.p_value < 0.05 and fixed_result.effect > 0)
        fixed_effect.append(fixed_result.effect)
    fixed_regret = np.cumsum(np.full(args.periods, args.users / 2.0 * gap))
    mean_regret = bandit_regret.mean(axis=0)

    print(
        f"### Effect run: {base:.2%} vs {better:.3%} (+{args.lift:.0%}), {args.periods} periods x "
        f"{args.users:,} new users, {args.seeds} seeds\n"
    )
    print(
        f"Thompson config: min share {config.min_share:.0%}, burn-in until every arm has "
        f"{config.burn_in_trials:,} users and period >= {config.burn_in_periods}, Beta(1, 1) prior.\n"
    )
    print("| check | result |")
    print("|---|---|")
    print(f"| better arm has the larger weight by the end | {np.mean(final_weight_ok):.1%} of seeds (target >= 90 %) |")
    print(f"| better arm received more users in total | {np.mean(total_users_ok):.1%} of seeds |")
    print(
        f"| regret by the end (conversions lost) | bandit {mean_regret[-1]:.1f} "
        f"(5th-95th pct {np.percentile(bandit_regret[:, -1], 5):.1f}-{np.percentile(bandit_regret[:, -1], 95):.1f}) "
        f"vs 50/50 {fixed_regret[-1]:.1f}: {mean_regret[-1] / fixed_regret[-1]:.0%} of it |"
    )
    print(
        f"| significant (p < 0.05, right sign) | bandit: batched test {np.mean(bandit_batched_sig):.1%}, "
        f"period-weighted Wald {np.mean(bandit_sig):.1%}; 50/50: {np.mean(fixed_sig):.1%} of seeds |"
    )
    print(f"| bandit: 95 % interval of the period-weighted effect covers the true gap | {np.mean(covered):.1%} |")
    print(
        f"| mean estimated effect (true {100 * gap:+.3f} pp) +- MC s.e. | "
        f"bandit stratified {_mean_se(bandit_effect)}, bandit naive pooled {_mean_se(naive_effect)}, "
        f"50/50 {_mean_se(fixed_effect)} |"
    )
    print("\nPer period (means over seeds; regret cumulative, in expected conversions lost):\n")
    print("| period | weight on better arm | seeds better arm has more users so far | regret bandit | regret 50/50 |")
    print("|---|---|---|---|---|")
    for t in range(args.periods):
        print(
            f"| {t} | {winner_weight[:, t].mean():.3f} | {winner_more_users[:, t].mean():.1%} | "
            f"{mean_regret[t]:.1f} | {fixed_regret[t]:.1f} |"
        )
    print()
    return list(mean_regret), list(fixed_regret), list(winner_weight.mean(axis=0))


def aa_table(args: argparse.Namespace, config: ThompsonConfig) -> None:
    scenarios: list[tuple[str, npt.NDArray[np.float64]]] = [
        (f"stationary {args.rate:.1%}", np.full((args.periods, 2), args.rate)),
        (
            f"trend {args.trend_start:.1%} -> {args.trend_end:.1%}",
            np.repeat(np.linspace(args.trend_start, args.trend_end, args.periods)[:, None], 2, axis=1),
        ),
    ]
    print(f"### A/A with bandit allocation: {args.aa_seeds} seeds x {args.periods} periods x {args.users:,} users\n")
    print(f"False-positive rates at alpha 0.05; Monte Carlo s.e. {math.sqrt(0.05 * 0.95 / args.aa_seeds):.1%}.\n")
    print("| scenario | FPR batched test | FPR period-weighted Wald | FPR naive pooled | SRM alarms (alpha 0.001) |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed + 1)
    for name, rates in scenarios:
        batched_fp = stratified_fp = naive_fp = srm_alarms = 0
        for _ in range(args.aa_seeds):
            run = simulate(rates, args.users, config, rng)
            periods = run.periods()
            (result,) = stratified_comparison(periods)
            stratified_fp += result.p_value < 0.05
            batched_fp += result.batched_p_value < 0.05
            naive_fp += naive_p_value(run) < 0.05
            srm_alarms += bandit_srm(periods).mismatch
        k = args.aa_seeds
        print(
            f"| {name} | {batched_fp / k:.1%} | {stratified_fp / k:.1%} | {naive_fp / k:.1%} | {srm_alarms / k:.1%} |"
        )
    print()


def write_html(path: Path, bandit: Sequence[float], fixed: Sequence[float], weight: Sequence[float]) -> None:
    import plotly.graph_objects as go  # only when asked for: the tables need no plotting library
    from plotly.subplots import make_subplots

    periods = list(range(len(bandit)))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Cumulative regret (conversions lost)", "Weight on better arm"))
    fig.add_trace(go.Scatter(x=periods, y=list(bandit), name="Thompson bandit"), row=1, col=1)
    fig.add_trace(go.Scatter(x=periods, y=list(fixed), name="fixed 50/50"), row=1, col=1)
    fig.add_trace(go.Scatter(x=periods, y=list(weight), name="bandit weight, better arm"), row=1, col=2)
    fig.update_xaxes(title_text="period")
    fig.write_html(path, include_plotlyjs=True)  # self-contained: opens without a network
    print(f"Chart written to {path}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=200, help="effect runs (>= 100 for figures worth publishing)")
    parser.add_argument("--aa-seeds", type=int, default=400, help="A/A runs per scenario (0: skip)")
    parser.add_argument("--periods", type=int, default=21, help="weight updates (e.g. days)")
    parser.add_argument("--users", type=int, default=5000, help="new users per period")
    parser.add_argument("--rate", type=float, default=0.05, help="control conversion rate")
    parser.add_argument("--lift", type=float, default=0.10, help="relative effect of the better arm")
    parser.add_argument("--trend-start", type=float, default=0.07)
    parser.add_argument("--trend-end", type=float, default=0.03)
    parser.add_argument("--min-share", type=float, default=0.05, help="minimum share per arm (also --platform)")
    parser.add_argument(
        "--burn-in-users", type=int, default=1000,
        help="burn-in: trials per arm before the weights move (--platform: impressions, a CTR bandit's trials)",
    )  # fmt: skip
    parser.add_argument("--burn-in-periods", type=int, default=1, help="burn-in: periods (also --platform)")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--html", type=Path, default=None, help="write a plotly chart of the effect run here")
    parser.add_argument("--platform", action="store_true", help="run the shopper simulator through the platform")
    parser.add_argument("--platform-seeds", type=int, default=20, help="simulation runs per arrivals mode")
    parser.add_argument("--platform-first-seed", type=int, default=0, help="first seed (tune on other seeds)")
    parser.add_argument(
        "--platform-fixed-seeds", type=int, default=0, help="also run this many fixed 50/50 splits (no database)"
    )
    parser.add_argument("--platform-fixed-first-seed", type=int, default=1000)
    parser.add_argument(
        "--platform-arrivals", nargs="+", default=["at-start", "uniform"],
        choices=["at-start", "uniform", "first-purchase"], help="SimulationConfig.arrivals modes to run",
    )  # fmt: skip
    parser.add_argument("--platform-days", type=int, default=14)
    parser.add_argument("--platform-users", type=float, default=1000.0, help="simulated sessions a day")
    parser.add_argument(
        "--platform-scale", type=int, default=1,
        help="SimulationConfig.population_scale: each shopper stands for this many (scale --platform-users with it)",
    )  # fmt: skip
    parser.add_argument(
        "--platform-holdout", type=float, default=0.2,
        help="share of Online Retail's time held out: its shoppers are those who buy in it (0.2: 1,893 shoppers)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the platform runs' traffic")
    args = parser.parse_args(argv)
    if args.platform:
        from bandit_platform import platform_tables  # Django only in this mode

        print(f"bandit_regret --platform run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores\n")
        platform_tables(args)
        return 0
    config = ThompsonConfig(
        min_share=args.min_share, burn_in_trials=args.burn_in_users, burn_in_periods=args.burn_in_periods
    )
    started = time.perf_counter()
    print(f"bandit_regret run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores\n")
    bandit, fixed, weight = effect_tables(args, config)
    if args.aa_seeds > 0:
        aa_table(args, config)
    if args.html is not None:
        write_html(args.html, bandit, fixed, weight)
    print(f"Took {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
