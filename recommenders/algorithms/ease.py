"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019), closed form.

With X the binary user x item matrix, G = XᵀX + λI and P = G⁻¹:

    B_ij = -P_ij / P_jj  (i ≠ j),  B_jj = 0,      score(u, ·) = x_u B

Training inverts an n_items x n_items dense matrix: O(n_items³) time and n_items² memory,
so `max_items` refuses catalogues where that would be unreasonable (20,000 items ≈ 3.2 GB).

Session-weighted Gram (`session_seconds` = τ > 0). XᵀX counts two items once for every
user who has both, however far apart in time. With τ set, each such pair counts by how
close in time the user's two interactions were:

    G_ij = Σ_u x_ui x_uj · exp(-|t_ui - t_uj| / τ)          (G_ii = Σ_u x_ui², as in XᵀX)

so items taken in one sitting (MovieLens users rate films page by page) pull each other
more than items a user met months apart. The exponential (Laplace) kernel is positive
definite, so each user's block, hence G + λI, stays positive definite and the closed form
is unchanged; scoring still uses the plain x_u. A user's repeated interactions with one
item count once, at their mean time. Building G costs Σ_u n_u² over the users' distinct
items (0.5 s on MovieLens 100K).
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
    session_seconds: float = 0.0
    max_items: int = 20_000

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ParameterError("l2", "must be positive")
        if self.session_seconds < 0:
            raise ParameterError("session_seconds", "must be 0 (plain co-occurrence) or a positive number of seconds")
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
        if self.params.session_seconds > 0:
            gram = session_gram(data, x, self.params.session_seconds)
        else:
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


def session_gram(data: TrainingData, x: sp.csr_matrix, tau: float) -> np.ndarray:
    """G_ij = Σ_u x_ui x_uj exp(-|t_ui - t_uj| / τ) as a dense float64 items x items array.

    `x` is the user x item matrix (duplicates summed: x_ui is 1, or the summed values);
    t_ui is the mean time of user u's interactions with item i. Each user adds a dense
    n_u x n_u block over their distinct items (unique indices, so fancy-index += is exact).
    """
    n_items = data.n_items
    pair = data.user_index * n_items + data.item_index
    keys, inverse, counts = np.unique(pair, return_inverse=True, return_counts=True)
    mean_time = np.bincount(inverse, weights=data.timestamp.astype(np.float64)) / counts
    users, items = keys // n_items, keys % n_items  # sorted by user, then item
    values = np.asarray(x[users, items], dtype=np.float64).ravel()
    bounds = np.searchsorted(users, np.arange(data.n_users + 1))
    gram = np.zeros((n_items, n_items), dtype=np.float64)
    for user in range(data.n_users):
        start, stop = bounds[user], bounds[user + 1]
        if start == stop:
            continue
        own, times, weight = items[start:stop], mean_time[start:stop], values[start:stop]
        kernel = np.exp(-np.abs(times[:, None] - times[None, :]) / tau)
        gram[np.ix_(own, own)] += kernel * weight[:, None] * weight[None, :]
    return gram
