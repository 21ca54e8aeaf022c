"""Django-free bandit allocation: Thompson-sampling traffic weights and the analysis they require.

Public API. Allocation (``thompson.py``): ``ArmCounts`` (cumulative trials/successes per arm, as
the rollups hold them, and their design effect: ``ctr_design_effect`` for CTR), ``ThompsonConfig``
(floor, burn-in, prior, Monte Carlo draws and seed),
``probability_best`` (exact for 2 arms, seeded Monte Carlo beyond), ``floor_weights`` (minimum
share by water-filling), ``thompson_update`` -> ``WeightUpdate`` (period, weights, probabilities,
``PosteriorSummary`` per arm, burn-in flag; JSON round trip), ``BanditState`` (the history,
``advance``, ``weights_series`` for charts), ``allocation_for`` / ``served_weights`` (the bucketing
allocation for NEW users and the shares it really serves). Analysis (``analysis.py``):
``PeriodData`` (one cohort: served weights, users and successes per arm; ``cohort_data`` builds it
from a ``WeightUpdate``), ``stratified_comparison``
-> ``ArmComparison`` (period-weighted difference and lift with intervals), ``bandit_srm`` ->
``BanditSrmResult`` (SRM against the weights served per period), ``pooled_counts`` (the naive
pooling, for contrast only). Every impossible input raises a ``BanditError`` subclass.
"""

from .analysis import (
    ArmComparison,
    BanditSrmResult,
    PeriodData,
    bandit_srm,
    cohort_data,
    pooled_counts,
    stratified_comparison,
)
from .errors import BanditError, DegenerateBanditDataError, InvalidBanditConfigError, InvalidBanditDataError
from .thompson import (
    ArmCounts,
    BanditState,
    PosteriorSummary,
    ThompsonConfig,
    WeightUpdate,
    allocation_for,
    ctr_design_effect,
    floor_weights,
    probability_best,
    served_weights,
    thompson_update,
)

__all__ = [
    "ArmComparison",
    "ArmCounts",
    "BanditError",
    "BanditSrmResult",
    "BanditState",
    "DegenerateBanditDataError",
    "InvalidBanditConfigError",
    "InvalidBanditDataError",
    "PeriodData",
    "PosteriorSummary",
    "ThompsonConfig",
    "WeightUpdate",
    "allocation_for",
    "bandit_srm",
    "cohort_data",
    "ctr_design_effect",
    "floor_weights",
    "pooled_counts",
    "probability_best",
    "served_weights",
    "stratified_comparison",
    "thompson_update",
]
