"""Validity benchmark of engine.offpolicy: do the off-policy estimates match what really happened?

Prints Markdown tables (run by hand; read-only on the data; no Django):

  1. Open Bandit Dataset (ZOZOTOWN, ../shared/data/open-bandit-dataset), per campaign: the CTR of
     the Bernoulli Thompson sampling policy (bts) estimated from the uniform-random policy's logs
     with IPS, SNIPS and DR (position-wise), beside the CTR bts actually got in its own logs (with a
     Clopper-Pearson interval).

     The bts policy's action distribution is not in the data: the Open Bandit Pipeline recomputes it
     from ZOZOTOWN's posterior, which we do not have. The bts logs come from context-free Thompson
     sampling (its propensities vary over time, not with the user), so we estimate its marginals
     pi_bts(item, position) by their empirical frequencies in the bts logs
     (``PositionPolicy.from_frequencies``). That estimate is itself noisy (10,000 impressions over
     3 x 34 or 3 x 46 cells), so besides the estimators' own intervals (random logs resampled,
     pi_bts fixed) a joint bootstrap resamples both logs, re-estimates pi_bts and refits the DR model
     each time; the "z" column compares estimate and truth with both of their standard errors.
     Caveat: the two policies ran side by side in the same week, so the comparison also assumes the
     click behaviour did not depend on which policy served the user.

     Then the reverse direction: the uniform-random policy's CTR estimated from the bts logs with
     the propensities bts logged (no estimated policy involved), against the CTR it really got.

  2. Synthetic impression logs with a known truth (34 items x 3 positions, CTR about 0.5 % like the
     Open Bandit logs, uniform logging, 10,000 impressions per log): for several target policies, the
     share of seeds whose 95 % interval covers the true CTR (target >= 90 %), the mean bias, and how
     often the estimates rank the targets in their true order.
  3. Synthetic whole-ranking logs (Plackett-Luce rankings, independent or cascade clicks): coverage
     of the independent-item, cascade and whole-ranking IPS, to show what each assumption costs.
  4. With --simulator-seeds N (needs Django and DATABASE_URL; bench/offpolicy_simulator.py): the
     platform's traffic simulator on Online Retail logs an A/B/C experiment with the exploration share,
     and four trained variants' CTRs are estimated from those logs as the platform's estimate task does,
     against each variant's simulated truth and the simulated A/B test's order.

Usage: python bench/offpolicy_validity.py [--bootstrap 2000] [--joint 500] [--seeds 200] ...
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
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from engine.offpolicy import (
    ClickModel,
    EstimatorConfig,
    LoggedFeedback,
    OffPolicyEstimate,
    PlackettLuce,
    PositionPolicy,
    RankingAssumption,
    RewardModelConfig,
    SlateLog,
    cross_fitted_predictions,
    doubly_robust,
    evaluate_position_wise,
    ips,
    point_estimates,
    ranking_ips,
    ranking_true_value,
    simulate_ranking_log,
    simulate_slate_log,
    snips,
    true_value,
)

FloatArray = npt.NDArray[np.float64]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open-bandit-dataset"
CAMPAIGNS = ("men", "women")
ESTIMATORS = ("IPS", "SNIPS", "DR")
ASSUMPTIONS: tuple[RankingAssumption, ...] = ("independent", "cascade", "standard")
N_POSITIONS = 3


class CampaignLogs(NamedTuple):
    """One campaign's two logs: the uniform-random policy's (``random``) and Thompson sampling's (``bts``)."""

    name: str
    random: SlateLog
    bts: SlateLog


def read_log(path: Path, n_items: int) -> SlateLog:
    """An Open Bandit CSV as a SlateLog (positions 1..3 become slots 0..2)."""
    frame = pd.read_csv(path, usecols=["item_id", "position", "click", "propensity_score"])
    return SlateLog(
        items=frame["item_id"].to_numpy(),
        positions=frame["position"].to_numpy() - 1,
        rewards=frame["click"].to_numpy(dtype=np.float64),
        propensities=frame["propensity_score"].to_numpy(),
        n_items=n_items,
        n_positions=N_POSITIONS,
    )


def read_campaign(data: Path, campaign: str) -> CampaignLogs:
    # The item count comes from item_context.csv, so an item neither policy showed still counts.
    n_items = len(pd.read_csv(data / "random" / campaign / "item_context.csv"))
    return CampaignLogs(
        campaign,
        read_log(data / "random" / campaign / f"{campaign}.csv", n_items),
        read_log(data / "bts" / campaign / f"{campaign}.csv", n_items),
    )


def bts_marginals(log: SlateLog, smoothing: float) -> PositionPolicy:
    return PositionPolicy.from_frequencies(log.items, log.positions, log.n_items, log.n_positions, smoothing)


def subset(log: SlateLog, rows: npt.NDArray[np.int64]) -> SlateLog:
    return SlateLog(
        log.items[rows], log.positions[rows], log.rewards[rows], log.propensities[rows], log.n_items, log.n_positions
    )


def joint_bootstrap(
    logs: CampaignLogs, args: argparse.Namespace, model: RewardModelConfig, seed: int
) -> dict[str, FloatArray]:
    """Point estimates over resamples of BOTH logs: pi_bts re-estimated and the DR model refitted each time.

    A row drawn twice may land in two cross-fitting folds, so DR's model sees some of its own clicks
    here; with ~1 click per 200 rows that leak is small.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    for _ in range(args.joint):
        target = bts_marginals(subset(logs.bts, rng.integers(0, logs.bts.n, logs.bts.n)), args.smoothing)
        log = subset(logs.random, rng.integers(0, logs.random.n, logs.random.n))
        feedback = LoggedFeedback(log.rewards, log.propensities, target.probabilities[log.positions, log.items])
        predictions = cross_fitted_predictions(log, target, model)
        for name, value in point_estimates(feedback, predictions, args.clip).items():
            out[name].append(value)
    return {name: np.asarray(values) for name, values in out.items()}


def pct(value: float) -> str:
    return f"{100 * value:.3f} %"


def interval(lower: float, upper: float) -> str:
    return f"[{100 * lower:.3f}, {100 * upper:.3f}]"


def markdown(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


HEADER = (
    "campaign",
    "what",
    "CTR",
    "interval (logs resampled)",
    "truth inside?",
    "joint interval (both logs resampled)",
    "truth inside?",
    "z vs truth",
    "notes",
)


class Actual(NamedTuple):
    """The CTR a policy really got in its own logs, with a Clopper-Pearson interval and binomial standard error."""

    row: list[str]
    ctr: float
    standard_error: float


def actual(campaign: str, label: str, log: SlateLog) -> Actual:
    ctr = float(log.rewards.mean())
    clicks = int(log.rewards.sum())
    exact = stats.binomtest(clicks, log.n).proportion_ci(0.95, method="exact")
    row = [campaign, label, pct(ctr), interval(exact.low, exact.high), "", "", "", "", f"{clicks} clicks / {log.n:,}"]
    return Actual(row, ctr, math.sqrt(ctr * (1 - ctr) / log.n))


def estimate_row(
    campaign: str, label: str, estimate: OffPolicyEstimate, truth: Actual, joint: FloatArray | None
) -> list[str]:
    """One estimator's row; without a joint bootstrap, z uses the estimator's own (delta-method) standard error."""
    if joint is None:
        joint_cells = ["", ""]
        spread = estimate.standard_error
    else:
        low, high = (float(q) for q in np.quantile(joint, [0.025, 0.975]))
        joint_cells = [interval(low, high), "yes" if low <= truth.ctr <= high else "no"]
        spread = float(joint.std(ddof=1))
    z = (estimate.estimate - truth.ctr) / math.hypot(spread, truth.standard_error)
    flag = "; warned (below)" if estimate.warnings else ""
    return [
        campaign,
        label,
        pct(estimate.estimate),
        interval(estimate.ci_lower, estimate.ci_upper),
        "yes" if estimate.ci_lower <= truth.ctr <= estimate.ci_upper else "no",
        *joint_cells,
        f"{z:+.2f}",
        f"ESS {estimate.effective_sample_size:,.0f} of {estimate.n:,}, max w {estimate.max_weight:,.1f}{flag}",
    ]


def open_bandit_table(campaigns: Sequence[CampaignLogs], args: argparse.Namespace) -> None:
    config = EstimatorConfig(n_bootstrap=args.bootstrap, seed=args.seed, clip=args.clip)
    model = RewardModelConfig(prior_strength=args.prior_strength, folds=args.folds, seed=args.seed)
    rows: list[list[str]] = []
    notes: list[str] = []
    for logs in campaigns:
        started = time.perf_counter()
        target = bts_marginals(logs.bts, args.smoothing)
        truth = actual(logs.name, "bts actual (own logs)", logs.bts)
        result = evaluate_position_wise(logs.random, target, config, model)
        joint = joint_bootstrap(logs, args, model, args.seed + 1)
        rows.append(truth.row)
        estimates = {"IPS": result.ips, "SNIPS": result.snips, "DR": result.dr}
        for name, estimate in estimates.items():
            rows.append(estimate_row(logs.name, f"{name} from random logs", estimate, truth, joint[name]))
        positions = ", ".join("none" if p is None else pct(p.estimate) for p in result.per_position)
        notes.append(
            f"- {logs.name}: random policy's own CTR {pct(float(logs.random.rewards.mean()))}; bts marginals from "
            f"{logs.bts.n:,} bts impressions (smoothing {args.smoothing:g}), largest {target.probabilities.max():.3f}; "
            f"per-position IPS (slots 1-3) {positions}; target mass on never-logged pairs "
            f"{result.unlogged_target_mass:.2%}; {time.perf_counter() - started:.1f} s"
        )
        notes.extend(f"  - warning: {w}" for w in {w for e in estimates.values() for w in e.warnings})
        notes.extend(f"  - warning: {w}" for w in result.warnings)
    markdown(
        "Open Bandit Dataset: Thompson sampling's CTR estimated from the uniform-random logs (95 % intervals, %)",
        HEADER,
        rows,
    )
    print()
    print("\n".join(notes))
    print(f"\nMethod: {result.method}. DR reward model: {model.describe()}.")


def reverse_table(campaigns: Sequence[CampaignLogs], args: argparse.Namespace) -> None:
    """The other direction: the uniform policy's CTR from the bts logs, weighted by bts's LOGGED propensities.

    No estimated policy here (the target's marginals are exactly 1 / items), so this checks the
    estimators against the dataset's own propensities, including their tiny values (down to 1e-6).
    """
    model = RewardModelConfig(prior_strength=args.prior_strength, folds=args.folds, seed=args.seed)
    # Unclipped, then clipped: bts logged propensities down to 1e-6, i.e. weights in the tens of thousands.
    configs = [
        EstimatorConfig(n_bootstrap=args.bootstrap, seed=args.seed, clip=clip) for clip in (None, args.reverse_clip)
    ]
    rows: list[list[str]] = []
    warnings: set[str] = set()
    for logs in campaigns:
        truth = actual(logs.name, "random actual (own logs)", logs.random)
        target = PositionPolicy.uniform(logs.bts.n_items, logs.bts.n_positions)
        rows.append(truth.row)
        for config in configs:
            result = evaluate_position_wise(logs.bts, target, config, model)
            clipped = "" if config.clip is None else f", w clipped at {config.clip:g}"
            for estimate in (result.ips, result.snips, result.dr):
                label = f"{estimate.estimator} from bts logs{clipped}"
                rows.append(estimate_row(logs.name, label, estimate, truth, None))
                warnings.update(f"{logs.name}{clipped}: {w}" for w in estimate.warnings)
    markdown(
        "Reverse direction: the uniform-random policy's CTR estimated from the Thompson sampling logs, with the "
        "propensities bts logged (95 % intervals, %)",
        HEADER,
        rows,
    )
    print()
    print("\n".join(f"- warning: {w}" for w in sorted(warnings)))


def synthetic_policies(ctr: FloatArray) -> dict[str, PositionPolicy]:
    """Target policies of different quality and concentration on the synthetic CTR matrix."""
    n_positions, n_items = ctr.shape
    tilted = ctr / ctr.sum(axis=1, keepdims=True)
    top = np.zeros_like(ctr)
    for k in range(n_positions):
        best = np.argsort(ctr[k])[-5:]
        top[k] = 0.1 / n_items
        top[k, best] += 0.9 / 5
    poor = (1 / ctr) / (1 / ctr).sum(axis=1, keepdims=True)
    return {
        "uniform (= logging)": PositionPolicy.uniform(n_items, n_positions),
        "CTR-proportional": PositionPolicy(tilted),
        "90 % on 5 best": PositionPolicy(top),
        "inverse-CTR (poor)": PositionPolicy(poor),
    }


class Tally:
    """Coverage, bias and interval width of one estimator over seeds."""

    def __init__(self) -> None:
        self.covered: list[bool] = []
        self.errors: list[float] = []
        self.widths: list[float] = []

    def add(self, result: OffPolicyEstimate, truth: float) -> None:
        self.covered.append(result.ci_lower <= truth <= result.ci_upper)
        self.errors.append(result.estimate - truth)
        self.widths.append(result.ci_upper - result.ci_lower)

    def cell(self) -> str:
        bias = 100 * float(np.mean(self.errors))
        bias_se = 100 * float(np.std(self.errors, ddof=1) / math.sqrt(len(self.errors)))
        return (
            f"{np.mean(self.covered):.1%}; bias {bias:+.4f} ± {bias_se:.4f} pp; "
            f"width {100 * float(np.mean(self.widths)):.3f} pp"
        )


def synthetic_table(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n_items = 34
    # Item appeal log-normal, slot 1 best: mean CTR about 0.5 % as in the Open Bandit logs.
    appeal = rng.lognormal(0.0, 0.8, size=n_items)
    ctr = np.clip(np.outer([1.2, 1.0, 0.8], appeal) * 0.005 / appeal.mean(), 0.0, 1.0)
    policies = synthetic_policies(ctr)
    truths = {name: true_value(ctr, policy) for name, policy in policies.items()}
    true_order = sorted(truths, key=truths.__getitem__)
    logging = PositionPolicy.uniform(n_items, N_POSITIONS)
    tallies = {(p, e): Tally() for p in policies for e in ESTIMATORS}
    ess: dict[str, list[float]] = {p: [] for p in policies}
    order_right = dict.fromkeys(ESTIMATORS, 0)
    best_right = dict.fromkeys(ESTIMATORS, 0)
    for seed in range(args.seeds):
        log = simulate_slate_log(ctr, logging, args.synthetic_n, rng)
        config = EstimatorConfig(n_bootstrap=args.synthetic_bootstrap, seed=seed)
        model = RewardModelConfig(args.prior_strength, args.folds, seed)
        found: dict[str, dict[str, float]] = {e: {} for e in ESTIMATORS}
        for name, policy in policies.items():
            feedback = LoggedFeedback(log.rewards, log.propensities, policy.probabilities[log.positions, log.items])
            predictions = cross_fitted_predictions(log, policy, model)
            results = (ips(feedback, config), snips(feedback, config), doubly_robust(feedback, predictions, config))
            ess[name].append(results[0].effective_sample_size)
            for estimator, result in zip(ESTIMATORS, results, strict=True):
                tallies[name, estimator].add(result, truths[name])
                found[estimator][name] = result.estimate
        for estimator in ESTIMATORS:
            order = sorted(found[estimator], key=found[estimator].__getitem__)
            order_right[estimator] += order == true_order
            best_right[estimator] += order[-1] == true_order[-1]
    markdown(
        f"Synthetic impression logs with a known truth: {args.seeds} seeds x {args.synthetic_n:,} uniform-random "
        f"impressions, 34 items x 3 slots; coverage of the 95 % intervals ({args.synthetic_bootstrap} resamples), "
        "mean bias ± its standard error, mean interval width",
        ("target policy", "true CTR", "mean ESS", "IPS", "SNIPS", "DR"),
        [
            [name, pct(truths[name]), f"{np.mean(ess[name]):,.0f}", *(tallies[name, e].cell() for e in ESTIMATORS)]
            for name in policies
        ],
    )
    print(
        "\nRanking the 4 targets (true order, worst to best: "
        + " < ".join(true_order)
        + "): whole order right in "
        + ", ".join(f"{e} {order_right[e] / args.seeds:.1%}" for e in ESTIMATORS)
        + "; best target found in "
        + ", ".join(f"{e} {best_right[e] / args.seeds:.1%}" for e in ESTIMATORS)
        + f" of seeds. {time.perf_counter() - started:.1f} s"
    )


def ranking_table(args: argparse.Namespace) -> None:
    """Whole rankings (5 items, 3 slots, Plackett-Luce) under independent and cascade clicks."""
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    attractiveness = np.array([0.6, 0.5, 0.2, 0.1, 0.05])
    logging = PlackettLuce(np.ones(5), 3)
    target = PlackettLuce(np.array([20.0, 10.0, 1.0, 1.0, 1.0]), 3)
    rows = []
    click_models: tuple[ClickModel, ...] = ("independent", "cascade")
    for click_model in click_models:
        truth = ranking_true_value(target, attractiveness, click_model)
        tallies = {a: Tally() for a in ASSUMPTIONS}
        for seed in range(args.ranking_seeds):
            feedback = simulate_ranking_log(logging, target, attractiveness, click_model, args.ranking_n, rng)
            config = EstimatorConfig(n_bootstrap=args.synthetic_bootstrap, seed=seed)
            for assumption, tally in tallies.items():
                tally.add(ranking_ips(feedback, assumption, config), truth)
        rows.append([click_model, pct(truth), *(tallies[a].cell() for a in ASSUMPTIONS)])
    markdown(
        f"Synthetic ranking logs: {args.ranking_seeds} seeds x {args.ranking_n:,} uniform-random rankings of 3 "
        "out of 5 items; target Plackett-Luce with scores (20, 10, 1, 1, 1); coverage, bias, width as above",
        ("click model", "true CTR", "IPS independent-item", "IPS cascade", "IPS whole ranking"),
        rows,
    )
    print(f"\n{time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DATA, help="the open-bandit-dataset folder")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples of each estimator's interval")
    parser.add_argument("--joint", type=int, default=500, help="resamples of the joint (both logs) bootstrap")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--smoothing", type=float, default=0.0, help="additive smoothing of the bts frequencies")
    parser.add_argument("--clip", type=float, default=None, help="importance-weight cap (default none)")
    parser.add_argument("--reverse-clip", type=float, default=10.0, help="weight cap of the reverse table's 2nd rows")
    parser.add_argument("--prior-strength", type=float, default=100.0, help="DR model's pseudo-impressions")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the DR model")
    parser.add_argument("--seeds", type=int, default=200, help="synthetic logs (0: skip the synthetic table)")
    parser.add_argument("--synthetic-n", type=int, default=10_000, help="impressions per synthetic log")
    parser.add_argument("--synthetic-bootstrap", type=int, default=200, help="resamples per synthetic interval")
    parser.add_argument("--ranking-seeds", type=int, default=200, help="synthetic ranking logs (0: skip)")
    parser.add_argument("--ranking-n", type=int, default=1000, help="rankings per synthetic ranking log")
    parser.add_argument("--skip-open-bandit", action="store_true")
    parser.add_argument("--simulator-seeds", type=int, default=0, help="simulator seeds (0: skip; needs Django)")
    parser.add_argument("--simulator-users", type=float, default=2000, help="simulated sessions a day")
    parser.add_argument("--simulator-days", type=int, default=7, help="simulated days per seed")
    parser.add_argument("--exploration", type=float, default=0.2, help="exploration share of the logging traffic")
    parser.add_argument("--simulator-bootstrap", type=int, default=500, help="resamples per simulator interval")
    parser.add_argument("--simulator-first-seed", type=int, default=1, help="seed of the first simulated log")
    args = parser.parse_args(argv)
    print(f"engine.offpolicy validity benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    if not args.skip_open_bandit:
        campaigns = [read_campaign(args.data, campaign) for campaign in CAMPAIGNS]
        open_bandit_table(campaigns, args)
        reverse_table(campaigns, args)
    if args.seeds > 0:
        synthetic_table(args)
    if args.ranking_seeds > 0:
        ranking_table(args)
    if args.simulator_seeds > 0:
        from offpolicy_simulator import simulator_table  # Django and the database: only when asked for

        simulator_table(args.simulator_seeds, args.simulator_users, args.simulator_days, args.exploration,
                        args.simulator_bootstrap, first_seed=args.simulator_first_seed)  # fmt: skip
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cpus (shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
