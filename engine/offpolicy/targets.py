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
from .estimators import EstimatorConfig
from .slates import POSITION_WISE_ASSUMPTION, PositionWiseEvaluation, RewardModelConfig, SlateLog, assemble, cross_fit

__all__ = ["DETERMINISTIC_TARGET", "evaluate_ranking_target"]

DETERMINISTIC_TARGET = (
    "the candidate is deterministic: pi(item, position | request) = 1 when its trained model ranks that "
    "item at that position for the request's user (and query), else 0"
)


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
    raw = np.asarray(target_items, dtype=np.int64)
    if raw.shape != (log.n,):
        raise InvalidPolicyError(f"need one target item per logged unit ({log.n}), got shape {raw.shape}")
    shows = raw >= 0
    target = np.where(shows, raw, 0)
    as_index_vector(target, "target_items", log.n_items)
    pi = (shows & (target == log.items)).astype(np.float64)
    feedback = log.feedback(pi)
    predictions = cross_fit(
        log, lambda model, rows: np.where(shows[rows], model[log.positions[rows], target[rows]], 0.0), model_config
    )
    never_logged = (log.impressions() == 0)[log.positions, target] & shows
    unlogged = float(never_logged.sum() / max(int(shows.sum()), 1))
    return assemble(log, feedback, predictions, config, unlogged, f"{POSITION_WISE_ASSUMPTION}; {DETERMINISTIC_TARGET}")
