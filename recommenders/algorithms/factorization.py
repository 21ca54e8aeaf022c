"""Matrix factorisation for implicit feedback with the `implicit` package (0.7, CPU).

* ALS (Hu, Koren & Volinsky 2008): minimise Σ_ui c_ui (p_ui - x_uᵀ y_i)² + λ(‖X‖² + ‖Y‖²)
  with p_ui = 1 for observed pairs, c_ui = 1 + alpha·r_ui (r_ui = 1, or the interaction value
  when `use_values`), solved by alternating least squares (conjugate gradient).
* BPR (Rendle et al. 2009): maximise Σ_(u,i,j) ln sigmoid(x_uᵀ y_i - x_uᵀ y_j) - λ‖Θ‖² by SGD over
  observed i and sampled unobserved j; implicit adds an item bias as an extra factor.

score(u, i) = x_uᵀ y_i. Only the factor arrays are kept, so artifacts pickle without
`implicit` objects. `num_threads` = 0 lets implicit use every core; set it when sharing
a machine. `implicit` is imported inside `_fit` (≈0.6 s) so that importing this module
stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommenders.algorithms.base import (
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    TrainingData,
)


def _check_common(factors: int, iterations: int, regularization: float, num_threads: int) -> None:
    if factors < 1:
        raise ParameterError("factors", "must be at least 1")
    if iterations < 1:
        raise ParameterError("iterations", "must be at least 1")
    if regularization < 0:
        raise ParameterError("regularization", "must not be negative")
    if num_threads < 0:
        raise ParameterError("num_threads", "must be 0 (all cores) or a positive thread count")


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 1.0
    iterations: int = 15
    use_values: bool = False
    num_threads: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        _check_common(self.factors, self.iterations, self.regularization, self.num_threads)
        if self.alpha <= 0:
            raise ParameterError("alpha", "must be positive")


@dataclass(frozen=True)
class BprParams:
    factors: int = 64
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    num_threads: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        _check_common(self.factors, self.iterations, self.regularization, self.num_threads)
        if self.learning_rate <= 0:
            raise ParameterError("learning_rate", "must be positive")


class _FactorModel(Recommender):
    """Shared scoring: dot products of stored user and item factors."""

    user_factors: FloatArray
    item_factors: FloatArray

    def _keep_factors(self, model: Any) -> None:
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)


def _callback(progress: ProgressCallback, iterations: int, history: list[float]) -> Any:
    def report(iteration: int, elapsed: float, *values: Any) -> None:
        # ALS passes the training loss (when asked for it); BPR passes (correct, skipped).
        if values and isinstance(values[0], float):
            history.append(float(values[0]))
        progress((iteration + 1) / iterations, f"iteration {iteration + 1}/{iterations}")

    return report


class AlsRecommender(_FactorModel):
    name = "als"
    Params = AlsParams
    params: AlsParams

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        p = self.params
        loss: list[float] = []
        user_items: sp.csr_matrix = data.matrix(binary=not p.use_values)
        # implicit parallelises over users itself; a multithreaded BLAS underneath it
        # oversubscribes the cores (implicit warns about it, when the model is built). Limit
        # BLAS for this block only, as implicit recommends, not through environment variables.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=p.factors,
                regularization=p.regularization,
                alpha=p.alpha,
                iterations=p.iterations,
                calculate_training_loss=True,
                num_threads=p.num_threads,
                random_state=p.seed,
            )
            model.fit(user_items, show_progress=False, callback=_callback(progress, p.iterations, loss))
        self._keep_factors(model)
        return FitReport(history={"loss": loss})


class BprRecommender(_FactorModel):
    name = "bpr"
    Params = BprParams
    params: BprParams

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        model = BayesianPersonalizedRanking(
            factors=p.factors,
            learning_rate=p.learning_rate,
            regularization=p.regularization,
            iterations=p.iterations,
            num_threads=p.num_threads,
            random_state=p.seed,
        )
        model.fit(data.matrix(binary=True), show_progress=False, callback=_callback(progress, p.iterations, []))
        self._keep_factors(model)
        return FitReport()
