"""Train/test splits of `TrainingData` for offline evaluation.

Every split returns `TrainingData` that share the input's `user_ids` and `item_ids` tuples,
so a user or item index means the same thing in train and test. A user whose rows all
land in test is still in the id tuples, with no training history: recommenders treat them
as cold-start.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recommenders.algorithms.base import IntArray, RecommenderError, TrainingData


def _user_groups(data: TrainingData) -> tuple[IntArray, IntArray]:
    """Row positions grouped by user, keeping the original row order inside each user
    (stable sort), and the start offset of each user's group (length n_users + 1)."""
    order = np.argsort(data.user_index, kind="stable").astype(np.int64)
    starts = np.searchsorted(data.user_index[order], np.arange(data.n_users + 1)).astype(np.int64)
    return order, starts


def stratified_split(data: TrainingData, ratio: float = 0.75, seed: int = 42) -> tuple[TrainingData, TrainingData]:
    """Per-user random split, with Microsoft Recommenders' `python_stratified_split` semantics.

    For each user, take their rows in the original order, shuffle them with
    `numpy.random.RandomState(seed).permutation` (what pandas' `sample(frac=1,
    random_state=seed)` does inside each group), and put the first round(ratio · n_u) in
    train (Python/numpy rounding, half to even, as `np.split` at `round(x * len)` does there).
    """
    if not 0.0 < ratio < 1.0:
        raise RecommenderError(f"ratio must lie strictly between 0 and 1, got {ratio}.")
    order, starts = _user_groups(data)
    in_train = np.zeros(len(data.user_index), dtype=bool)
    for user in range(data.n_users):
        rows = order[starts[user] : starts[user + 1]]
        if len(rows) == 0:
            continue
        shuffled = rows[np.random.RandomState(seed).permutation(len(rows))]
        in_train[shuffled[: round(ratio * len(rows))]] = True
    return data.take(in_train), data.take(~in_train)


def temporal_split(
    data: TrainingData, *, test_fraction: float = 0.2, cutoff: int | None = None
) -> tuple[TrainingData, TrainingData]:
    """Global time cut-off: rows with timestamp ≥ cutoff are test, the rest train.

    Without an explicit `cutoff` (epoch seconds), it is placed so that the last
    `test_fraction` of the time span (t_min … t_max) is test.
    """
    if cutoff is None:
        if not 0.0 < test_fraction < 1.0:
            raise RecommenderError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
        t_min, t_max = int(data.timestamp.min()), int(data.timestamp.max())
        cutoff = int(np.ceil(t_max - test_fraction * (t_max - t_min)))
    is_test = data.timestamp >= cutoff
    return data.take(~is_test), data.take(is_test)


def leave_last_out(data: TrainingData, n: int = 1) -> tuple[TrainingData, TrainingData]:
    """Per user, the `n` latest rows (ties: later row first) are test.

    Users with n rows or fewer stay entirely in train (nothing would be left to learn from).
    """
    if n < 1:
        raise RecommenderError(f"n must be at least 1, got {n}.")
    rows = np.arange(len(data.user_index))
    # Sort by user, then time, then row: the last n positions of each group are the latest.
    order = np.lexsort((rows, data.timestamp, data.user_index))
    counts = np.bincount(data.user_index, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)))
    position = np.arange(len(order)) - starts[data.user_index[order]]
    size = counts[data.user_index[order]]
    is_test_sorted = (size > n) & (position >= size - n)
    is_test = np.zeros(len(order), dtype=bool)
    is_test[order] = is_test_sorted
    return data.take(~is_test), data.take(is_test)


def k_fold(data: TrainingData, k: int = 5, seed: int = 42) -> Iterator[tuple[TrainingData, TrainingData]]:
    """k (train, test) pairs; every row is test exactly once.

    Folds are stratified by user: each user's rows are shuffled and dealt round-robin
    from a random starting fold, so every user with ≥ k rows appears in every test fold.
    """
    if k < 2:
        raise RecommenderError(f"k must be at least 2, got {k}.")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(data.user_index))
    order = np.lexsort((rng.random(len(rows)), data.user_index))
    counts = np.bincount(data.user_index, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)))
    position = np.arange(len(order)) - starts[data.user_index[order]]
    offset = rng.integers(0, k, size=data.n_users)
    fold = np.empty(len(rows), dtype=np.int64)
    fold[order] = (position + offset[data.user_index[order]]) % k
    for f in range(k):
        yield data.take(fold != f), data.take(fold == f)
