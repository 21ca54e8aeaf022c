"""Tests per second of our Bayesian test beside GrowthBook's, on the same inputs, on one core.

Two input sets, fixed by --seed, --pairs pairs each (default 2,000):

  conversion  pairs of (users, purchasers) per arm: users log-uniform in 1,000-1,000,000 per arm
              (treatment within +-5 % of control), base rate log-uniform in 0.5-15 %, true
              relative lift ~ N(0, 5 %), purchasers binomial. Ours: ``bayesian_test`` on two
              ``Proportion``s, the exact Beta-Binomial. gbstats: ``EffectBayesianABTest`` on two
              ``ProportionStatistic``s (its normal approximation of the relative lift).
  ctr         click-through rate with users as units: per-arm sums of clicks, impressions, their
              squares and products (users log-uniform in 1,000-1,000,000, 2-20 impressions per
              user, CTR 1-10 %, overdispersed). Ours: ``bayesian_test`` on two ``RatioSample``s
              (normal on the delta-method relative lift); gbstats: ``EffectBayesianABTest`` on two
              ``RatioStatistic``s, the same method.

A full test is timed for both: building the two statistics from the sums, then chance to win, both
expected losses and the lift's credible interval. Each run is one pass over a set; --runs runs per
engine and set, alternating ours and gbstats so drifting machine load hits both alike. Reported:
tests per second, median (min-max) over the runs, the ratio of the medians, and how far the two
engines' chances to win are apart (on ctr the same method, so rounding; on conversion exact against
normal approximation). The process pins itself to one CPU and sets the BLAS thread pools to 1.
Results go to bench/results/bayesian_speed.json (bench/report.py) unless --no-save.

gbstats 0.8.0 is installed by `make test` (the .venv/.dev step, with --no-deps: it declares
numpy<2 and pandas<2 but runs on ours).

    python bench/bayesian_speed.py
    python bench/bayesian_speed.py --pairs 500 --runs 3 --no-save   (a quicker look, nothing written)
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core for everyone, set before numpy loads its BLAS
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_variable] = "1"

import argparse
import importlib.metadata
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from bench.report import Spread, write
from engine.stats import Proportion, RatioSample, bayesian_test

Sums = tuple[float, ...]


@dataclass(frozen=True)
class InputSet:
    name: str
    pairs: list[tuple[Sums, Sums]]  # (control, treatment) sums, as an aggregation query returns them


def conversion_pairs(rng: np.random.Generator, count: int) -> InputSet:
    users_c = np.round(10.0 ** rng.uniform(3.0, 6.0, count)).astype(np.int64)
    users_t = np.round(users_c * rng.uniform(0.95, 1.05, count)).astype(np.int64)
    rate_c = 10.0 ** rng.uniform(np.log10(0.005), np.log10(0.15), count)
    rate_t = np.clip(rate_c * (1.0 + rng.normal(0.0, 0.05, count)), 1e-6, 1.0)
    buyers_c, buyers_t = rng.binomial(users_c, rate_c), rng.binomial(users_t, rate_t)
    return InputSet(
        "conversion",
        [((int(a), int(b)), (int(c), int(d))) for a, b, c, d in zip(users_c, buyers_c, users_t, buyers_t, strict=True)],
    )


def _ctr_arm(rng: np.random.Generator, users: int, per_user: float, ctr: float, spread: float) -> Sums:
    """Sums over users of impressions y (mean per_user, variance spread per_user^2) and clicks x
    (binomial on y at rate ctr), with the realised totals drawn around their expectations."""
    y_total = float(rng.poisson(users * per_user))
    y2_total = y_total * per_user * (1.0 + spread) + y_total
    x_total = float(rng.binomial(int(y_total), ctr))
    xy_total = ctr * y2_total
    x2_total = ctr * ctr * y2_total + x_total * (1.0 - ctr)
    return (users, x_total, y_total, x2_total, y2_total, xy_total)


def ctr_pairs(rng: np.random.Generator, count: int) -> InputSet:
    pairs = []
    for _ in range(count):
        users = round(10.0 ** rng.uniform(3.0, 6.0))
        per_user, ctr, spread = rng.uniform(2.0, 20.0), rng.uniform(0.01, 0.1), rng.uniform(0.2, 2.0)
        treated = round(users * rng.uniform(0.95, 1.05))
        lift = 1.0 + rng.normal(0.0, 0.05)
        pairs.append(
            (_ctr_arm(rng, users, per_user, ctr, spread), _ctr_arm(rng, treated, per_user, ctr * lift, spread))
        )
    return InputSet("ctr", pairs)


def ours(kind: str) -> Callable[[Sums, Sums], float]:
    if kind == "conversion":
        return lambda c, t: bayesian_test(
            Proportion(int(c[0]), int(c[1])), Proportion(int(t[0]), int(t[1]))
        ).chance_to_win

    def ratio(c: Sums, t: Sums) -> float:
        control = RatioSample(int(c[0]), c[1], c[2], c[3], c[4], c[5])
        treatment = RatioSample(int(t[0]), t[1], t[2], t[3], t[4], t[5])
        return bayesian_test(control, treatment).chance_to_win

    return ratio


def gbstats_test(kind: str) -> Callable[[Sums, Sums], float]:
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
    from gbstats.models.statistics import ProportionStatistic, RatioStatistic, SampleMeanStatistic

    config = EffectBayesianConfig()
    if kind == "conversion":
        return (
            lambda c, t: EffectBayesianABTest(
                ProportionStatistic(n=int(c[0]), sum=c[1]), ProportionStatistic(n=int(t[0]), sum=t[1]), config
            )
            .compute_result()
            .chance_to_win
        )

    def statistic(s: Sums) -> Any:
        n = int(s[0])
        return RatioStatistic(
            n=n,
            m_statistic=SampleMeanStatistic(n=n, sum=s[1], sum_squares=s[3]),
            d_statistic=SampleMeanStatistic(n=n, sum=s[2], sum_squares=s[4]),
            m_d_sum_of_products=s[5],
        )

    return lambda c, t: EffectBayesianABTest(statistic(c), statistic(t), config).compute_result().chance_to_win


def one_pass(test: Callable[[Sums, Sums], float], pairs: Sequence[tuple[Sums, Sums]]) -> tuple[float, list[float]]:
    """Tests per second over one pass, and the chances to win (to compare the engines)."""
    start = time.perf_counter()
    chances = [test(c, t) for c, t in pairs]
    return len(pairs) / (time.perf_counter() - start), chances


def pin_to_one_cpu() -> tuple[str, set[int] | None]:
    """Pin this process to one CPU; return a description and the CPUs it had (to restore)."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this system)", None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return f"pinned to CPU {min(before)}", before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per input set (default 2,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed passes per engine and set, alternating (default 5)")
    parser.add_argument("--seed", type=int, default=20261207, help="seed of the input sets (default 20261207)")
    parser.add_argument("--no-save", action="store_true", help="print only; do not write bench/results/*.json")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.runs < 1:
        parser.error("--pairs and --runs must be at least 1")
    try:
        gbstats_version = importlib.metadata.version("gbstats")
        gbstats_test("conversion")
    except ImportError as error:  # importlib.metadata.PackageNotFoundError is an ImportError too
        sys.exit(
            f"gbstats is not installed ({error}). `make test` installs it (the .venv/.dev step runs "
            "`pip install --no-deps gbstats==0.8.0`), or run that pip command in this environment."
        )
    placement, cpus = pin_to_one_cpu()
    try:
        return _run(args, gbstats_version, placement)
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)


def _run(args: argparse.Namespace, gbstats_version: str, placement: str) -> int:
    rng = np.random.default_rng(args.seed)
    sets = [conversion_pairs(rng, args.pairs), ctr_pairs(rng, args.pairs)]
    print(f"{args.pairs:,} pairs per set, {args.runs} runs per engine, alternating; one process, {placement}")
    figures: dict[str, Any] = {
        "pairs": args.pairs,
        "runs": args.runs,
        "seed": args.seed,
        "versions": {name: importlib.metadata.version(name) for name in ("numpy", "scipy", "pydantic")}
        | {"gbstats": gbstats_version},
    }
    for inputs in sets:
        engines = {"ours": ours(inputs.name), "gbstats": gbstats_test(inputs.name)}
        warm = inputs.pairs[: min(50, len(inputs.pairs))]
        for test in engines.values():
            one_pass(test, warm)
        rates: dict[str, list[float]] = {name: [] for name in engines}
        chances: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, test in engines.items():
                rate, chances[name] = one_pass(test, inputs.pairs)
                rates[name].append(rate)
        gap = [abs(a - b) for a, b in zip(chances["ours"], chances["gbstats"], strict=True)]
        spreads = {name: Spread.of(values) for name, values in rates.items()}
        method = "Beta-Binomial (exact)" if inputs.name == "conversion" else "normal, relative lift"
        print(f"\n{inputs.name}: ours {method}; gbstats EffectBayesianABTest (normal, relative lift)")
        for name, spread in spreads.items():
            print(f"  {name:8s} {spread.median:10,.0f} tests/s  (min-max {spread.low:,.0f}-{spread.high:,.0f})")
        ratio = spreads["ours"].median / spreads["gbstats"].median
        print(f"  ours / gbstats: {ratio:.1f}x;  |chance to win, ours - gbstats|: median {statistics.median(gap):.2e}, "
              f"max {max(gap):.2e}")  # fmt: skip
        figures[inputs.name] = {
            "ours_tests_per_second": spreads["ours"],
            "gbstats_tests_per_second": spreads["gbstats"],
            "ratio_of_medians": round(ratio, 2),
            "chance_to_win_gap_median": statistics.median(gap),
            "chance_to_win_gap_max": max(gap),
        }
    if not args.no_save:
        figures = {k: (_plain(v) if isinstance(v, dict) else v) for k, v in figures.items()}
        print(f"\nwrote {write('bayesian_speed', figures)}")
    return 0


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """Nested Spreads as dicts (bench/report.write converts only the top level)."""
    return {k: (asdict(v) if isinstance(v, Spread) else v) for k, v in value.items()}


if __name__ == "__main__":
    raise SystemExit(main())
