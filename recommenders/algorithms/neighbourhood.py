"""Item-based k-nearest-neighbour collaborative filtering (cosine, scipy.sparse).

sim(i, j) = (x_i · x_j) / (‖x_i‖ ‖x_j‖ + shrink), where x_i is item i's column of the
user x item matrix (binary, or the interaction values when `use_values`). Each item keeps
only its `neighbours` most similar items N(i); then

    score(u, i) = Σ_{j ∈ history(u) ∩ N(i)} sim(i, j)

so an item scores high when it is a close neighbour of many items the user has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommenders.algorithms.base import (
    FEW_USERS,
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    TrainingData,
    sparse_times_column_blocks,
)

# Rows of the dense similarity block computed at once: bounds memory to about
# _BLOCK_CELLS float32 values (128 MB) whatever the catalogue size.
_BLOCK_CELLS = 2**25


@dataclass(frozen=True)
class ItemKnnParams:
    neighbours: int = 100
    shrink: float = 0.0
    use_values: bool = False

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ParameterError("neighbours", "must be at least 1")
        if self.shrink < 0:
            raise ParameterError("shrink", "must not be negative")


def top_k_similarities(x: sp.csr_matrix, neighbours: int, shrink: float, progress: ProgressCallback) -> sp.csr_matrix:
    """Item x item matrix whose row i holds sim(i, j) for i's `neighbours` best j (j ≠ i)."""
    n_items = x.shape[1]
    xt = sp.csr_matrix(x.T)
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    k = min(neighbours, n_items - 1)
    block = max(1, _BLOCK_CELLS // max(n_items, 1))
    rows: list[sp.csr_matrix] = []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        dots = np.asarray((xt[start:stop] @ x).toarray(), dtype=np.float32)
        sims = dots / (norms[start:stop, None] * norms[None, :] + shrink + 1e-12)
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if k <= 0:
            rows.append(sp.csr_matrix((stop - start, n_items), dtype=np.float32))
            continue
        keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(sims, keep, axis=1)
        row_index = np.repeat(np.arange(stop - start), k)
        rows.append(
            sp.csr_matrix((values.ravel(), (row_index, keep.ravel())), shape=(stop - start, n_items), dtype=np.float32)
        )
        progress(stop / n_items, f"similarities of {stop}/{n_items} items")
    result = sp.csr_matrix(sp.vstack(rows, format="csr"))
    result.eliminate_zeros()
    return result


class ItemKnnRecommender(Recommender):
    name = "item_knn"
    Params = ItemKnnParams
    params: ItemKnnParams

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        x = data.matrix(binary=not self.params.use_values)
        self.neighbours: sp.csr_matrix = top_k_similarities(x, self.params.neighbours, self.params.shrink, progress)
        self.history: sp.csr_matrix = x
        return FitReport(notes={"similarity_nonzeros": int(self.neighbours.nnz)})

    def _neighbours_t(self) -> sp.csr_matrix:
        """neighboursᵀ in CSR, built once per loaded model (a CSC view would be converted on every call)."""
        cached: sp.csr_matrix | None = self.__dict__.get("_transposed")
        if cached is None:
            cached = self.__dict__["_transposed"] = sp.csr_matrix(self.neighbours.T)
        return cached

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        # score[u, i] = Σ_j history[u, j] · neighbours[i, j] = (history @ neighboursᵀ)[u, i],
        # with neighboursᵀ made dense one block of items at a time: the work is then the
        # users' history items x the block (cache-resident), where the dense neighbours @
        # historyᵀ multiplies every stored similarity by every user (Online Retail, 1,823
        # users: 0.81 s; sparse x sparse 0.40 s; these blocks ~40 % less CPU than that).
        history = self.history[users]
        if len(users) < FEW_USERS:
            # One shop request (or a handful): densifying the whole neighbour matrix block by
            # block would cost ~150 ms per call; sparse x sparse touches only the user's items'
            # neighbours. Same sums in the same order as the blocks, so identical scores.
            return np.asarray((history @ self._neighbours_t()).toarray(), dtype=np.float32)
        return sparse_times_column_blocks(
            history, lambda start, stop: self.neighbours[start:stop].T.toarray(), self.neighbours.shape[0]
        )
