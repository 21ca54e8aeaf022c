"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019), closed form.

With X the binary user x item matrix, G = XᵀX + λI and P = G⁻¹:

    B_ij = -P_ij / P_jj  (i ≠ j),  B_jj = 0,      score(u, ·) = x_u B

Training inverts an n_items x n_items dense matrix: O(n_items³) time and n_items² memory,
so `max_items` refuses catalogues where that would be unreasonable (20,000 items ≈ 3.2 GB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg.lapack
import scipy.sparse as sp

from recommenders.algorithms.base import (
    FEW_USERS,
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    RecommenderError,
    TrainingData,
    sparse_times_column_blocks,
)


@dataclass(frozen=True)
class EaseParams:
    l2: float = 500.0
    use_values: bool = False
    max_items: int = 20_000

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ParameterError("l2", "must be positive")
        if self.max_items < 1:
            raise ParameterError("max_items", "must be at least 1")


class EaseRecommender(Recommender):
    name = "ease"
    Params = EaseParams
    params: EaseParams

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        if data.n_items > self.params.max_items:
            raise RecommenderError(
                f"ease: {data.n_items} items exceed max_items={self.params.max_items} "
                "(training inverts an items x items matrix)."
            )
        x = data.matrix(binary=not self.params.use_values)
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += self.params.l2
        progress(0.3, "inverting the item Gram matrix")
        # G is symmetric positive definite: invert through its Cholesky factor (potrf + potri),
        # cheaper than a general LU inverse; potri fills only the upper triangle.
        factor, info = scipy.linalg.lapack.dpotrf(gram, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise RecommenderError(f"ease: the regularised Gram matrix is not positive definite (l2={self.params.l2}).")
        upper, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
        p = np.triu(upper) + np.triu(upper, 1).T
        weights = -p / np.diag(p)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights: FloatArray = weights.astype(np.float32)
        self.history: sp.csr_matrix = x
        return FitReport()

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        history = self.history[users]
        if len(users) < FEW_USERS:
            # A single request: blocks would copy the whole weight matrix (54 MB on Online Retail)
            # for one row; the direct product reads only the user's items' rows (identical sums).
            return np.asarray(history @ self.weights, dtype=np.float32)
        return sparse_times_column_blocks(history, lambda start, stop: self.weights[:, start:stop], len(self.weights))
