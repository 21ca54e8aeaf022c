"""Is the simulator a fair judge? Three checks on the bundled Online Retail data, printed as tables.

Set-up (once, kept between runs): the Online Retail data imported as `bench-validity` with the
last 20 % of its time span held out, and six variants trained on the rest through the platform's
own training service: popularity, content_tfidf, item_knn (200 neighbours, shrink 20), ease
(l2 800), two_tower (3 epochs) and a hybrid (0.7 ease + 0.3 content), the settings of the demo.

(a) Offline vs simulated. Offline: NDCG@10 of each trained model on the temporal split at the
    hold-out time (train = before it, test = the new customer-item pairs after it; the
    recommenders' evaluator, seen items removed). Simulated: one experiment with the six models
    as equal arms, simulated in this process through the platform (bucketing, the arms' frozen
    models, storage, rollups; `--users` sessions a day for `--days` days), CTR and conversion
    per arm read from the results with traffic=simulated. Printed: Spearman's rho of NDCG@10
    against CTR and against conversion. Note what is shared by design: the simulated shoppers
    want what they bought after the hold-out time, the offline test set. The check is that the
    click model (position bias, cluster affinity for everything else, searches, cold shoppers)
    keeps the offline ordering, not that two independent worlds agree.

(b) A/A: `--runs` simulations with both arms served by the same trained model (EASE), each with
    its own seed and bucketing salt. Fixed-horizon test of CTR (experiments.stats.ratio_test,
    users as units, delta method, alpha 0.05, two-sided): the false-positive rate should lie in
    [0.02, 0.08].

(c) Power: the same runs with a known +`--effect` relative lift of the click probability
    injected into arm 1. Detection = p < 0.05 with a positive effect. Predicted: the power
    calculation of experiments.stats (`power_proportions`, two proportions) at the runs' mean
    control CTR, the relative lift, and the impressions per arm divided by the design effect
    (the delta-method variance of the CTR difference over the binomial one, measured in the A/A
    runs: impressions of one user are not independent). The naive prediction (impressions as
    independent units) is printed too. Target: observed within +-10 points of predicted.

(b) and (c) use the Django-free core directly (`experiments.simulation.run`, the experiment's
bucketing functions and the stats engine) with the trained EASE model's lists computed once per
shopper, and nothing is stored: 400 runs through the database would take an hour. EASE ignores
queries, so a shopper's list is the same in every session, as in the platform.

    DATABASE_URL=postgres://... python bench/simulation_validity.py [--runs 200] [--users 3000] [--days 14]
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

import numpy as np  # noqa: E402
from benchdata import bench_experiment, held_out_retail  # noqa: E402  (bench/, the script's directory)
from scipy import stats as scipy_stats  # noqa: E402

from experiments import bucketing  # noqa: E402
from experiments.models import Experiment  # noqa: E402
from experiments.services.results import experiment_results  # noqa: E402
from experiments.services.simulation import (  # noqa: E402
    BatchScorer,
    delete_simulation,
    load_shoppers,
    queue_simulation,
    run_simulation,
)
from experiments.simulation import Shoppers, SimulationConfig, SimulationResult, run  # noqa: E402
from experiments.stats import RatioSample, power_proportions, ratio_test  # noqa: E402
from recommenders.evaluation.evaluator import evaluate  # noqa: E402
from recommenders.evaluation.splits import temporal_split  # noqa: E402
from recommenders.services.training import load_training_data  # noqa: E402
from recommenders.serving import model_for_run  # noqa: E402

NAME = "bench-validity"
ALPHA = 0.05
VARIANTS = (
    ("popularity", "popularity", {}),
    ("content", "content_tfidf", {}),
    ("item-knn", "item_knn", {"neighbours": 200, "shrink": 20.0}),
    ("ease", "ease", {"l2": 800.0}),
    ("two-tower", "two_tower", {"epochs": 3}),
    ("hybrid", "hybrid", {"components": [{"algorithm": "ease", "params": {"l2": 800.0}, "weight": 0.7},
                                         {"algorithm": "content_tfidf", "weight": 0.3}]}),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=float, default=3000, help="(a) sessions per simulated day (default 3000)")
    parser.add_argument("--days", type=int, default=14, help="(a) simulated days (default 14)")
    parser.add_argument(
        "--search-share", type=float, default=0.2, help="(a) share of sessions that are searches (default 0.2)"
    )
    parser.add_argument("--runs", type=int, default=200, help="(b), (c) simulations each (default 200; 0: skip them)")
    parser.add_argument("--run-users", type=float, default=1500, help="(b), (c) sessions a day (default 1500)")
    parser.add_argument("--run-days", type=int, default=7, help="(b), (c) days per run (default 7)")
    parser.add_argument("--effect", type=float, default=0.10, help="(c) injected relative lift (default 0.10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-a", action="store_true", help="only (b) and (c)")
    args = parser.parse_args()
    started = time.perf_counter()
    experiment = _prepare()
    print(f"\nSimulation validity, Online Retail (last 20 % of time held out), {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    if not args.skip_a:
        offline_against_simulated(experiment, args.users, args.days, args.seed, args.search_share)
    if args.runs > 0:
        aa_and_power(experiment, args.runs, args.run_users, args.run_days, args.effect, args.seed)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


def _prepare() -> Experiment:
    """Import, train (once each) and start the six-arm experiment (popularity is the control)."""
    arms = [(arm, f"{NAME}-{arm}", algorithm, params) for arm, algorithm, params in VARIANTS]
    return bench_experiment(NAME, "Simulation validity", held_out_retail(NAME), arms)


def offline_against_simulated(experiment: Experiment, users: float, days: int, seed: int, search: float) -> None:
    arms = list(experiment.arms.select_related("training_run", "variant__dataset").order_by("position"))
    dataset = arms[0].variant.dataset  # type: ignore[union-attr]
    data = load_training_data(dataset, include_holdout=True)
    train, test = temporal_split(data, cutoff=int(dataset.holdout_from.timestamp()))
    ndcg = {arm.name: evaluate(model_for_run(arm.training_run), train, test, k=10).ndcg for arm in arms}  # type: ignore[arg-type]

    began = time.perf_counter()
    settings = {"daily_users": users, "days": days, "seed": seed, "search_share": search}
    simulation = queue_simulation(experiment, settings, send=False)
    run_simulation(simulation.pk)
    simulation.refresh_from_db()
    if simulation.status != "succeeded":
        sys.exit(f"simulation failed: {simulation.error}\n{simulation.traceback}")
    results = experiment_results(experiment, traffic="simulated")
    seconds = time.perf_counter() - began
    delete_simulation(simulation)
    by_arm = {arm["name"]: arm for arm in results["arms"]}

    print(f"\n(a) Offline NDCG@10 (temporal split at the hold-out time, {test.n_users:,} users x {test.n_items:,} "
          f"items, {len(test.user_index):,} test rows) against simulated traffic through the platform\n"
          f"    ({simulation.sessions:,} sessions, {simulation.impressions:,} impressions over {days} days, "
          f"{search:.0%} searches, {seconds:.0f} s)")  # fmt: skip
    print(f"{'arm':<12}{'NDCG@10':>9}{'users':>8}{'impressions':>13}{'CTR':>8}{'conversion':>12}")
    names = [arm.name for arm in arms]
    for name in sorted(names, key=lambda n: -ndcg[n]):
        arm = by_arm[name]
        print(f"{name:<12}{ndcg[name]:>9.4f}{arm['users']:>8,}{arm['impressions']:>13,}{arm['ctr']:>8.2%}"
              f"{arm['conversion_rate']:>12.2%}")  # fmt: skip
    offline = [ndcg[n] for n in names]
    for metric in ("ctr", "conversion_rate"):
        rho = scipy_stats.spearmanr(offline, [by_arm[n][metric] for n in names])
        print(f"Spearman rho, NDCG@10 vs {metric}: {rho.statistic:+.3f} (p = {rho.pvalue:.3g}, {len(names)} arms)")


def aa_and_power(experiment: Experiment, runs: int, users: float, days: int, effect: float, seed: int) -> None:
    arm = experiment.arms.select_related("training_run").get(name="ease")
    data, shoppers = load_shoppers(experiment)
    k = SimulationConfig().k
    scorer = BatchScorer(model_for_run(arm.training_run), data.user_ids, data.item_ids)  # type: ignore[arg-type]
    lists = np.full((data.n_users, k), -1, dtype=np.int64)
    lists[shoppers.users] = scorer(shoppers.users, [None] * len(shoppers.users), k)
    allocation = bucketing.Allocation(traffic=1.0, weights=(1.0, 1.0))

    def recommend(arm: int, users: np.ndarray, queries: object) -> np.ndarray:
        return lists[users]

    began = time.perf_counter()
    aa, lifted = [], []
    for i in range(runs):
        salt = f"validity-{seed}-{i}"

        def assign(user_ids: np.ndarray, salt: str = salt) -> np.ndarray:
            return bucketing.assign_many(allocation, salt, user_ids).arm

        for effect_size, out in ((0.0, aa), (effect, lifted)):
            config = SimulationConfig(daily_users=users, days=days, seed=seed * 100_000 + i,
                                      injected_effect=effect_size, injected_arm=1)  # fmt: skip
            out.append(_test(run(config, shoppers, recommend, assign), shoppers))
    seconds = time.perf_counter() - began

    aa_p = np.array([r[0].p_value for r in aa])
    false_positive = float(np.mean(aa_p < ALPHA))
    low, high = _wilson(int(np.sum(aa_p < ALPHA)), runs)
    print(f"\n(b) A/A: {runs} runs, both arms EASE, {users:,.0f} sessions a day for {days} days "
          f"({np.mean([r[1] + r[2] for r in aa]):,.0f} impressions and {np.mean([r[3] for r in aa]):,.0f} users "
          f"a run on average); CTR ratio test, users as units, alpha {ALPHA}")  # fmt: skip
    verdict = "within" if 0.02 <= false_positive <= 0.08 else "OUTSIDE"
    print(f"false-positive rate {false_positive:.3f} (95 % Wilson interval {low:.3f}-{high:.3f}), {verdict} the "
          f"target [0.02, 0.08]; KS test of the p-values against uniform: p = "
          f"{scipy_stats.kstest(aa_p, 'uniform').pvalue:.3f}")  # fmt: skip

    detected = float(np.mean([r[0].p_value < ALPHA and r[0].effect > 0 for r in lifted]))
    control_ctr = float(np.mean([r[4] for r in lifted]))
    per_arm = float(np.mean([r[1] for r in lifted]))
    design_effect = float(np.mean([r[5] for r in aa]))
    realised = float(np.mean([r[6] for r in lifted]))
    naive = power_proportions(control_ctr, effect, round(per_arm), alpha=ALPHA).power
    adjusted = power_proportions(control_ctr, effect, round(per_arm / design_effect), alpha=ALPHA).power
    low, high = _wilson(round(detected * runs), runs)
    print(f"\n(c) Injected +{effect:.0%} click probability in arm 1: {runs} runs (same sizes; mean control "
          f"CTR {control_ctr:.2%}, realised relative lift {realised:+.1%}, {per_arm:,.0f} impressions "
          "per arm)")  # fmt: skip
    print(f"{'':<44}{'power':>8}")
    observed = "observed detection rate (p < 0.05, lift > 0)"
    print(f"{observed:<44}{detected:>8.3f}   (95 % Wilson {low:.3f}-{high:.3f})")
    print(f"{'predicted, n = impressions / design effect':<44}{adjusted:>8.3f}   (design effect {design_effect:.2f} "
          f"from the A/A runs)")  # fmt: skip
    print(f"{'predicted, naive n = impressions per arm':<44}{naive:>8.3f}")
    gap = abs(detected - adjusted)
    print(f"observed - predicted: {detected - adjusted:+.3f} ({'within' if gap <= 0.10 else 'OUTSIDE'} +-0.10)")
    print(f"({2 * runs} simulations in {seconds:.0f} s)")


def _test(result: SimulationResult, shoppers: Shoppers) -> tuple:  # type: ignore[type-arg]
    """(test, impressions control, impressions treatment, users, control CTR, design effect, realised lift)."""
    outcome = result.outcomes
    user = result.sessions.user[outcome.session]
    samples = []
    for g in (0, 1):
        exposed = np.unique(result.sessions.user[result.arm == g])
        mine = outcome.arm == g
        size = max(int(user.max(initial=0)), int(exposed.max(initial=0))) + 1
        impressions = np.bincount(user[mine], minlength=size)[exposed].astype(float)
        clicks = np.bincount(user[mine], weights=outcome.clicked[mine], minlength=size)[exposed]
        samples.append(RatioSample(len(exposed), clicks.sum(), impressions.sum(), (clicks**2).sum(),
                                   (impressions**2).sum(), (clicks * impressions).sum()))  # fmt: skip
    c, t = samples
    test = ratio_test(c, t, alpha=ALPHA)
    pooled = (c.sum_x + t.sum_x) / (c.sum_y + t.sum_y)
    binomial = pooled * (1 - pooled) * (1 / c.sum_y + 1 / t.sum_y)
    ctr_c, ctr_t = c.sum_x / c.sum_y, t.sum_x / t.sum_y
    return test, c.sum_y, t.sum_y, c.n + t.n, ctr_c, test.std_error**2 / binomial, ctr_t / ctr_c - 1


def _wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


if __name__ == "__main__":
    main()
