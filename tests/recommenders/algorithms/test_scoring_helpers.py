"""Shared scoring helpers: `top_k` (best first, ties by lower index, also at the cut-off) and
`sparse_times_column_blocks`."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommenders.algorithms import registry
from recommenders.algorithms.base import TrainingData, sparse_times_column_blocks, top_k


def stable_reference(scores: np.ndarray, k: int) -> np.ndarray:
    """Best first, ties by lower index: a stable sort of the negated scores."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_hand_checked_rows_with_and_without_ties_at_the_cut_off() -> None:
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.7, 0.3],  # no ties
            [0.5, 0.2, 0.5, 0.9, 0.5],  # three items tie for the 2nd place, one seat left after 0.9
            [-np.inf, 0.4, -np.inf, -np.inf, -np.inf],  # fewer finite scores than k
            [0.8, 0.8, 0.1, 0.8, 0.2],  # a tie wholly inside the top 2... and one left outside
        ],
        dtype=np.float32,
    )

    top = top_k(scores, 2)

    assert top.tolist() == [[1, 3], [3, 0], [1, 0], [0, 1]]


def test_matches_a_stable_sort_on_many_tied_random_rows() -> None:
    rng = np.random.default_rng(3)
    # Few distinct values, so most rows have ties straddling the k-th place, some do not.
    scores = rng.integers(0, 6, size=(400, 50)).astype(np.float32)
    scores[::7] = rng.random((len(scores[::7]), 50), dtype=np.float32)
    scores[::11, ::3] = -np.inf

    for k in (1, 5, 10, 49, 50, 60):
        np.testing.assert_array_equal(top_k(scores, k), stable_reference(scores, k))


def test_column_blocks_give_the_plain_sparse_product() -> None:
    rows = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 1]], dtype=np.float32))
    m = np.arange(21, dtype=np.float32).reshape(3, 7)
    requested: list[tuple[int, int]] = []

    def block(start: int, stop: int) -> np.ndarray:
        requested.append((start, stop))
        return m[:, start:stop]

    product = sparse_times_column_blocks(rows, block, 7, width=3)

    np.testing.assert_array_equal(product, rows.toarray() @ m)
    assert product.dtype == np.float32
    assert requested == [(0, 3), (3, 6), (6, 7)]


@pytest.mark.parametrize("algorithm", ["ease", "item_knn"])
def test_one_user_scores_exactly_as_in_a_batch(algorithm: str, retail_slice: TrainingData) -> None:
    # Serving scores one user directly, evaluation and simulation score batches in column
    # blocks: the two paths must give identical scores, so lists and tie order agree.
    model = registry.get(algorithm)({})
    model.fit(retail_slice)
    users = np.arange(min(100, retail_slice.n_users))
    batch = model._score(users)
    for user in users[:10]:
        assert np.array_equal(model._score(np.array([user]))[0], batch[user])
