"""Access to the real data sets in the shared, read-only data folder (never copied here).

The folder is found relative to the repository: <repo>/../shared/data. When it is
missing the tests that need it are skipped with the reason, except under CI (the `CI`
environment variable is set), where a missing data set is a failure.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from recommenders.algorithms.base import TrainingData
from recommenders.evaluation.datasets import load_movielens_100k, load_online_retail
from tests.support import skip_unless

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def require_data(relative: str, root: Path = SHARED_DATA) -> Path:
    """The path of a shared data file or folder; skip (or fail under CI) when it is absent."""
    path = (root / relative).resolve()
    skip_unless(path.exists(), f"shared data set {relative} not found at {path}")
    return path


@lru_cache(maxsize=1)
def _movielens(path: Path) -> TrainingData:
    return load_movielens_100k(path)


@lru_cache(maxsize=1)
def _online_retail(path: Path) -> TrainingData:
    return load_online_retail(path)


def movielens() -> TrainingData:
    return _movielens(require_data("ml-100k"))


def online_retail() -> TrainingData:
    return _online_retail(require_data("online-retail/online_retail.csv.gz"))


def first_users(data: TrainingData, n_users: int) -> TrainingData:
    """The interactions of the first `n_users` user indices (catalogue unchanged).

    The user id tuple is cut to those users too, so the slice looks like a smaller data set.
    """
    keep = data.take(data.user_index < n_users)
    return TrainingData(
        user_ids=data.user_ids[:n_users],
        item_ids=data.item_ids,
        user_index=keep.user_index,
        item_index=keep.item_index,
        value=keep.value,
        timestamp=keep.timestamp,
        item_text=data.item_text,
        item_category=data.item_category,
    )


def movielens_slice() -> TrainingData:
    return first_users(movielens(), 150)


def online_retail_slice() -> TrainingData:
    """200 customers, and only the stock codes they bought (keeps EASE's inversion small)."""
    data = first_users(online_retail(), 200)
    items, item_index = np.unique(data.item_index, return_inverse=True)
    return TrainingData(
        user_ids=data.user_ids,
        item_ids=tuple(data.item_ids[j] for j in items),
        user_index=data.user_index,
        item_index=item_index.astype(np.int64),
        value=data.value,
        timestamp=data.timestamp,
        item_text=tuple(data.item_text[j] for j in items),
    )
