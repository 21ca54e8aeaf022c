"""Calibration benchmark of engine.stats: A/A false-positive rates, power and throughput.

Prints plain-text tables (not a timed test; run by hand, e.g. before a release):

  1. A/A experiments (default 2,000 runs, base rate 10%, 10,000 users per arm): false-positive
     rate of the fixed-horizon test at the end; of the same test "peeked at" after each of 10
     equally spaced looks (naive); and of the always-valid sequential test at the same 10 looks,
     ours (default N*) beside GrowthBook's formula with its default N* = 5,000.
  2. Power for a 10% relative lift (10% -> 11%) at 15,000 users per arm: fixed horizon, and the
     sequential tests at the final look and at any of the 10 looks.
  3. Sensitivity of the sequential test to its tuning parameter N*.
  4. Throughput (comparisons per second) of the vectorised path and of scalar calls.

GrowthBook's gbstats 0.8.0 is NOT installed here: installing it would downgrade numpy (2.3.5 ->
1.26.4) and pandas (2.3.3 -> 1.5.3) in the shared environment. Its sequential test is therefore
re-implemented below from its published formula (gbstats ``SequentialTwoSidedTTest``: Waudby-Smith
et al. 2023 eq. 9, rho from N*), independently of our package code, and its scalar cost is
approximated by the same per-comparison scipy.stats calls gbstats makes.

Usage: python bench/aa_calibration.py [--sims 2000] [--seed 20261127] [--looks 10] ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from engine.stats import (
    DEFAULT_N_STAR,
    Proportion,
    power_proportions,
    proportion_test,
    proportion_test_arrays,
    sequential_proportion_test_arrays,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
GROWTHBOOK_N_STAR = 5_000.0


def growthbook_sequential_significant(
    n_c: npt.NDArray[np.float64],
    s_c: npt.NDArray[np.float64],
    n_t: npt.NDArray[np.float64],
    s_t: npt.NDArray[np.float64],
    alpha: float,
    n_star: float,
    relative: bool,
) -> BoolArray:
    """GrowthBook gbstats sequential CI excludes 0, from its published formula (vectorised here).

    rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N*),  N = n_c + n_t,  s2 = Var(effect) * N,
    half-width = sqrt(s2) * sqrt(2 (N rho^2 + 1) / (N^2 rho^2) * ln(sqrt(N rho^2 + 1) / alpha)).
    Var(effect) as in gbstats: unpooled p(1-p)/n (absolute) or the delta method (relative).
    """
    pc, pt = s_c / n_c, s_t / n_t
    vc, vt = pc * (1 - pc), pt * (1 - pt)
    if relative:
        effect = pt / pc - 1
        var = vt / (pc**2 * n_t) + vc * pt**2 / (pc**4 * n_c)
    else:
        effect = pt - pc
        var = vt / n_t + vc / n_c
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)
    n = n_c + n_t
    s2 = var * n
    half = np.sqrt(s2) * np.sqrt(2 * (n * rho**2 + 1) / (n**2 * rho**2) * np.log(np.sqrt(n * rho**2 + 1) / alpha))
    return np.asarray(np.abs(effect) > half)


def gbstats_like_scalar(c: Proportion, t: Proportion, alpha: float) -> tuple[float, float, float]:
    """Per-comparison cost model of gbstats: scalar arithmetic plus scipy.stats.t cdf/ppf per test."""
    pc, pt = c.successes / c.n, t.successes / t.n
    vc, vt = pc * (1 - pc), pt * (1 - pt)
    var = vt / (pc**2 * t.n) + vc * pt**2 / (pc**4 * c.n)
    effect = (pt - pc) / pc
    dof = (vt / t.n + vc / c.n) ** 2 / ((vt / t.n) ** 2 / (t.n - 1) + (vc / c.n) ** 2 / (c.n - 1))
    p = 2 * (1 - stats.t.cdf(abs(effect / math.sqrt(var)), dof))
    w = stats.t.ppf(1 - alpha / 2, dof) * math.sqrt(var)
    return effect - w, effect + w, p


def simulate_looks(
    rng: np.random.Generator, sims: int, looks: int, n_per_arm: int, p_c: float, p_t: float
) -> tuple[IntArray, IntArray, IntArray]:
    """Cumulative successes per arm at each of ``looks`` equally spaced looks; shape (sims, looks)."""
    edges = np.round(np.linspace(0, n_per_arm, looks + 1)).astype(np.int64)
    batch = np.diff(edges)
    s_c = rng.binomial(batch, p_c, size=(sims, looks)).cumsum(axis=1)
    s_t = rng.binomial(batch, p_t, size=(sims, looks)).cumsum(axis=1)
    n = np.broadcast_to(edges[1:], (sims, looks))
    return n, s_c, s_t


def rejections(
    n: IntArray, s_c: IntArray, s_t: IntArray, alpha: float, difference: str, n_star: float
) -> dict[str, BoolArray]:
    """Per-look rejection matrices (sims, looks) for each procedure."""
    shape = n.shape
    flat = (n.ravel(), s_c.ravel(), n.ravel(), s_t.ravel())
    fixed = proportion_test_arrays(*flat, alpha=alpha, difference=difference).significant.reshape(shape)  # type: ignore[arg-type]
    ours = sequential_proportion_test_arrays(
        *flat,
        alpha=alpha,
        difference=difference,  # type: ignore[arg-type]
        n_star=n_star,
    ).significant.reshape(shape)
    nf = n.ravel().astype(float)
    gb = growthbook_sequential_significant(
        nf, s_c.ravel().astype(float), nf, s_t.ravel().astype(float), alpha, GROWTHBOOK_N_STAR, difference == "relative"
    ).reshape(shape)
    return {"fixed": fixed, "ours": ours, "growthbook": gb}


def rate(mask: npt.ArrayLike) -> str:
    """Rate with its Monte Carlo 95% interval (Wilson), so noise is not mistaken for bias."""
    arr = np.asarray(mask, dtype=bool)
    k, m = int(arr.sum()), arr.size
    p = k / m
    z = 1.959963984540054
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return f"{p:6.4f}  [{centre - half:.4f}, {centre + half:.4f}]"


def table(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)


def best_rate(fn: Callable[[], object], count: int, repeats: int) -> float:
    """Comparisons per second, best of ``repeats`` (the least disturbed by other processes)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="All figures are Monte Carlo estimates; brackets are 95% Wilson intervals of that noise.",
    )
    parser.add_argument("--sims", type=int, default=2_000, help="simulated experiments per scenario (default 2000)")
    parser.add_argument("--seed", type=int, default=20261127, help="random seed (default 20261127)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--base-rate", type=float, default=0.10, help="control conversion rate (default 0.10)")
    parser.add_argument("--aa-n", type=int, default=10_000, help="users per arm in the A/A runs (default 10000)")
    parser.add_argument("--looks", type=int, default=10, help="equally spaced interim looks (default 10)")
    parser.add_argument("--power-n", type=int, default=15_000, help="users per arm for power (default 15000)")
    parser.add_argument("--lift", type=float, default=0.10, help="true relative lift for power (default 0.10)")
    parser.add_argument(
        "--difference", choices=("absolute", "relative"), default="absolute", help="effect scale (default absolute)"
    )
    parser.add_argument(
        "--n-star", type=float, default=DEFAULT_N_STAR, help=f"our sequential N* (default {DEFAULT_N_STAR:.0f})"
    )
    parser.add_argument(
        "--throughput-n", type=int, default=1_000_000, help="comparisons per vectorised batch (default 1e6)"
    )
    parser.add_argument("--skip-throughput", action="store_true", help="skip the timing section")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    load = os.getloadavg()
    print("engine.stats calibration benchmark")
    print(
        f"date {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC | python {platform.python_version()} | "
        f"numpy {np.__version__} | scipy {scipy.__version__} | cpus {os.cpu_count()} | "
        f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"sims {args.sims} | seed {args.seed} | alpha {args.alpha} | base rate {args.base_rate} | "
        f"looks {args.looks} | difference {args.difference} | our N* {args.n_star:.0f} | "
        f"GrowthBook N* {GROWTHBOOK_N_STAR:.0f} (formula re-implemented; gbstats not installed)"
    )

    # 1. A/A calibration.
    n, s_c, s_t = simulate_looks(rng, args.sims, args.looks, args.aa_n, args.base_rate, args.base_rate)
    rej = rejections(n, s_c, s_t, args.alpha, args.difference, args.n_star)
    table(
        f"1. A/A false-positive rate ({args.aa_n:,} users per arm, {args.looks} looks)",
        ("procedure", "false-positive rate [95% MC interval]", "requirement"),
        [
            ("fixed horizon, final look only", rate(rej["fixed"][:, -1]), "in [0.04, 0.06]"),
            (f"naive: fixed test at each of {args.looks} looks", rate(rej["fixed"].any(axis=1)), "(about 0.19)"),
            (f"sequential (ours, N*={args.n_star:.0f}), any look", rate(rej["ours"].any(axis=1)), "<= alpha"),
            (
                f"sequential (GrowthBook, N*={GROWTHBOOK_N_STAR:.0f}), any look",
                rate(rej["growthbook"].any(axis=1)),
                "<= alpha",
            ),
        ],
    )

    # 2. Power.
    p_t = args.base_rate * (1 + args.lift)
    n, s_c, s_t = simulate_looks(rng, args.sims, args.looks, args.power_n, args.base_rate, p_t)
    rej = rejections(n, s_c, s_t, args.alpha, args.difference, args.n_star)
    analytic = power_proportions(args.base_rate, args.lift, args.power_n, alpha=args.alpha).power
    table(
        f"2. Power, {args.base_rate:.0%} -> {p_t:.1%} ({args.lift:.0%} relative lift), {args.power_n:,} users per arm",
        ("procedure", "power [95% MC interval]", "note"),
        [
            ("fixed horizon, final look", rate(rej["fixed"][:, -1]), f"analytic {analytic:.4f}; need >= 0.78"),
            (f"sequential (ours, N*={args.n_star:.0f}), final look", rate(rej["ours"][:, -1]), ""),
            (f"sequential (ours, N*={args.n_star:.0f}), any of {args.looks} looks", rate(rej["ours"].any(axis=1)), ""),
            (f"sequential (GrowthBook, N*={GROWTHBOOK_N_STAR:.0f}), final look", rate(rej["growthbook"][:, -1]), ""),
            (
                f"sequential (GrowthBook, N*={GROWTHBOOK_N_STAR:.0f}), any of {args.looks} looks",
                rate(rej["growthbook"].any(axis=1)),
                "",
            ),
        ],
    )

    # 3. Sensitivity to N* (same simulated data as above for the power; fresh A/A data).
    aa = simulate_looks(rng, args.sims, args.looks, args.aa_n, args.base_rate, args.base_rate)
    rows: list[tuple[str, ...]] = []
    for n_star in (5_000.0, 10_000.0, 30_000.0, 100_000.0, 300_000.0):
        pw = rejections(n, s_c, s_t, args.alpha, args.difference, n_star)["ours"]
        fp = rejections(*aa, args.alpha, args.difference, n_star)["ours"]
        rows.append((f"{n_star:,.0f}", rate(fp.any(axis=1)), rate(pw.any(axis=1)), rate(pw[:, -1])))
    table(
        "3. Our sequential test versus its tuning N* (total users where the sequence is tightest)",
        ("N*", f"A/A FPR, any of {args.looks} looks", f"power, any of {args.looks} looks", "power, final look"),
        rows,
    )

    if args.skip_throughput:
        return 0

    # 4. Throughput.
    m = args.throughput_n
    tn = rng.integers(1_000, 1_000_000, size=m)
    cn = rng.integers(1_000, 1_000_000, size=m)
    ts, cs = rng.binomial(tn, 0.1), rng.binomial(cn, 0.1)
    scalar_pairs = [(Proportion(int(cn[i]), int(cs[i])), Proportion(int(tn[i]), int(ts[i]))) for i in range(2_000)]

    def scalar_ours() -> None:
        for c, t in scalar_pairs:
            proportion_test(c, t, difference="relative")

    def scalar_gb() -> None:
        for c, t in scalar_pairs:
            gbstats_like_scalar(c, t, 0.05)

    rows = [
        (
            "vectorised proportion_test_arrays (Student t)",
            f"{best_rate(lambda: proportion_test_arrays(cn, cs, tn, ts, difference='relative'), m, 3):,.0f}",
        ),
        (
            "vectorised proportion_test_arrays (normal)",
            f"{best_rate(lambda: proportion_test_arrays(cn, cs, tn, ts, difference='relative', distribution='normal'), m, 3):,.0f}",  # noqa: E501
        ),
        (
            "vectorised sequential_proportion_test_arrays",
            f"{best_rate(lambda: sequential_proportion_test_arrays(cn, cs, tn, ts, difference='relative'), m, 3):,.0f}",
        ),
        ("scalar proportion_test (one call per comparison)", f"{best_rate(scalar_ours, len(scalar_pairs), 3):,.0f}"),
        (
            "gbstats formulas, scalar scipy.stats calls (cost model)",
            f"{best_rate(scalar_gb, len(scalar_pairs), 3):,.0f}",
        ),
    ]
    table(
        f"4. Throughput, comparisons per second (best of 3; batch {m:,}; target >= 100,000/s vectorised)",
        ("path", "tests/s"),
        rows,
    )
    load = os.getloadavg()
    print(f"load avg at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cpus (shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
