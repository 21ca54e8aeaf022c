"""Synthetic logs with a known truth, for the tests and the validity bench.

Impression logs (``simulate_slate_log``): each impression picks a position uniformly, an item from
the logging policy's marginal at that position, and a click with probability ctr[k, a], exactly the
position-wise model of ``slates``, so any position policy's true CTR is known in closed form.

Ranking logs (``simulate_ranking_log``): whole rankings drawn by a Plackett-Luce policy (Plackett
1975, Luce 1959: the next item is a with probability s_a / sum of the remaining scores), clicked
under an independent or a cascade click model (Craswell et al. 2008: the user scans top-down,
clicks item a with probability attractiveness[a], and stops after the first click). Probabilities
are computed exactly by enumerating the rankings, so keep to a handful of items.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._arrays import FloatArray, IntArray, as_vector, frozen
from .errors import InvalidConfigError
from .rankings import RankingFeedback
from .slates import PositionPolicy, SlateLog

__all__ = [
    "ClickModel",
    "PlackettLuce",
    "ranking_true_value",
    "simulate_ranking_log",
    "simulate_slate_log",
    "true_value",
]

ClickModel = Literal["independent", "cascade"]
# Enumerating rankings is exact but factorial: 9 items x 9 slots is already 362,880 rankings.
_MAX_ENUMERATED_ITEMS = 9


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


@dataclass(frozen=True, eq=False)
class PlackettLuce:
    """A ranking policy over len(scores) items filling ``slots`` slots without replacement."""

    scores: FloatArray
    slots: int

    def __post_init__(self) -> None:
        scores = as_vector(self.scores, "scores")
        if np.any(scores <= 0):
            raise InvalidConfigError("Plackett-Luce scores must be > 0")
        if not 1 <= self.slots <= len(scores) <= _MAX_ENUMERATED_ITEMS:
            raise InvalidConfigError(
                f"need 1 <= slots <= items <= {_MAX_ENUMERATED_ITEMS}, got {self.slots} slots, {len(scores)} items"
            )
        object.__setattr__(self, "scores", frozen(scores))

    def sample(self, n: int, rng: np.random.Generator) -> IntArray:
        """n rankings, shape (n, slots), by the Gumbel-top-k trick (Yellott 1977): argsort of log s + Gumbel noise."""
        keys = np.log(self.scores) + rng.gumbel(size=(n, len(self.scores)))
        return np.argsort(-keys, axis=1)[:, : self.slots].astype(np.int64)

    def prefix_probabilities(self, rankings: IntArray) -> FloatArray:
        """P(a_1..a_k) = prod_{j<=k} s_{a_j} / (S - sum_{l<j} s_{a_l}), shape (n, slots)."""
        chosen = self.scores[rankings]
        taken_before = np.cumsum(chosen, axis=1) - chosen
        return np.cumprod(chosen / (self.scores.sum() - taken_before), axis=1)

    def enumerate(self) -> tuple[IntArray, FloatArray]:
        """Every possible ranking (M, slots) and its probability (M,)."""
        rankings = np.array(list(itertools.permutations(range(len(self.scores)), self.slots)), dtype=np.int64)
        return rankings, self.prefix_probabilities(rankings)[:, -1]

    def marginals(self) -> FloatArray:
        """P(item a at slot k), shape (slots, items), summed over the enumerated rankings."""
        rankings, probabilities = self.enumerate()
        out = np.zeros((self.slots, len(self.scores)))
        for slot in range(self.slots):
            np.add.at(out[slot], rankings[:, slot], probabilities)
        return out


def _expected_clicks(rankings: IntArray, attractiveness: FloatArray, click_model: ClickModel) -> FloatArray:
    """Expected clicks per slot, shape of ``rankings``: a_k, or a_k prod_{j<k} (1 - a_j) in the cascade."""
    attract = attractiveness[rankings]
    if click_model == "independent":
        return attract
    # P(no click above slot k) = prod_{j<k} (1 - a_j): an exclusive cumulative product.
    no_click_above = np.cumprod(np.hstack([np.ones((len(attract), 1)), 1 - attract[:, :-1]]), axis=1)
    return attract * no_click_above


def ranking_true_value(target: PlackettLuce, attractiveness: FloatArray, click_model: ClickModel) -> float:
    """The target's exact CTR per slot impression: sum over rankings of P(ranking) E[clicks | ranking] / slots."""
    _check_attractiveness(attractiveness, target)
    rankings, probabilities = target.enumerate()
    per_ranking = _expected_clicks(rankings, attractiveness, click_model).sum(axis=1)
    return float(np.dot(probabilities, per_ranking) / target.slots)


def simulate_ranking_log(
    logging: PlackettLuce,
    target: PlackettLuce,
    attractiveness: FloatArray,
    click_model: ClickModel,
    n: int,
    rng: np.random.Generator,
) -> RankingFeedback:
    """n rankings logged by ``logging`` with clicks from ``click_model``, and both policies' probabilities."""
    _check_attractiveness(attractiveness, logging)
    if (target.slots, len(target.scores)) != (logging.slots, len(logging.scores)):
        raise InvalidConfigError("logging and target must rank the same items into the same number of slots")
    rankings = logging.sample(n, rng)
    would_click = rng.random(rankings.shape) < attractiveness[rankings]
    if click_model == "cascade":
        # Only the first slot the user would click is clicked: the user leaves after it.
        first = np.argmax(would_click, axis=1)
        clicks = np.zeros(rankings.shape)
        clicks[np.arange(n), first] = would_click[np.arange(n), first]
    else:
        clicks = would_click.astype(np.float64)
    slot_index = np.arange(logging.slots)
    return RankingFeedback(
        rewards=clicks,
        logging_marginals=logging.marginals()[slot_index, rankings],
        target_marginals=target.marginals()[slot_index, rankings],
        logging_prefixes=logging.prefix_probabilities(rankings),
        target_prefixes=target.prefix_probabilities(rankings),
    )


def _check_attractiveness(attractiveness: FloatArray, policy: PlackettLuce) -> None:
    if attractiveness.shape != policy.scores.shape or not np.all((attractiveness >= 0) & (attractiveness <= 1)):
        raise InvalidConfigError(
            f"attractiveness needs one value in [0, 1] per item ({len(policy.scores)} items), "
            f"got shape {attractiveness.shape}"
        )
