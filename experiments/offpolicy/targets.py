"""Position-wise evaluation of a deterministic, context-dependent target: a trained recommender's lists.

The platform's candidate is a trained model: for each logged request x it ranks one list
t(x) = (t_1(x), ..., t_k(x)), so its marginal probability of item a at position k is

    pi(a, k | x) = 1[t_k(x) = a]

and each logged impression i (request x_i, item a_i, position k_i, click r_i, logging
propensity p_i) gets the weight w_i = 1[t_{k_i}(x_i) = a_i] / p_i. IPS, SNIPS and DR are those of
``estimators`` under the position-wise (independent-item) assumption of ``slates``. The DR reward
model is the cross-fitted per-(item, position) CTR of ``slates.fit_item_position_ctr``; its
direct-method term is q_pi(x_i) = q(t_{k_i}(x_i), k_i), the model's CTR for what the target shows
at that slot of that request (0 when the target shows nothing there).

Coverage: the share of the target's placements (one per logged impression's request and slot)
whose (item, position) pair never appears in the logs. Such placements can have had no logging
probability at all (an item outside the logging arm's exploration pool), so IPS counts no click
for them; it is reported, with a warning, instead of being hidden.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._arrays import as_index_vector
from .errors import InvalidPolicyError
from .estimators import EstimatorConfig, LoggedFeedback, RewardPredictions, doubly_robust, ips, snips
from .slates import (
    POSITION_WISE_ASSUMPTION,
    PositionWiseEvaluation,
    RewardModelConfig,
    SlateLog,
    _position_ips,
    fit_item_position_ctr,
)

__all__ = ["DETERMINISTIC_TARGET", "evaluate_ranking_target"]

DETERMINISTIC_TARGET = (
    "the candidate is deterministic: pi(item, position | request) = 1 when its trained model ranks that "
    "item at that position for the request's user (and query), else 0"
)
_UNLOGGED_MASS_TOLERANCE = 1e-9


def evaluate_ranking_target(
    log: SlateLog,
    target_items: npt.ArrayLike,
    config: EstimatorConfig | None = None,
    model_config: RewardModelConfig | None = None,
) -> PositionWiseEvaluation:
    """IPS, SNIPS and DR of a deterministic ranker's CTR per impression from a position-wise log.

    ``target_items[i]`` is the item index the target places at ``log.positions[i]`` in unit i's
    request, or -1 when its list is shorter there.
    """
    config = config or EstimatorConfig()
    model_config = model_config or RewardModelConfig()
    raw = np.asarray(target_items, dtype=np.int64)
    if raw.shape != (log.n,):
        raise InvalidPolicyError(f"need one target item per logged unit ({log.n}), got shape {raw.shape}")
    shows = raw >= 0
    target = np.where(shows, raw, 0)
    as_index_vector(target, "target_items", log.n_items)
    pi = (shows & (target == log.items)).astype(np.float64)
    feedback = LoggedFeedback(log.rewards, log.propensities, pi)
    rng = np.random.default_rng(model_config.seed)
    fold_of = rng.permutation(log.n) % model_config.folds
    logged = np.empty(log.n)
    under_target = np.empty(log.n)
    for fold in range(model_config.folds):
        held_out = np.flatnonzero(fold_of == fold)
        model = fit_item_position_ctr(log, model_config.prior_strength, np.flatnonzero(fold_of != fold))
        positions = log.positions[held_out]
        logged[held_out] = model[positions, log.items[held_out]]
        under_target[held_out] = np.where(shows[held_out], model[positions, target[held_out]], 0.0)
    predictions = RewardPredictions(logged, under_target, model_config.describe())
    warnings: list[str] = []
    per_position = tuple(_position_ips(log, feedback, k, config, warnings) for k in range(log.n_positions))
    never_logged = (log.impressions() == 0)[log.positions, target] & shows
    unlogged = float(never_logged.sum() / max(int(shows.sum()), 1))
    if unlogged > _UNLOGGED_MASS_TOLERANCE:
        warnings.append(
            f"{unlogged:.1%} of the candidate's placements are (item, position) pairs these logs never show: "
            "IPS counts no clicks there (biased downward when the logging policy could not show them), SNIPS "
            "assumes they click like the logged ones, DR sees them only through its reward model"
        )
    return PositionWiseEvaluation(
        ips=ips(feedback, config),
        snips=snips(feedback, config),
        dr=doubly_robust(feedback, predictions, config),
        per_position=per_position,
        unlogged_target_mass=unlogged,
        warnings=tuple(warnings),
        method=f"{POSITION_WISE_ASSUMPTION}; {DETERMINISTIC_TARGET}",
    )
