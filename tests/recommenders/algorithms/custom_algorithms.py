"""Classes that the registry tests register by dotted path."""

from __future__ import annotations

import numpy as np

from recommenders.algorithms.base import FitReport, FloatArray, IntArray, ProgressCallback, Recommender, TrainingData


class ReverseIndexRecommender(Recommender):
    """Scores item j as j: a complete, if silly, algorithm."""

    name = "test_reverse_index"

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        self.n_items = data.n_items
        return FitReport()

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        return np.tile(np.arange(self.n_items, dtype=np.float32), (len(users), 1))


class NamelessRecommender(ReverseIndexRecommender):
    name = ""


class PopularityImpostor(ReverseIndexRecommender):
    name = "popularity"


class NotARecommender:
    name = "not_a_recommender"

    def fit(self, data: TrainingData) -> None: ...


class MissingScoreRecommender(Recommender):  # type: ignore[misc]
    name = "test_missing_score"

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        return FitReport()


class PlainParamsRecommender(ReverseIndexRecommender):
    name = "test_plain_params"

    class Params:
        factors = 3
