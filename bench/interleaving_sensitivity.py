"""How many fewer users does interleaving need than an A/B test on CTR? Printed as a table.

Set-up (once, kept between runs): the bundled Online Retail data imported as `online-retail`
with the last 20 % of its time span held out (`manage.py import_dataset ... --holdout-fraction
0.2`), and four variants trained on the rest through the platform's training service: popularity,
item-kNN (200 neighbours, shrink 20), EASE (l2 800) and EASE (l2 3000), the near pair. A draft
experiment with them as arms only serves to load the simulator's shoppers (`load_shoppers`); each
model's top-k list of every shopper is computed once by the simulator's scorer (seen items
removed), as a model that ignores queries serves it in every session.

Both designs use the simulator's position-based click model (`engine.simulation.clicks`,
default `SimulationConfig`, k = 10, no searches, no injected effect) and one session per user,
the user drawn uniformly from the eligible shoppers, so users = sessions in both columns.

* A/B on CTR, from the model's exact moments (no simulation noise): session CTR = clicks /
  impressions; for arm X its mean μ_X and variance σ²_X over users and clicks follow from the
  click probabilities p(u, r) = (1/r)^η · min(1, a(u, i_r)):
  E[CTR | u] = Σ_r p / m_u, Var[CTR | u] = Σ_r p (1 - p) / m_u², σ²_X = Var_u E + E_u Var.
  Users per arm for Welch's test (two-sided α = 0.05, power 0.8):
  n = (z_{0.975} + z_{0.8})² (σ²_X + σ²_Y) / (μ_X - μ_Y)²; total users = 2n.
* Interleaving: per-session win probabilities p_A, p_B measured by simulating `--sessions`
  team-draft sessions (`engine.interleaving`), then `sessions_for_power` (normal
  approximation to the two-sided sign test, ties excluded); users = sessions.

Check (`--runs`, default 200): each design is simulated `--runs` times at its computed size and
tested (Welch's t-test of `engine.stats.mean_test`; the interleaving sign test); the share
of runs detecting the difference (p < 0.05) should be about 0.8. A design whose check would
draw more than `--budget` impressions runs fewer experiments, or none under 20 (the machine
is shared).

Several sessions per user (second table, formulas only): with S sessions per user the A/B unit is
the user's CTR over them (variance Var_u E + E_u Var / S: clicking noise averages out, the
difference between users does not), and the interleaving unit is the user, won by the team with
more credited clicks over the S sessions (p_A, p_B measured on `--sessions` sessions, i.e.
`--sessions` / S users); users are independent, so the same sign test applies.

Decomposition (`--decompose`, instead of the tables above; formulas on measured moments, no power
check): what drives the ratio, as a product of three factors, each a ratio of sample sizes for the
same power (z = z_{0.975} + z_{0.8}; D = c_A - c_B, the clicks credited to A minus to B in one
interleaved session; for a paired A/B design each user is shown A's list and B's list in two
sessions, CTR difference with variance Var_u(E_A - E_B) + E_u Var_A + E_u Var_B):

    A/B users / ILV users (sign test) = pairing × team draft × sign
    pairing    = A/B users / paired A/B sessions      (what removing the differences between users gives)
    team draft = paired A/B sessions / ILV sessions with a paired z test on D, n = z² Var(D) / E[D]²
    sign       = ILV sessions (z test on D) / ILV sessions (sign test): what keeping only the sign costs

    DATABASE_URL=postgres://... python bench/interleaving_sensitivity.py [--runs 200] [--sessions 2000000] [--decompose]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from benchdata import bench_experiment  # noqa: E402  (bench/, the script's directory)
from scipy import special  # noqa: E402

from engine.interleaving import (  # noqa: E402
    Credit,
    Tally,
    credit,
    interleaving_test,
    random_coins,
    sessions_for_power,
    team_draft_many,
)
from engine.simulation import Shoppers, SimulationConfig  # noqa: E402
from engine.simulation.clicks import examination, outcomes  # noqa: E402
from engine.simulation.sessions import Sessions  # noqa: E402
from engine.stats import SampleMean, mean_test  # noqa: E402
from experiments.models import Experiment  # noqa: E402
from recommenders.algorithms.base import TrainingData  # noqa: E402
from recommenders.models import Dataset, TrainingRun, Variant  # noqa: E402
from recommenders.serving import model_for_run  # noqa: E402
from simulation.services.runs import BatchScorer as Scorer  # noqa: E402
from simulation.services.runs import load_shoppers  # noqa: E402

DATASET = "online-retail"
NAME = "bench-interleaving"
ALPHA, POWER = 0.05, 0.8
CHUNK_IMPRESSIONS = 2_000_000
VARIANTS = (
    ("popularity", "popularity", {}),
    ("item-knn", "item_knn", {"neighbours": 200, "shrink": 20.0}),
    ("ease", "ease", {"l2": 800.0}),
    ("ease-l2-3000", "ease", {"l2": 3000.0}),
)
PER_USER = (4, 16)
PAIRS = (("ease", "popularity"), ("ease", "item-knn"), ("ease", "ease-l2-3000"))


@dataclass(frozen=True)
class Arm:
    """One variant's lists (data user index -> top-k data item indices) and its exact CTR moments."""

    lists: np.ndarray
    ctr_given_user: np.ndarray  # E[session CTR | u], one per shopper
    var_given_user: np.ndarray  # Var[session CTR | u]

    @property
    def mean(self) -> float:
        return float(self.ctr_given_user.mean())

    @property
    def variance(self) -> float:
        return self.variance_per_user(1)

    def variance_per_user(self, sessions: int) -> float:
        """Variance of a user's CTR over `sessions` sessions (equal impressions): Var_u E + E_u Var / S."""
        return float(self.ctr_given_user.var() + self.var_given_user.mean() / sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2_000_000, help="sessions to measure p_A, p_B (default 2e6)")
    parser.add_argument("--runs", type=int, default=200, help="simulated experiments per check (default 200; 0: none)")
    parser.add_argument("--budget", type=float, default=4e7, help="most impressions a check may draw (default 4e7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--decompose", action="store_true", help="print only the decomposition of the ratio")
    args = parser.parse_args()
    started = time.perf_counter()
    experiment = _prepare()
    config = SimulationConfig(search_share=0.0)
    data, shoppers = load_shoppers(experiment)
    # A draft experiment pins no run yet: each variant's newest successful run is what starting it would pin.
    runs = {name: Variant.objects.get(name=f"{NAME}-{name}").latest_successful_run() for name, _, _ in VARIANTS}
    lists = {name: _arm(data, shoppers, runs[name], config) for name, _, _ in VARIANTS}
    rng = np.random.default_rng(args.seed)
    print(
        f"\nInterleaving vs A/B sensitivity, Online Retail (last 20 % held out), {shoppers.n_shoppers:,} shoppers, "
        f"k = {config.k}, one session per user; {time.strftime('%Y-%m-%d %H:%M')} UTC, load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print("\nCTR per session (exact, from the click model):")
    for name, arm in lists.items():
        between = float(arm.ctr_given_user.var()) / arm.variance
        spread = f"sd {np.sqrt(arm.variance):.3%}, {between:.0%} of the variance between users"
        print(f"  {name:<14}{arm.mean:>8.3%}   {spread}")
    if args.decompose:
        _decompose(shoppers, lists, config, args.sessions, rng)
        print(f"(total {time.perf_counter() - started:.0f} s)")
        return

    header = (
        f"\n{'pair (A vs B)':<26}{'CTR lift':>9}{'A/B users':>12}{'P(A wins)':>10}{'P(B wins)':>10}"
        f"{'ties':>7}{'ILV users':>11}{'ratio':>8}{'power A/B':>12}{'power ILV':>12}"
    )
    print(header)
    for a_name, b_name in PAIRS:
        a, b = lists[a_name], lists[b_name]
        z = special.ndtri(1 - ALPHA / 2) + special.ndtri(POWER)
        ab_per_arm = int(np.ceil(z**2 * (a.variance + b.variance) / (a.mean - b.mean) ** 2))
        wins = _measure_wins(shoppers, a, b, config, args.sessions, rng)
        plan = sessions_for_power(wins[0], wins[1], alpha=ALPHA, power=POWER)
        ab_power = _check_ab(shoppers, a, b, config, ab_per_arm, args.runs, args.budget, rng)
        ilv_power = _check_interleaving(shoppers, a, b, config, plan.sessions, args.runs, args.budget, rng)
        print(
            f"{a_name + ' vs ' + b_name:<26}{a.mean / b.mean - 1:>+9.1%}{2 * ab_per_arm:>12,}{wins[0]:>10.4f}"
            f"{wins[1]:>10.4f}{plan.tie_share:>7.1%}{plan.sessions:>11,}{2 * ab_per_arm / plan.sessions:>7.1f}x"
            f"{ab_power:>12}{ilv_power:>12}"
        )
    print(
        "\nA/B users: both arms together, Welch's test on session CTR from the exact moments. ILV users: sessions for\n"
        "the sign test from P(A wins), P(B wins) measured on "
        f"{args.sessions:,} simulated sessions per pair. Ratio = A/B users / ILV users\n"
        f"(target >= 10x). Power columns: share of simulated experiments at that size with p < {ALPHA} (number of\n"
        f"experiments in brackets, at most {args.runs}, fewer when over the budget of {args.budget:,.0f} impressions;\n"
        "'-' = under 20)."
    )
    _several_sessions(shoppers, lists, config, args.sessions, rng)
    print(f"(total {time.perf_counter() - started:.0f} s)")


def _several_sessions(
    shoppers: Shoppers, lists: dict[str, Arm], config: SimulationConfig, sessions: int, rng: np.random.Generator
) -> None:
    """Users needed when every user has S sessions: the A/B unit is the user's CTR over them,
    the interleaving unit the user, won by the team with more credited clicks (formulas only)."""
    z = special.ndtri(1 - ALPHA / 2) + special.ndtri(POWER)
    print(
        f"\nUsers needed when every user has S sessions (formulas only, no power check; {sessions:,} sessions measured)"
    )
    print(f"{'pair (A vs B)':<26}" + "".join(f"{f'S={s} A/B':>12}{f'S={s} ILV':>11}{'ratio':>8}" for s in PER_USER))
    for a_name, b_name in PAIRS:
        a, b = lists[a_name], lists[b_name]
        cells = []
        for per_user in PER_USER:
            variance = a.variance_per_user(per_user) + b.variance_per_user(per_user)
            ab_users = 2 * int(np.ceil(z**2 * variance / (a.mean - b.mean) ** 2))
            wins = _measure_wins(shoppers, a, b, config, sessions, rng, per_user)
            ilv_users = sessions_for_power(wins[0], wins[1], alpha=ALPHA, power=POWER).sessions
            cells.append(f"{ab_users:>12,}{ilv_users:>11,}{ab_users / ilv_users:>7.1f}x")
        print(f"{a_name + ' vs ' + b_name:<26}" + "".join(cells))


def _decompose(
    shoppers: Shoppers, lists: dict[str, Arm], config: SimulationConfig, sessions: int, rng: np.random.Generator
) -> None:
    """The ratio as pairing × team draft × sign (module docstring), with what each factor reads."""
    z = special.ndtri(1 - ALPHA / 2) + special.ndtri(POWER)
    print(f"\nWhat drives the ratio (one session per user; {sessions:,} interleaved sessions measured per pair)")
    print(f"{'pair (A vs B)':<26}{'overlap':>8}{'clicks':>7}{'ties':>7}{'A/B':>9}{'paired A/B':>11}{'ILV z(D)':>10}"
          f"{'ILV sign':>10}{'pairing':>9}{'team draft':>11}{'sign':>7}{'ratio':>7}")  # fmt: skip
    for a_name, b_name in PAIRS:
        a, b = lists[a_name], lists[b_name]
        users = shoppers.users
        top_a, top_b = a.lists[users], b.lists[users]
        shared = ((top_a[:, :, None] == top_b[:, None, :]) & (top_a[:, :, None] >= 0)).any(axis=2).sum(axis=1)
        overlap = float(shared.mean()) / config.k
        gap = (a.mean - b.mean) ** 2
        ab = 2 * z**2 * (a.variance + b.variance) / gap
        paired_variance = float((a.ctr_given_user - b.ctr_given_user).var()) + float(
            a.var_given_user.mean() + b.var_given_user.mean()
        )
        paired = 2 * z**2 * paired_variance / gap  # two sessions per user
        total = n = 0
        sum_d = sum_d2 = 0.0
        wins_a = wins_b = 0
        for batch in _chunks(sessions, config.k):
            given = _interleaved_credit(shoppers, a, b, config, batch, rng)
            d = (given.clicks_a - given.clicks_b).astype(np.float64)
            sum_d, sum_d2, n = sum_d + d.sum(), sum_d2 + (d**2).sum(), n + len(d)
            total += int((given.clicks_a + given.clicks_b).sum())
            tally = given.tally()
            wins_a, wins_b = wins_a + tally.wins_a, wins_b + tally.wins_b
        mean_d = sum_d / n
        ilv_z = z**2 * (sum_d2 / n - mean_d**2) / mean_d**2
        plan = sessions_for_power(wins_a / n, wins_b / n, alpha=ALPHA, power=POWER)
        print(f"{a_name + ' vs ' + b_name:<26}{overlap:>8.0%}{total / n:>7.3f}{plan.tie_share:>7.1%}{ab:>9,.0f}"
              f"{paired:>11,.0f}{ilv_z:>10,.0f}{plan.sessions:>10,}{ab / paired:>8.2f}x{paired / ilv_z:>10.2f}x"
              f"{ilv_z / plan.sessions:>6.2f}x{ab / plan.sessions:>6.1f}x")  # fmt: skip
    print(
        "\noverlap: share of B's top-10 also in A's top-10 (mean over shoppers); clicks: credited clicks per\n"
        "interleaved session. Sample sizes in sessions (= users here) for power 0.8 at alpha 0.05, from the exact\n"
        "CTR moments (A/B, paired A/B) and from the measured D and wins (ILV). pairing x team draft x sign = ratio."
    )


def _interleaved_credit(
    shoppers: Shoppers, a: Arm, b: Arm, config: SimulationConfig, n: int, rng: np.random.Generator
) -> Credit:
    """Clicks credited to each team in `n` interleaved sessions of uniformly drawn users."""
    sessions = _sessions(shoppers, n, rng)
    lists = team_draft_many(a.lists[sessions.user], b.lists[sessions.user], config.k, random_coins(n, config.k, rng))
    return credit(lists, _clicks(shoppers, sessions, lists.items, config, rng))


def _prepare() -> Experiment:
    """Train the variants (once each) and keep a draft experiment naming them, to load the shoppers."""
    dataset = Dataset.objects.filter(name=DATASET).first()
    if dataset is None or dataset.holdout_from is None:
        sys.exit(
            f"import the data first: manage.py import_dataset online-retail data/online-retail/online_retail.csv.gz "
            f"--name {DATASET} --holdout-fraction 0.2"
        )
    arms = [(arm, f"{NAME}-{arm}", algorithm, params) for arm, algorithm, params in VARIANTS]
    return bench_experiment(NAME, "Interleaving sensitivity", dataset, arms, start=False)


def _arm(data: TrainingData, shoppers: Shoppers, run: TrainingRun, config: SimulationConfig) -> Arm:
    data_users = shoppers.users
    model = model_for_run(run)
    scorer = Scorer(model, data.user_ids, data.item_ids)
    top = scorer(data_users, [None] * len(data_users), config.k)
    shown = top >= 0
    users = np.repeat(data_users[:, None], config.k, axis=1)
    p = np.zeros(top.shape)
    p[shown] = shoppers.attractiveness(users[shown], top[shown], config)
    p = np.minimum(1.0, p) * examination(config.k, config.eta)[None, :] * shown
    m = np.maximum(shown.sum(axis=1), 1)
    lists = np.full((int(data_users.max()) + 1, config.k), -1, dtype=np.int64)
    lists[data_users] = top
    return Arm(lists, p.sum(axis=1) / m, (p * (1 - p)).sum(axis=1) / m**2)


def _sessions(shoppers: Shoppers, n: int, rng: np.random.Generator, per_user: int = 1) -> Sessions:
    """`n` users drawn uniformly from the shoppers, each with `per_user` consecutive sessions."""
    user = np.repeat(shoppers.users[rng.integers(0, shoppers.n_shoppers, size=n)], per_user)
    zeros = np.zeros(len(user), dtype=np.int64)
    return Sessions(timestamp=zeros, day=zeros, user=user, query=(None,) * n, query_item=zeros - 1)


def _clicks(
    shoppers: Shoppers, sessions: Sessions, shown: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """(sessions x k) clicks of the simulator's click model on the lists `shown`."""
    drawn = outcomes(config, shoppers, sessions, shown, np.zeros(len(sessions), dtype=np.int64), rng)
    clicked = np.zeros(shown.shape, dtype=bool)
    clicked[drawn.session, drawn.position - 1] = drawn.clicked
    return clicked


def _interleaved_outcomes(
    shoppers: Shoppers, a: Arm, b: Arm, config: SimulationConfig, n: int, rng: np.random.Generator, per_user: int = 1
) -> np.ndarray:
    """Outcome (A_WINS, B_WINS, TIE) of `n` users with `per_user` interleaved sessions each; with
    several sessions a user is won by the team with more credited clicks over all of them."""
    sessions = _sessions(shoppers, n, rng, per_user)
    coins = random_coins(len(sessions), config.k, rng)
    lists = team_draft_many(a.lists[sessions.user], b.lists[sessions.user], config.k, coins)
    given = credit(lists, _clicks(shoppers, sessions, lists.items, config, rng))
    if per_user == 1:
        return given.outcome
    return np.sign((given.clicks_a - given.clicks_b).reshape(n, per_user).sum(axis=1)).astype(np.int8)


def _measure_wins(
    shoppers: Shoppers, a: Arm, b: Arm, config: SimulationConfig, n: int, rng: np.random.Generator, per_user: int = 1
) -> tuple[float, float]:
    """P(A wins), P(B wins) of one user with `per_user` sessions, from `n` simulated sessions
    (n // per_user users, in batches to bound memory)."""
    users = n // per_user
    wins_a = wins_b = 0
    for batch in _chunks(users, per_user * config.k):
        tally = Tally.from_outcomes(_interleaved_outcomes(shoppers, a, b, config, batch, rng, per_user))
        wins_a, wins_b = wins_a + tally.wins_a, wins_b + tally.wins_b
    return wins_a / users, wins_b / users


def _runs_within(runs: int, impressions_per_run: int, budget: float) -> int:
    """As many of `runs` as the impression budget allows; 0 (skip) below 20, too few to say anything."""
    affordable = min(runs, int(budget // max(impressions_per_run, 1)))
    return affordable if affordable >= 20 else 0


def _chunks(runs: int, impressions_per_run: int) -> list[int]:
    """Runs per batch, so a batch draws at most ~2 million impressions (the flat outcomes stay ~150 MB)."""
    size = max(1, CHUNK_IMPRESSIONS // impressions_per_run)
    return [min(size, runs - start) for start in range(0, runs, size)]


def _check_interleaving(
    shoppers: Shoppers, a: Arm, b: Arm, config: SimulationConfig, n: int, runs: int, budget: float,
    rng: np.random.Generator,
) -> str:  # fmt: skip
    runs = _runs_within(runs, n * config.k, budget)
    if runs == 0:
        return "-"
    detected: list[bool] = []
    for batch in _chunks(runs, n * config.k):
        outcome = _interleaved_outcomes(shoppers, a, b, config, batch * n, rng).reshape(batch, n)
        detected += [interleaving_test(Tally.from_outcomes(row), alpha=ALPHA).p_value < ALPHA for row in outcome]
    return f"{np.mean(detected):.2f} ({runs})"


def _check_ab(
    shoppers: Shoppers, a: Arm, b: Arm, config: SimulationConfig, per_arm: int, runs: int, budget: float,
    rng: np.random.Generator,
) -> str:  # fmt: skip
    runs = _runs_within(runs, 2 * per_arm * config.k, budget)
    if runs == 0:
        return "-"
    detected: list[bool] = []
    for batch in _chunks(runs, 2 * per_arm * config.k):
        moments = []
        for arm in (b, a):  # control B, treatment A: the test's effect has the sign of CTR_A - CTR_B
            sessions = _sessions(shoppers, batch * per_arm, rng)
            shown = arm.lists[sessions.user]
            clicks = _clicks(shoppers, sessions, shown, config, rng).sum(axis=1)
            ctr = (clicks / np.maximum((shown >= 0).sum(axis=1), 1)).reshape(batch, per_arm)
            moments.append([SampleMean(per_arm, float(row.sum()), float((row**2).sum())) for row in ctr])
        detected += [mean_test(c, t, alpha=ALPHA).p_value < ALPHA for c, t in zip(*moments, strict=True)]
    return f"{np.mean(detected):.2f} ({runs})"


if __name__ == "__main__":
    main()
