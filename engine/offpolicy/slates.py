"""Position-aware off-policy evaluation for slates of k items, under the position-wise assumption.

Assumption ("independent item", position-wise; Li et al. 2018, "Offline Evaluation of Ranking
Policies with Click Models", their item-position model; and Saito et al. 2021, Open Bandit
Pipeline, which treats the slot as part of the context): each (item, position) impression is one
unit, and the click on it depends only on that item and that position, not on the other items of
the slate. Then the slate's CTR per impression is

    V(pi) = sum_k P(k) sum_a pi(a | k) ctr(a, k)

where pi(a | k) is the target's *marginal* probability of placing item a at position k, P(k) the
share of logged impressions at position k, and the per-unit estimators of ``estimators`` apply with
p_i = the logging policy's marginal probability of the logged item at the logged position and
pi_i = pi(a_i | k_i). It ignores interactions between slots (a strong item above can take clicks
from the one below); the cascade (Kiyohara et al. 2022) and pseudo-inverse (Swaminathan et al.
2017) estimators relax that but need whole logged slates, which the Open Bandit sample does not
have (its rows are single impressions), so they are not implemented here.

Reward model for DR (documented on every result): a per-(item, position) CTR shrunk toward its
position's CTR,

    q(a, k) = (clicks(a, k) + m ctr_k) / (impressions(a, k) + m),    ctr_k = clicks_k / impressions_k

(a Beta prior with m pseudo-impressions at the position's CTR; empirical Bayes in spirit). It is
cross-fitted (Chernozhukov et al. 2018; Kallus & Uehara 2020 for DR OPE): the units are split into
F folds, and each fold's q comes from a model fitted on the other folds, so a unit's own click never
enters its prediction (which would bias DR toward the direct method's overfit). With clusters
(``SlateLog.clusters``: a request's or a user's impressions) whole clusters go to one fold, and the
intervals resample clusters (``estimators``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._arrays import FloatArray, IntArray, as_index_vector, as_vector, frozen
from .errors import DegenerateLogError, InvalidConfigError, InvalidLogError, InvalidPolicyError
from .estimators import (
    EstimatorConfig,
    LoggedFeedback,
    OffPolicyEstimate,
    RewardPredictions,
    cluster_index,
    doubly_robust,
    ips,
    snips,
)

__all__ = [
    "PositionPolicy",
    "PositionWiseEvaluation",
    "RewardModelConfig",
    "SlateLog",
    "cross_fitted_predictions",
    "evaluate_position_wise",
    "fit_item_position_ctr",
]

POSITION_WISE_ASSUMPTION = (
    "position-wise (independent-item) model: each (item, position) impression is a unit whose click "
    "depends only on that item and position; weights use the target's marginal probability of that "
    "item at that position"
)
# Share of the target's placements on never-logged (item, position) pairs above which we warn.
_UNLOGGED_MASS_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class SlateLog:
    """Logged impressions, one row per (item, position) shown: 0-based ``items`` < ``n_items`` and
    ``positions`` < ``n_positions``, ``rewards`` (clicks), and ``propensities``: the logging policy's
    marginal probability of that item at that position. ``clusters`` (optional): one integer label per
    row; rows with the same label are dependent (one request's or one user's impressions) and are
    resampled and cross-fitted together.
    """

    items: IntArray
    positions: IntArray
    rewards: FloatArray
    propensities: FloatArray
    n_items: int
    n_positions: int
    clusters: IntArray | None = None

    def __post_init__(self) -> None:
        if self.n_items < 1 or self.n_positions < 1:
            raise InvalidLogError(f"need n_items >= 1 and n_positions >= 1, got {self.n_items}, {self.n_positions}")
        items = as_index_vector(self.items, "items", self.n_items)
        positions = as_index_vector(self.positions, "positions", self.n_positions)
        if len(items) != len(positions):
            raise InvalidLogError(f"length mismatch: {len(items)} items but {len(positions)} positions")
        # LoggedFeedback checks rewards and propensities (lengths, NaN, range) with the messages we want.
        checked = LoggedFeedback(self.rewards, self.propensities, np.zeros(len(as_vector(self.rewards, "rewards"))))
        if len(checked.rewards) != len(items):
            raise InvalidLogError(f"length mismatch: {len(items)} items but {len(checked.rewards)} rewards")
        object.__setattr__(self, "items", frozen(items))
        object.__setattr__(self, "positions", frozen(positions))
        object.__setattr__(self, "rewards", checked.rewards)
        object.__setattr__(self, "propensities", checked.propensities)
        if self.clusters is not None:
            object.__setattr__(self, "clusters", frozen(cluster_index(self.clusters, len(items))))

    @property
    def n(self) -> int:
        return len(self.items)

    def feedback(self, target_probabilities: npt.ArrayLike) -> LoggedFeedback:
        """This log's rewards, propensities and clusters with the target's probability of each logged row."""
        return LoggedFeedback(self.rewards, self.propensities, np.asarray(target_probabilities), self.clusters)

    def impressions(self, rows: IntArray | None = None) -> FloatArray:
        """Counts of logged impressions per (position, item), shape (n_positions, n_items); ``rows``: a subset."""
        return self._per_cell(np.ones(self.n), rows)

    def clicks(self, rows: IntArray | None = None) -> FloatArray:
        """Sum of rewards per (position, item), shape (n_positions, n_items); ``rows``: a subset."""
        return self._per_cell(self.rewards, rows)

    def _per_cell(self, values: FloatArray, rows: IntArray | None) -> FloatArray:
        selected = np.arange(self.n) if rows is None else rows
        cells = self.positions[selected] * self.n_items + self.items[selected]
        sums = np.bincount(cells, weights=values[selected], minlength=self.n_positions * self.n_items)
        return sums.astype(np.float64).reshape(self.n_positions, self.n_items)


@dataclass(frozen=True, eq=False)
class PositionPolicy:
    """A context-free slate policy as marginals: ``probabilities[k, a]`` = P(item a is shown at position k).

    Each row sums to 1 (every position shows exactly one item).
    """

    probabilities: FloatArray

    def __post_init__(self) -> None:
        try:
            matrix = np.asarray(self.probabilities, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidPolicyError(f"policy probabilities must be numbers: {error}") from error
        if matrix.ndim != 2 or matrix.size == 0:
            raise InvalidPolicyError(f"policy probabilities must be a (positions, items) matrix, got {matrix.shape}")
        if not np.all(np.isfinite(matrix)) or np.any(matrix < 0) or np.any(matrix > 1):
            raise InvalidPolicyError("policy probabilities must be finite and lie in [0, 1]")
        sums = matrix.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-6):
            bad = int(np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-6))[0])
            raise InvalidPolicyError(f"each position's probabilities must sum to 1; position {bad} sums to {sums[bad]}")
        object.__setattr__(self, "probabilities", frozen(matrix))

    @property
    def n_positions(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.probabilities.shape[1])

    @classmethod
    def uniform(cls, n_items: int, n_positions: int) -> PositionPolicy:
        """Every item equally likely at every position (the Open Bandit "random" policy's marginals)."""
        return cls(np.full((n_positions, n_items), 1.0 / n_items))

    @classmethod
    def from_frequencies(
        cls, items: npt.ArrayLike, positions: npt.ArrayLike, n_items: int, n_positions: int, smoothing: float = 0.0
    ) -> PositionPolicy:
        """The empirical marginals of a logged policy: (count(a, k) + s) / (count(k) + s n_items).

        For a context-free policy this is an unbiased estimate of its time-averaged marginals; it is
        itself noisy (binomial, about sqrt(pi (1 - pi) / count(k)) per cell). ``smoothing`` s > 0
        gives unseen items a little mass.
        """
        if smoothing < 0:
            raise InvalidConfigError(f"smoothing must be >= 0, got {smoothing}")
        item_idx = as_index_vector(items, "items", n_items)
        pos_idx = as_index_vector(positions, "positions", n_positions)
        if len(item_idx) != len(pos_idx):
            raise InvalidLogError(f"length mismatch: {len(item_idx)} items but {len(pos_idx)} positions")
        counts = np.bincount(pos_idx * n_items + item_idx, minlength=n_positions * n_items).reshape(
            n_positions, n_items
        )
        totals = counts.sum(axis=1, keepdims=True) + smoothing * n_items
        if np.any(totals == 0):
            empty = int(np.flatnonzero(totals[:, 0] == 0)[0])
            raise InvalidLogError(f"position {empty} has no logged impression to estimate the policy from")
        return cls((counts + smoothing) / totals)


@dataclass(frozen=True, slots=True)
class RewardModelConfig:
    """The DR reward model: ``prior_strength`` m (pseudo-impressions at the position's CTR) and
    ``folds`` for cross-fitting (>= 2), assigned at random with ``seed``.
    """

    prior_strength: float = 100.0
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.prior_strength) and self.prior_strength >= 0):
            raise InvalidConfigError(f"prior_strength must be a finite number >= 0, got {self.prior_strength}")
        if self.folds < 2:
            raise InvalidConfigError(f"cross-fitting needs at least 2 folds, got {self.folds}")

    def describe(self) -> str:
        return (
            f"per-(item, position) CTR shrunk toward the position's CTR with {self.prior_strength:g} "
            f"pseudo-impressions, cross-fitted over {self.folds} folds"
        )


@dataclass(frozen=True, slots=True)
class PositionWiseEvaluation:
    """IPS, SNIPS and DR for a slate policy, plus per-position IPS and coverage of the logs.

    ``per_position[k]`` is the IPS estimate of the CTR at position k alone (None, with a warning,
    when the logs say nothing about that slot for this target). ``unlogged_target_mass``
    is the share of the target's placements (weighted by the logged position mix) on (item, position)
    pairs with no logged impression. ``method`` states the assumption.
    """

    ips: OffPolicyEstimate
    snips: OffPolicyEstimate
    dr: OffPolicyEstimate
    per_position: tuple[OffPolicyEstimate | None, ...]
    unlogged_target_mass: float
    warnings: tuple[str, ...]
    method: str


def fit_item_position_ctr(log: SlateLog, prior_strength: float, rows: IntArray | None = None) -> FloatArray:
    """q(a, k) = (clicks(a, k) + m ctr_k) / (impressions(a, k) + m), shape (n_positions, n_items).

    ``rows`` restricts the fit to those units (cross-fitting). A position without impressions falls
    back to the overall CTR of the rows used.
    """
    impressions = log.impressions(rows)
    clicks = log.clicks(rows)
    overall = clicks.sum() / max(impressions.sum(), 1.0)
    per_position_n = impressions.sum(axis=1, keepdims=True)
    position_ctr = np.where(
        per_position_n > 0, clicks.sum(axis=1, keepdims=True) / np.maximum(per_position_n, 1.0), overall
    )
    denominator = impressions + prior_strength
    # With m = 0 an unseen cell has no estimate at all: use its position's CTR there.
    return np.where(
        denominator > 0,
        (clicks + prior_strength * position_ctr) / np.where(denominator > 0, denominator, 1.0),
        position_ctr,
    )


def cross_fitted_predictions(
    log: SlateLog, target: PositionPolicy, config: RewardModelConfig | None = None
) -> RewardPredictions:
    """q(a_i, k_i) and q_pi(k_i) = sum_a pi(a | k_i) q(a, k_i) per unit, q fitted without the unit's own fold."""
    _check_shapes(log, target)
    return cross_fit(log, lambda model, rows: (target.probabilities * model).sum(axis=1)[log.positions[rows]], config)


def cross_fit(
    log: SlateLog, under_target: Callable[[FloatArray, IntArray], FloatArray], config: RewardModelConfig | None = None
) -> RewardPredictions:
    """The cross-fitted reward model's predictions: for each fold, q = ``fit_item_position_ctr`` on the other
    folds, then q(a_i, k_i) for the held-out units and ``under_target(q, held-out rows)`` = their q_pi."""
    config = config or RewardModelConfig()
    rng = np.random.default_rng(config.seed)
    if log.clusters is None:
        fold_of = rng.permutation(log.n) % config.folds
    else:  # whole clusters per fold: a unit's own request (or user) never trains its prediction
        fold_of = (rng.permutation(int(log.clusters.max()) + 1) % config.folds)[log.clusters]
    logged = np.empty(log.n)
    expected = np.empty(log.n)
    for fold in range(config.folds):
        held_out = np.flatnonzero(fold_of == fold)
        model = fit_item_position_ctr(log, config.prior_strength, np.flatnonzero(fold_of != fold))
        logged[held_out] = model[log.positions[held_out], log.items[held_out]]
        expected[held_out] = under_target(model, held_out)
    return RewardPredictions(logged, expected, config.describe())


def evaluate_position_wise(
    log: SlateLog,
    target: PositionPolicy,
    config: EstimatorConfig | None = None,
    model_config: RewardModelConfig | None = None,
) -> PositionWiseEvaluation:
    """IPS, SNIPS and DR of the target's CTR per impression under the position-wise assumption."""
    config = config or EstimatorConfig()
    _check_shapes(log, target)
    feedback = log.feedback(target.probabilities[log.positions, log.items])
    predictions = cross_fitted_predictions(log, target, model_config)
    impressions = log.impressions()
    position_share = impressions.sum(axis=1) / log.n
    unlogged = float(np.dot(position_share, (target.probabilities * (impressions == 0)).sum(axis=1)))
    return assemble(log, feedback, predictions, config, unlogged, POSITION_WISE_ASSUMPTION)


def assemble(
    log: SlateLog,
    feedback: LoggedFeedback,
    predictions: RewardPredictions,
    config: EstimatorConfig,
    unlogged: float,
    method: str,
) -> PositionWiseEvaluation:
    """The three estimators, per-position IPS and the coverage warning, given the per-unit feedback, the
    reward model's predictions and the target's share of placements on never-logged pairs."""
    warnings: list[str] = []
    per_position = tuple(_position_ips(log, feedback, k, config, warnings) for k in range(log.n_positions))
    if unlogged > _UNLOGGED_MASS_TOLERANCE:
        warnings.append(
            f"the target puts {unlogged:.1%} of its placements on (item, position) pairs these logs never show: "
            "IPS counts no clicks there (biased downward if the logging policy can never show them), SNIPS "
            "assumes they click like the logged ones, DR sees them only through its reward model"
        )
    return PositionWiseEvaluation(
        ips=ips(feedback, config),
        snips=snips(feedback, config),
        dr=doubly_robust(feedback, predictions, config),
        per_position=per_position,
        unlogged_target_mass=unlogged,
        warnings=tuple(warnings),
        method=method,
    )


def _position_ips(
    log: SlateLog, feedback: LoggedFeedback, position: int, config: EstimatorConfig, warnings: list[str]
) -> OffPolicyEstimate | None:
    """IPS on one slot's impressions; None (and a warning) when the logs say nothing about that slot."""
    rows = log.positions == position
    if np.count_nonzero(rows) < 2:
        warnings.append(f"position {position + 1} has fewer than 2 logged impressions: no estimate for it alone")
        return None
    subset = feedback.subset(rows)
    if subset.clusters is not None and len(np.unique(subset.clusters)) < 2:
        warnings.append(f"position {position + 1} was logged in fewer than 2 clusters: no estimate for it alone")
        return None
    try:
        return ips(subset, config)
    except DegenerateLogError:
        # One slot the logs cannot speak to should not sink the estimate for the whole slate.
        warnings.append(f"the target never places a logged item at position {position + 1}: no estimate for it alone")
        return None


def _check_shapes(log: SlateLog, target: PositionPolicy) -> None:
    if (target.n_positions, target.n_items) != (log.n_positions, log.n_items):
        raise InvalidPolicyError(
            f"the target covers {target.n_positions} positions x {target.n_items} items but the log has "
            f"{log.n_positions} x {log.n_items}"
        )
