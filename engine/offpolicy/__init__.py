"""Django-free off-policy evaluation: a candidate policy's CTR estimated from logged traffic (numpy only).

Public API: ``LoggedFeedback`` (validated rewards, logging propensities, target probabilities) and
the estimators ``ips``, ``snips``, ``doubly_robust`` (with ``RewardPredictions``), each returning an
``OffPolicyEstimate`` with a seeded percentile-bootstrap interval, the effective sample size and
coverage warnings; ``EstimatorConfig`` (confidence, resamples, seed, weight clipping, ESS warning
level); ``point_estimates`` (no interval, for outer resampling loops). Slates under the
position-wise assumption: ``SlateLog``, ``PositionPolicy``, ``evaluate_position_wise`` ->
``PositionWiseEvaluation``, with the cross-fitted reward model ``fit_item_position_ctr`` /
``cross_fitted_predictions`` (``RewardModelConfig``). Whole rankings: ``RankingFeedback`` and
``ranking_ips`` under the independent-item, cascade or no (whole-ranking) click assumption.
Synthetic logs with a known truth: ``simulate_slate_log`` / ``true_value`` (impressions),
``PlackettLuce``, ``simulate_ranking_log`` / ``ranking_true_value`` (rankings). A deterministic ranker
evaluated on a context-dependent log: ``evaluate_ranking_target``; the exploration share's randomised
ranking and its propensities: ``exploration``. Every impossible
input raises an ``OffPolicyError`` subclass.
"""

from .errors import DegenerateLogError, InvalidConfigError, InvalidLogError, InvalidPolicyError, OffPolicyError
from .estimators import (
    EstimatorConfig,
    LoggedFeedback,
    OffPolicyEstimate,
    RewardPredictions,
    bootstrap_ratios,
    cluster_index,
    doubly_robust,
    effective_sample_size,
    importance_weights,
    ips,
    point_estimates,
    snips,
)
from .rankings import RANKING_ASSUMPTIONS, RankingAssumption, RankingFeedback, ranking_ips
from .slates import (
    POSITION_WISE_ASSUMPTION,
    PositionPolicy,
    PositionWiseEvaluation,
    RewardModelConfig,
    SlateLog,
    cross_fitted_predictions,
    evaluate_position_wise,
    fit_item_position_ctr,
)
from .synthetic import (
    ClickModel,
    PlackettLuce,
    ranking_true_value,
    simulate_ranking_log,
    simulate_slate_log,
    true_value,
)
from .targets import DETERMINISTIC_TARGET, evaluate_ranking_target

__all__ = [
    "DETERMINISTIC_TARGET",
    "POSITION_WISE_ASSUMPTION",
    "RANKING_ASSUMPTIONS",
    "ClickModel",
    "DegenerateLogError",
    "EstimatorConfig",
    "InvalidConfigError",
    "InvalidLogError",
    "InvalidPolicyError",
    "LoggedFeedback",
    "OffPolicyError",
    "OffPolicyEstimate",
    "PlackettLuce",
    "PositionPolicy",
    "PositionWiseEvaluation",
    "RankingAssumption",
    "RankingFeedback",
    "RewardModelConfig",
    "RewardPredictions",
    "SlateLog",
    "bootstrap_ratios",
    "cluster_index",
    "cross_fitted_predictions",
    "doubly_robust",
    "effective_sample_size",
    "evaluate_position_wise",
    "evaluate_ranking_target",
    "fit_item_position_ctr",
    "importance_weights",
    "ips",
    "point_estimates",
    "ranking_ips",
    "ranking_true_value",
    "simulate_ranking_log",
    "simulate_slate_log",
    "snips",
    "true_value",
]
