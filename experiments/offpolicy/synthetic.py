"""Synthetic slate logs with a known truth, for the tests and the validity bench.

Each simulated impression picks a position uniformly, an item from the logging policy's marginal at
that position, and a click with probability ctr[k, a], which is exactly the position-wise model of
``slates``; so the true CTR per impression of any position policy is known in closed form.
"""

from __future__ import annotations

import numpy as np

from ._arrays import FloatArray
from .errors import InvalidConfigError
from .slates import PositionPolicy, SlateLog

__all__ = ["simulate_slate_log", "true_value"]


def simulate_slate_log(ctr: FloatArray, logging: PositionPolicy, n: int, rng: np.random.Generator) -> SlateLog:
    """``n`` impressions logged by ``logging``, clicks drawn from ``ctr`` (shape (n_positions, n_items))."""
    _check_ctr(ctr, logging)
    if n < 2:
        raise InvalidConfigError(f"simulate at least 2 impressions, got {n}")
    positions = rng.integers(0, logging.n_positions, size=n)
    # Inverse-CDF sampling of each row's item from its position's marginal, vectorised over rows.
    cdf = np.cumsum(logging.probabilities, axis=1)
    draws = rng.random(n)
    items = np.minimum((draws[:, None] > cdf[positions]).sum(axis=1), logging.n_items - 1)
    clicks = (rng.random(n) < ctr[positions, items]).astype(np.float64)
    return SlateLog(
        items=items,
        positions=positions,
        rewards=clicks,
        propensities=logging.probabilities[positions, items],
        n_items=logging.n_items,
        n_positions=logging.n_positions,
    )


def true_value(ctr: FloatArray, target: PositionPolicy) -> float:
    """The target's CTR per impression when positions are equally frequent: mean_k sum_a pi(a | k) ctr[k, a]."""
    _check_ctr(ctr, target)
    return float((target.probabilities * ctr).sum(axis=1).mean())


def _check_ctr(ctr: FloatArray, policy: PositionPolicy) -> None:
    if ctr.shape != policy.probabilities.shape:
        raise InvalidConfigError(f"ctr has shape {ctr.shape} but the policy {policy.probabilities.shape}")
    if not np.all((ctr >= 0) & (ctr <= 1)):
        raise InvalidConfigError("ctr values must lie in [0, 1]")
