"""The always-valid sign test against the fixed-horizon one under continuous monitoring. Prints a table.

Django-free (numpy/scipy). For each true share s of decided sessions won by A, `--runs` experiments
of `--looks` decided sessions each are drawn; both tests are read after EVERY decided session:

* sequential: `engine.interleaving.log_mixture_ratio` with the default tuning
  (`concentration_for(DEFAULT_N_STAR, alpha)`), rejecting at the first look with Λ >= 1/alpha;
* sign test, peeking: the exact two-sided binomial test p = min(1, 2 min(P(X <= W_A), P(X >= W_A)))
  at s = 1/2, rejecting at the first look with p < alpha (what a PM reading the fixed-horizon
  p value every day does);
* sign test, once: the same test read once, at the last look (its intended use).

At s = 1/2 the rejection rates are false-positive rates: the sequential one must stay <= alpha at
any number of looks (Ville's inequality); the peeking one does not. At s != 1/2 they are powers, with
the median number of decided sessions at the first rejection (the sequential test may stop early).

    python bench/interleaving_sequential.py [--runs 2000] [--looks 3000] [--alpha 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from engine.interleaving import DEFAULT_N_STAR, concentration_for, log_mixture_ratio


def first_rejection(rejected: np.ndarray) -> np.ndarray:
    """Per run, the 1-based look of the first rejection, or 0 when never rejected."""
    hit = rejected.any(axis=1)
    return np.where(hit, rejected.argmax(axis=1) + 1, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=3000, help="decided sessions per run (one look after each)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    concentration = concentration_for(DEFAULT_N_STAR, args.alpha)
    decided = np.arange(1, args.looks + 1)
    print(f"Always-valid vs fixed-horizon sign test, read after every decided session: {args.runs:,} runs of "
          f"{args.looks:,} decided sessions, alpha = {args.alpha:g}, Beta({concentration:.1f}, {concentration:.1f}) "
          f"mixture (N* = {DEFAULT_N_STAR:,.0f})\n")  # fmt: skip
    header = (f"{'s = P(A wins | decided)':>24} {'sequential':>11} {'median look':>12} {'sign, peeking':>14} "
              f"{'sign, once at end':>18}")  # fmt: skip
    print(header)
    rng = np.random.default_rng(args.seed)
    for share in (0.5, 0.52, 0.55, 0.6):
        wins_a = np.cumsum(rng.random((args.runs, args.looks)) < share, axis=1)
        sequential = log_mixture_ratio(wins_a, decided - wins_a, concentration) >= -math.log(args.alpha)
        tail = np.minimum(stats.binom.cdf(wins_a, decided, 0.5), stats.binom.sf(wins_a - 1, decided, 0.5))
        fixed = np.minimum(1.0, 2 * tail) < args.alpha
        looks = first_rejection(sequential)
        median = f"{int(np.median(looks[looks > 0])):,}" if (looks > 0).any() else "-"
        print(f"{share:>24.2f} {sequential.any(axis=1).mean():>11.3f} {median:>12} {fixed.any(axis=1).mean():>14.3f} "
              f"{fixed[:, -1].mean():>18.3f}")  # fmt: skip
    print(f"\nRates are shares of runs rejecting H0: s = 1/2 (at s = 0.50: false positives; the standard error of a "
          f"rate near 0.05 over {args.runs:,} runs is {math.sqrt(0.05 * 0.95 / args.runs):.4f}). "
          f"({time.perf_counter() - began:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
