"""Most-popular baseline, optionally with exponential time decay.

score(i) = Σ over training interactions e with item i of w(e), where
w(e) = 1 without decay, and w(e) = 0.5 ** ((t_max - t_e) / half_life) with decay,
t_max being the latest training timestamp. Every user gets the same ranking (minus the
items they have seen), which is also the cold-start fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommenders.algorithms.base import (
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    TrainingData,
)

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class PopularityParams:
    """`half_life_days` = 0 counts every interaction equally; > 0 halves the weight of an
    interaction for every `half_life_days` it is older than the newest one."""

    half_life_days: float = 0.0

    def __post_init__(self) -> None:
        if self.half_life_days < 0:
            raise ParameterError("half_life_days", "must be 0 (no decay) or a positive number of days")


class PopularityRecommender(Recommender):
    name = "popularity"
    Params = PopularityParams
    params: PopularityParams

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        weights = np.ones(len(data.item_index), dtype=np.float64)
        if self.params.half_life_days > 0:
            age_days = (data.timestamp.max() - data.timestamp) / SECONDS_PER_DAY
            weights = 0.5 ** (age_days / self.params.half_life_days)
        totals = np.bincount(data.item_index, weights=weights, minlength=data.n_items)
        self.item_scores: FloatArray = (totals / max(float(totals.max()), 1e-12)).astype(np.float32)
        return FitReport(notes={"items_with_interactions": int(np.count_nonzero(totals))})

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        return np.broadcast_to(self.item_scores, (len(users), len(self.item_scores))).copy()

    def cold_start_scores(self, query: str | None = None) -> FloatArray:
        """The (possibly time-decayed) popularity itself."""
        return self.item_scores.copy()
