"""The simulator part of bench/offpolicy_validity.py: off-policy estimates against the simulated truth.

On the bundled Online Retail data (last 20 % of the time held out as what the simulated shoppers
want; bench/benchdata.py), four variants are trained once: popularity, item-kNN, EASE and a TF-IDF
content model. For each seed:

1. Logging traffic: an A/B/C experiment (popularity, item-kNN, EASE, equal weights, bucketed with a
   per-seed salt) with the platform's exploration share e: a share e of the sessions, drawn at random,
   gets a uniformly random ordering of C = the union of the three arms' top M = k items, cut to k
   (serving.services.exploration); the other sessions the arm's top k. Each impression's
   propensity is the mixture marginal p(a, k) = (1 - e) 1[d_k = a] + e 1[a in C] / |C|
   (``mixture_propensities``); clicks come from the simulator's position-based click model (the
   simulation core, engine/simulation/).
2. The estimates: each candidate's trained model ranks every logged session (``BatchScorer``, as
   serving does), and ``evaluate_ranking_target`` gives IPS, SNIPS and DR with 95 % percentile
   bootstrap intervals, exactly as the platform's estimate task does.
3. The truth: the same planned sessions served by the candidate alone (same seed, so same shoppers,
   times and queries); the truth is its expected CTR there (mean click probability of its impressions,
   the simulator's own number), and its realised CTR is shown beside it.
4. The simulated A/B test: the four candidates as arms of a plain experiment (no exploration, same
   seed); does the estimate order them as the A/B test's CTRs do?

Run through ``python bench/offpolicy_validity.py --simulator-seeds 20`` (needs DATABASE_URL; it
imports and trains once into that database).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

from benchdata import held_out_retail, trained_variant  # noqa: E402

from engine import bucketing  # noqa: E402
from engine.offpolicy import EstimatorConfig, SlateLog, evaluate_ranking_target  # noqa: E402
from engine.offpolicy.exploration import POOL_FACTOR, mixture_propensities  # noqa: E402
from engine.simulation import Shoppers, SimulationConfig, run  # noqa: E402
from recommenders.algorithms.base import TrainingData  # noqa: E402
from recommenders.models import Item  # noqa: E402
from recommenders.services.training import load_training_data  # noqa: E402
from recommenders.serving import model_for_run  # noqa: E402
from simulation.services.runs import BatchScorer  # noqa: E402

NAME = "bench-ope"
CANDIDATES = (
    ("popularity", "popularity", {}),
    ("item-kNN", "item_knn", {"neighbours": 200, "shrink": 20.0}),
    ("EASE", "ease", {"l2": 800.0}),
    ("content", "content_tfidf", {}),
)
LOGGING_ARMS = (0, 1, 2)  # popularity, item-kNN, EASE log the traffic; content is only ever estimated
ESTIMATORS = ("IPS", "SNIPS", "DR")
RESAMPLED = (("impression", "percentile"), ("user", "percentile"), ("user", "bca"))
"""(resampling unit, interval) pairs compared. The unit: each impression alone (the estimators' default
before clusters), the request (a session's k impressions together) or the user (all their sessions: the
unit the arms are assigned by). The interval: percentile or BCa (EstimatorConfig.interval)."""
IntArray = npt.NDArray[np.int64]


@dataclass
class Scorers:
    data: TrainingData
    shoppers: Shoppers
    scorers: list[BatchScorer]
    names: list[str]


def prepare() -> Scorers:
    """The held-out Online Retail data set, the four trained candidates' scorers and the simulated shoppers."""
    dataset = held_out_retail(NAME)
    runs = []
    for label, algorithm, params in CANDIDATES:
        variant = trained_variant(f"{NAME}-{label.lower()}", algorithm, dataset, dict(params))
        runs.append(variant.latest_successful_run())
    data = load_training_data(dataset, include_holdout=True)
    prices = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "price"))
    item_price = np.array([float(prices.get(i) or np.nan) for i in data.item_ids])
    shoppers = Shoppers.build(data, cutoff=int(dataset.holdout_from.timestamp()), item_price=item_price)  # type: ignore[union-attr]
    scorers = [BatchScorer(model_for_run(r), data.user_ids, data.item_ids) for r in runs]  # type: ignore[arg-type]
    return Scorers(data, shoppers, scorers, [label for label, _, _ in CANDIDATES])


@dataclass
class SeedResult:
    # (resampling unit, interval, estimator) -> per candidate (estimate, lower, upper, standard error)
    estimates: dict[tuple[str, str, str], list[tuple[float, float, float, float]]]
    truth: list[float]  # expected CTR of each candidate serving the sessions alone
    realised: list[float]
    ab_ctr: list[float]  # each candidate's CTR as an arm of the plain A/B test
    ess: list[float]
    unlogged: list[float]
    outside: list[float]  # share of the candidate's placements outside the logging pool (zero propensity)
    impressions: int
    explored: int


def one_seed(setup: Scorers, seed: int, daily_users: float, days: int, share: float, bootstrap: int) -> SeedResult:
    config = SimulationConfig(daily_users=daily_users, days=days, seed=seed)
    k = config.k
    pool_k = POOL_FACTOR * k
    explore_rng = np.random.default_rng([seed, 17])
    explored_sessions = [0]
    arms_allocation = bucketing.Allocation(traffic=1.0, weights=(1.0,) * len(LOGGING_ARMS))

    def assign_logging(user_ids: npt.NDArray[np.str_]) -> IntArray:
        return bucketing.assign_many(arms_allocation, f"ope-log-{seed}", user_ids).arm

    def union_pool(users: IntArray, queries: list[str | None]) -> tuple[IntArray, IntArray]:
        """(the arms' top-M lists side by side, their union with repeats blanked to -1)."""
        lists = np.hstack([setup.scorers[c](users, queries, pool_k) for c in LOGGING_ARMS])
        union = np.sort(lists, axis=1)
        union[:, 1:][union[:, 1:] == union[:, :-1]] = -1
        return lists, union

    def recommend_logging(arm: int, users: IntArray, queries: list[str | None]) -> IntArray:
        lists, pool = union_pool(users, queries)
        own = lists[:, arm * pool_k : arm * pool_k + k]
        explored = explore_rng.random(len(users)) < share
        explored_sessions[0] += int(explored.sum())
        keys = np.where(pool >= 0, explore_rng.random(pool.shape), 2.0)  # empty slots sort last
        shuffled = np.take_along_axis(pool, np.argsort(keys, axis=1), axis=1)
        return np.where(explored[:, None], shuffled[:, :k], own)

    logged = run(config, setup.shoppers, recommend_logging, assign_logging, deduplicate=False)
    sessions, outcomes = logged.sessions, logged.outcomes
    queries = list(sessions.query)
    # Every session's arm list and pool again (deterministic), for each impression's mixture propensity.
    served = np.flatnonzero(logged.arm >= 0)
    pools = np.full((len(sessions), len(LOGGING_ARMS) * pool_k), -1, dtype=np.int64)
    own = np.full((len(sessions), k), -1, dtype=np.int64)
    lists, pools[served] = union_pool(sessions.user[served], [queries[r] for r in served.tolist()])
    for g in range(len(LOGGING_ARMS)):
        rows = logged.arm[served] == g
        own[served[rows]] = lists[rows, g * pool_k : g * pool_k + k]
    shown = np.full((len(sessions), k), -1, dtype=np.int64)
    shown[outcomes.session, outcomes.position - 1] = outcomes.item
    propensity = mixture_propensities(own, pools, shown, share)[outcomes.session, outcomes.position - 1]
    clusterings: dict[str, IntArray | None] = {
        "impression": None,
        "request": outcomes.session,
        "user": sessions.user[outcomes.session],
    }
    logs = {
        name: SlateLog(
            items=outcomes.item, positions=outcomes.position - 1, rewards=outcomes.clicked.astype(np.float64),
            propensities=propensity, n_items=setup.data.n_items, n_positions=k, clusters=clusters,
        )
        for name, clusters in clusterings.items()
    }  # fmt: skip
    estimates: dict[tuple[str, str, str], list[tuple[float, float, float, float]]] = {
        (unit, interval, name): [] for unit, interval in RESAMPLED for name in ESTIMATORS
    }
    truth, realised, ess, unlogged, outside = [], [], [], [], []
    for scorer in setup.scorers:
        lists = np.full((len(sessions), k), -1, dtype=np.int64)
        lists[served] = scorer(sessions.user[served], [queries[r] for r in served.tolist()], k)
        target = lists[outcomes.session, outcomes.position - 1]
        for unit, interval in RESAMPLED:
            estimator_config = EstimatorConfig(n_bootstrap=bootstrap, seed=seed, interval=interval)
            evaluation = evaluate_ranking_target(logs[unit], target, estimator_config)
            for name, result in zip(ESTIMATORS, (evaluation.ips, evaluation.snips, evaluation.dr), strict=True):
                estimates[unit, interval, name].append(
                    (result.estimate, result.ci_lower, result.ci_upper, result.standard_error)
                )
        # Exact support: the candidate's placements whose item is outside that session's pool C (p = 0).
        supported = (pools[outcomes.session] == target[:, None]).any(axis=1)
        outside.append(float(np.mean(~supported[target >= 0])))
        ess.append(evaluation.ips.effective_sample_size)
        unlogged.append(evaluation.unlogged_target_mass)
        alone = run(config, setup.shoppers, lambda _arm, users, q, s=scorer: s(users, q, k),
                    lambda ids: np.zeros(len(ids), dtype=np.int64))  # fmt: skip
        truth.append(float(alone.outcomes.click_probability.mean()))
        realised.append(float(alone.outcomes.clicked.mean()))
    ab_allocation = bucketing.Allocation(traffic=1.0, weights=(1.0,) * len(setup.scorers))
    ab = run(
        config, setup.shoppers, lambda arm, users, q: setup.scorers[arm](users, q, k),
        lambda ids: bucketing.assign_many(ab_allocation, f"ope-ab-{seed}", ids).arm,
    )  # fmt: skip
    return SeedResult(estimates, truth, realised, [a.ctr for a in ab.arms], ess, unlogged, outside, len(outcomes),
                      explored_sessions[0])  # fmt: skip


def simulator_table(seeds: int, daily_users: float, days: int, share: float, bootstrap: int, first_seed: int) -> None:
    began = time.perf_counter()
    setup = prepare()
    print(f"\n## Simulator: Online Retail, {len(setup.shoppers.users):,} shoppers, {seeds} seeds x "
          f"{daily_users:,.0f} sessions a day x {days} days, exploration share {share:.0%} "
          f"(pool: the arm's top {POOL_FACTOR} x k), {bootstrap} bootstrap resamples; set-up "
          f"{time.perf_counter() - began:.0f} s, load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    results = []
    for s in range(seeds):
        started = time.perf_counter()
        results.append(one_seed(setup, first_seed + s, daily_users, days, share, bootstrap))
        print(f"seed {first_seed + s}: {results[-1].impressions:,} logged impressions, "
              f"{results[-1].explored:,} explored sessions, {time.perf_counter() - started:.0f} s, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    n = len(setup.names)
    print("\nCoverage: share of seeds whose 95 % interval contains the candidate's simulated truth (its expected "
          "CTR serving the same sessions alone), by the bootstrap's resampling unit; mean estimate (mean bias ± "
          "its standard error) and mean interval width, in %:\n")  # fmt: skip
    print("| candidate | logged by | truth (expected) | realised | A/B arm CTR | mean ESS | placements outside C "
          "| never-logged pairs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for c in range(n):
        truth = np.array([r.truth[c] for r in results])
        logged_by = "an arm" if c in LOGGING_ARMS else "never (estimated only)"
        realised = np.mean([r.realised[c] for r in results])
        print(f"| {setup.names[c]} | {logged_by} | {truth.mean():.3%} | {realised:.3%} "
              f"| {np.mean([r.ab_ctr[c] for r in results]):.3%} | {np.mean([r.ess[c] for r in results]):,.0f} "
              f"| {np.mean([r.outside[c] for r in results]):.1%} "
              f"| {np.mean([r.unlogged[c] for r in results]):.1%} |")  # fmt: skip
    print()
    print("Cells: coverage (truth below the interval / above it); mean estimate (mean bias ± its standard error); "
          "mean width; sd of the errors over seeds / mean linearised standard error\n")  # fmt: skip
    print("| candidate | resampled | interval | IPS | SNIPS | DR |")
    print("|---|---|---|---|---|---|")
    for c in range(n):
        truth = np.array([r.truth[c] for r in results])
        for unit, interval in RESAMPLED:
            cells = []
            for name in ESTIMATORS:
                rows = np.array([r.estimates[unit, interval, name][c] for r in results])
                covered = np.mean((rows[:, 1] <= truth) & (truth <= rows[:, 2]))
                low, high = np.sum(truth < rows[:, 1]), np.sum(truth > rows[:, 2])
                bias = rows[:, 0] - truth
                spread = bias.std(ddof=1) / rows[:, 3].mean() if len(bias) > 1 else float("nan")
                cells.append(f"**{covered:.1%}** ({low}/{high}); {rows[:, 0].mean():.3%} ({bias.mean():+.3%} ± "
                             f"{bias.std(ddof=1) / np.sqrt(len(bias)):.3%}); {(rows[:, 2] - rows[:, 1]).mean():.3%}; "
                             f"{spread:.2f}")  # fmt: skip
            print(f"| {setup.names[c]} | {unit} | {interval} | {' | '.join(cells)} |")
    print()
    for name in ESTIMATORS:
        same_truth = same_ab = best_ab = 0
        for r in results:
            estimate = np.array([e[0] for e in r.estimates["user", "bca", name]])
            same_truth += list(np.argsort(estimate)) == list(np.argsort(r.truth))
            same_ab += list(np.argsort(estimate)) == list(np.argsort(r.ab_ctr))
            best_ab += int(np.argmax(estimate)) == int(np.argmax(r.ab_ctr))
        print(f"{name}: orders the {n} candidates as the simulated A/B test does in {same_ab}/{seeds} seeds "
              f"(as the truth: {same_truth}/{seeds}); finds the A/B winner in {best_ab}/{seeds}")  # fmt: skip
    ab_vs_truth = sum(list(np.argsort(r.ab_ctr)) == list(np.argsort(r.truth)) for r in results)
    print(
        f"(the A/B test itself orders them as the truth in {ab_vs_truth}/{seeds} seeds; "
        f"{time.perf_counter() - began:.0f} s in all)"
    )
