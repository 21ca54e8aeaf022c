"""Is the simulator a fair judge? Three checks on the bundled Online Retail data, printed as tables.

Set-up (once, kept between runs): the Online Retail data imported as `bench-validity` with the
last 20 % of its time span held out, and six variants trained on the rest through the platform's
own training service: popularity, content_tfidf, item_knn (200 neighbours, shrink 20), ease
(l2 800), two_tower (3 epochs) and a hybrid (0.7 ease + 0.3 content), the settings of the demo.

(a) Offline vs simulated. Offline: NDCG@10 and P@10 of each trained model on the temporal split at
    the hold-out time (train = before it, test = the new customer-item pairs after it; the
    recommenders' evaluator, seen items removed), over all test users and over the simulated
    shoppers among them (test users with a history: the only ones the simulator can serve).
    Simulated: one experiment with the six models as equal arms, simulated in this process through
    the platform (bucketing, the arms' frozen models, storage, rollups; `--users` sessions a day for
    `--days` days), read back from the stored events: CTR and conversion of the recommendation
    sessions (served request without a query) and of the search sessions apart, and each arm's
    clicks by source (a held-out purchase of the shopper, another item: the neighbourhood
    preference, or a search session). The check is Spearman's rho of NDCG@10 (simulated shoppers)
    against CTR and conversion of the recommendation sessions: offline NDCG ranks lists without a
    query, so only those sessions are like for like. Searches are reported apart (their query is a
    word of a held-out purchase's title, which only the text-reading arms use; no offline metric
    here scores that), and rho against all traffic for reference. Then (a, paired) shows every arm
    the same planned sessions through the Django-free core (nothing stored): the simulator's
    ordering without the sampling noise of about 310 shoppers per arm. Note what is shared by
    design: the simulated shoppers want what they bought after the hold-out time, the offline test
    set. The check is that the click model (position bias, the neighbourhood preference for
    everything else, cold shoppers) keeps the offline ordering, not that two independent worlds
    agree.

(b) A/A: `--runs` simulations with both arms served by the same trained model (EASE), each with
    its own seed and bucketing salt. Fixed-horizon test of CTR (engine.stats.ratio_test,
    users as units, delta method, alpha 0.05, two-sided): the false-positive rate should lie in
    [0.02, 0.08].

(c) Power: the same runs with a known +`--effect` relative lift of the click probability
    injected into arm 1. Detection = p < 0.05 with a positive effect. Predicted: the power
    calculation of engine.stats (`power_proportions`, two proportions) at the runs' mean
    control CTR, the relative lift, and the impressions per arm divided by the design effect
    (the delta-method variance of the CTR difference over the binomial one, measured in the A/A
    runs: impressions of one user are not independent). The naive prediction (impressions as
    independent units) is printed too. Target: observed within +-10 points of predicted.

(b) and (c) use the Django-free core directly (`engine.simulation.run`, the experiment's
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
from django.db.models import Count, Exists, OuterRef  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from analysis.results_types import results_data  # noqa: E402
from analysis.services.results import experiment_results  # noqa: E402
from engine import bucketing  # noqa: E402
from engine.simulation import Shoppers, SimulationConfig, SimulationResult, run  # noqa: E402
from engine.stats import RatioSample, power_proportions, ratio_test  # noqa: E402
from experiments.models import Arm, Experiment  # noqa: E402
from recommenders.algorithms.base import TrainingData  # noqa: E402
from recommenders.evaluation.evaluator import evaluate  # noqa: E402
from recommenders.evaluation.splits import temporal_split  # noqa: E402
from recommenders.serving import model_for_run  # noqa: E402
from serving.models import Event, ServedRequest  # noqa: E402
from simulation.models import SimulationRun  # noqa: E402
from simulation.services.runs import BatchScorer, delete_simulation, load_shoppers, run_simulation  # noqa: E402
from simulation.tasks import queue_simulation  # noqa: E402

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
    arms = list(experiment.arms.select_related("training_run").order_by("position"))
    data, shoppers = load_shoppers(experiment)
    train, test = temporal_split(data, cutoff=shoppers.cutoff)
    # Like with like: the simulated shoppers are the test users with a history (cold users cannot be simulated).
    simulated_users = test.take(np.isin(test.user_index, shoppers.users))
    models = {arm.name: model_for_run(arm.training_run) for arm in arms}  # type: ignore[arg-type]
    offline = {name: (evaluate(m, train, test, k=10), evaluate(m, train, simulated_users, k=10))
               for name, m in models.items()}  # fmt: skip

    began = time.perf_counter()
    settings = {"daily_users": users, "days": days, "seed": seed, "search_share": search}
    simulation = queue_simulation(experiment, settings, send=False)
    run_simulation(simulation.pk)
    simulation.refresh_from_db()
    if simulation.status != "succeeded":
        sys.exit(f"simulation failed: {simulation.error}\n{simulation.traceback}")
    try:  # a run left behind would count in the next run's simulated results
        simulated = results_data(experiment_results(experiment, traffic="simulated"))
        results = {arm["name"]: arm for arm in simulated["arms"]}
        split = _traffic_split(simulation, arms, data, shoppers)
    finally:
        delete_simulation(simulation)
    seconds = time.perf_counter() - began

    names = [arm.name for arm in arms]
    every_users, simulated_count = offline[names[0]][0].n_users, offline[names[0]][1].n_users
    print(f"\n(a) Offline NDCG@10 / P@10 (temporal split at the hold-out time; all {every_users:,} test users, and "
          f"the {simulated_count:,} simulated shoppers among them) against traffic "
          f"simulated through the platform\n    ({simulation.sessions:,} sessions, {simulation.impressions:,} "
          f"impressions over {days} days, {search:.0%} of sessions searches, {seconds:.0f} s). rec = recommendation "
          "sessions (no query), the like-for-like comparison; clicks by source: a held-out purchase of the shopper, "
          "another item (neighbourhood preference), or any click in a search session")  # fmt: skip
    print(f"{'arm':<11}{'NDCG all':>9}{'NDCG sim':>9}{'P@10 sim':>9}{'users':>7}{'rec impr.':>10}{'rec CTR':>8}"
          f"{'rec conv.':>10}{'search CTR':>11}{'CTR all':>8}{'conv. all':>10}{'held-out':>9}{'neighb.':>8}"
          f"{'search':>7}")  # fmt: skip
    for name in sorted(names, key=lambda n: -offline[n][1].ndcg):
        every, sim = offline[name]
        part, arm = split[name], results[name]
        clicks = max(part["clicks"], 1)
        print(f"{name:<11}{every.ndcg:>9.4f}{sim.ndcg:>9.4f}{sim.precision:>9.4f}{arm['users']:>7,}"
              f"{part['rec_impressions']:>10,}{part['rec_ctr']:>8.2%}{part['rec_conversion']:>10.1%}"
              f"{part['search_ctr']:>11.2%}{arm['ctr']:>8.2%}{arm['conversion_rate']:>10.1%}"
              f"{part['held_out'] / clicks:>9.0%}{part['neighbourhood'] / clicks:>8.0%}"
              f"{part['search'] / clicks:>7.0%}")  # fmt: skip
    ndcg = [offline[n][1].ndcg for n in names]
    print("The check (recommendation sessions, the traffic offline NDCG describes):")
    for label, values in (("rec CTR", [split[n]["rec_ctr"] for n in names]),
                          ("rec conversion", [split[n]["rec_conversion"] for n in names])):  # fmt: skip
        rho = scipy_stats.spearmanr(ndcg, values)
        print(f"  Spearman rho, NDCG@10 (simulated shoppers) vs {label}: {rho.statistic:+.3f} "
              f"(p = {rho.pvalue:.3g}, {len(names)} arms)")  # fmt: skip
    print("For reference, all traffic (searches included; offline NDCG has no queries):")
    for metric in ("ctr", "conversion_rate"):
        rho = scipy_stats.spearmanr(ndcg, [results[n][metric] for n in names])
        print(f"  Spearman rho, NDCG@10 (simulated shoppers) vs {metric}: {rho.statistic:+.3f} (p = {rho.pvalue:.3g})")
    paired(models, data, shoppers, users, days, seed, search, {n: offline[n][1].ndcg for n in names})


def _traffic_split(simulation: SimulationRun, arms: list[Arm], data: TrainingData, shoppers: Shoppers) -> dict:  # type: ignore[type-arg]
    """Per arm name: impressions, clicks and conversion of recommendation vs search sessions, read back from the
    run's stored events (a session is a search when its served request has a query), and its clicks by source."""
    is_search = Exists(ServedRequest.objects.filter(request_id=OuterRef("request_id")).exclude(query=""))
    events = Event.objects.filter(simulation=simulation).annotate(search=is_search)
    grouped = events.values("arm_id", "type", "search").annotate(n=Count("id"), users=Count("user_id", distinct=True))
    counts = {(row["arm_id"], row["type"], row["search"]): (row["n"], row["users"]) for row in grouped}
    user_index = {f"sim{simulation.pk}:{u}": i for i, u in enumerate(data.user_ids)}  # stored with the run prefix
    item_index = {i: j for j, i in enumerate(data.item_ids)}
    clicks = list(events.filter(type="click").values_list("arm_id", "user_id", "item_id", "search"))
    arm_of = np.array([c[0] for c in clicks], dtype=np.int64)
    searched = np.array([c[3] for c in clicks], dtype=bool)
    held_out = shoppers.is_future([user_index[c[1]] for c in clicks], [item_index[c[2]] for c in clicks])
    split = {}
    for arm in arms:

        def count(kind: str, search: bool, arm_id: int = arm.pk) -> tuple[int, int]:
            return counts.get((arm_id, kind, search), (0, 0))

        rec_impressions, rec_users = count("impression", False)
        search_impressions, _ = count("impression", True)
        mine = arm_of == arm.pk
        split[arm.name] = {
            "rec_impressions": rec_impressions,
            "rec_ctr": count("click", False)[0] / max(rec_impressions, 1),
            "rec_conversion": count("purchase", False)[1] / max(rec_users, 1),
            "search_ctr": count("click", True)[0] / max(search_impressions, 1),
            "clicks": int(mine.sum()),
            "held_out": int((mine & ~searched & held_out).sum()),
            "neighbourhood": int((mine & ~searched & ~held_out).sum()),
            "search": int((mine & searched).sum()),
        }
    return split


def paired(models: dict, data: TrainingData, shoppers: Shoppers, users: float, days: int, seed: int,  # type: ignore[type-arg]
           search: float, ndcg: dict[str, float]) -> None:  # fmt: skip
    """Every arm on the same planned sessions (Django-free core, nothing stored): no sampling noise between arms."""
    config = SimulationConfig(daily_users=users, days=days, seed=seed, search_share=search)
    began = time.perf_counter()
    rows = {}
    for name, model in models.items():
        scorer = BatchScorer(model, data.user_ids, data.item_ids)

        def recommend(arm: int, users: np.ndarray, queries: list, scorer: BatchScorer = scorer) -> np.ndarray:  # type: ignore[type-arg]
            return scorer(users, queries, config.k)

        result = run(config, shoppers, recommend, lambda ids: np.zeros(len(ids), dtype=np.int64))
        outcome = result.outcomes
        session_is_search = np.array([q is not None for q in result.sessions.query])
        searched = session_is_search[outcome.session]
        user = result.sessions.user[outcome.session]
        rec_users = np.unique(result.sessions.user[~session_is_search])
        rows[name] = (
            float(outcome.clicked[~searched].mean()),
            len(np.unique(user[outcome.purchased & ~searched])) / len(rec_users),
            float(outcome.clicked[searched].mean()) if searched.any() else 0.0,
        )
    print(f"\n(a, paired) The same {len(result.sessions):,} planned sessions shown to every arm (Django-free core, "
          f"nothing stored, {time.perf_counter() - began:.0f} s): no between-arm sampling noise")  # fmt: skip
    print(f"{'arm':<11}{'NDCG sim':>9}{'rec CTR':>9}{'rec conv.':>10}{'search CTR':>11}")
    names = list(models)
    for name in sorted(names, key=lambda n: -ndcg[n]):
        print(f"{name:<11}{ndcg[name]:>9.4f}{rows[name][0]:>9.2%}{rows[name][1]:>10.1%}{rows[name][2]:>11.2%}")
    for label, column in (("rec CTR", 0), ("rec conversion", 1)):
        rho = scipy_stats.spearmanr([ndcg[n] for n in names], [rows[n][column] for n in names])
        print(f"  Spearman rho, NDCG@10 (simulated shoppers) vs {label}: {rho.statistic:+.3f} (p = {rho.pvalue:.3g})")


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
