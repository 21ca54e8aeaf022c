from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommenders.algorithms.base import TrainingData
from recommenders.evaluation.splits import k_fold, leave_last_out, stratified_split, temporal_split


def interactions(sizes: list[int]) -> TrainingData:
    """User u<n> has sizes[n] rows on items it<n>_<row>, at times 0, 10, 20, ... (rows interleaved)."""
    users, items, times = [], [], []
    for row in range(max(sizes)):
        for user, size in enumerate(sizes):
            if row < size:
                users.append(f"u{user}")
                items.append(f"it{user}_{row}")
                times.append(10 * row)
    return TrainingData.from_records(users, items, timestamps=times)


def rows_of(part: TrainingData) -> set[tuple[int, int]]:
    return set(zip(part.user_index.tolist(), part.item_index.tolist(), strict=True))


def test_stratified_split_reproduces_the_pandas_group_sample_semantics() -> None:
    data = interactions([1, 2, 3, 4, 6, 10, 13])
    frame = pd.DataFrame({"user": data.user_index, "item": data.item_index})

    train, test = stratified_split(data, 0.75, seed=42)

    # Microsoft Recommenders: per user, sample(frac=1, random_state=seed), then the first
    # round(0.75 * n) rows train (np.split at round(x * len)).
    expected = set()
    for _, group in frame.groupby("user"):
        shuffled = group.sample(frac=1, random_state=42)
        cut = round(0.75 * len(group))
        expected |= set(zip(shuffled["user"][:cut], shuffled["item"][:cut], strict=True))
    assert rows_of(train) == expected
    assert rows_of(test) == rows_of(data) - expected


def test_stratified_split_keeps_the_id_tuples_and_the_per_user_ratio() -> None:
    data = interactions([4, 8, 2])

    train, test = stratified_split(data, 0.75, seed=1)

    assert train.user_ids == test.user_ids == data.user_ids
    assert train.item_ids == test.item_ids == data.item_ids
    # round(0.75 * 2) = round(1.5) = 2 (half to even), as in the reference implementation.
    assert np.bincount(train.user_index, minlength=3).tolist() == [3, 6, 2]


def test_temporal_split_by_fraction_of_the_time_span() -> None:
    data = interactions([5, 3])  # times 0..40 and 0..20

    train, test = temporal_split(data, test_fraction=0.25)

    assert sorted(test.timestamp.tolist()) == [30, 40]
    assert len(train.value) == 6


def test_temporal_split_with_an_explicit_cutoff() -> None:
    train, test = temporal_split(interactions([5, 3]), cutoff=20)

    assert sorted(test.timestamp.tolist()) == [20, 20, 30, 40]
    assert train.timestamp.max() == 10


def test_leave_last_out_takes_each_users_latest_and_spares_short_histories() -> None:
    data = interactions([3, 1, 2])

    train, test = leave_last_out(data, n=1)

    assert rows_of(test) == {(0, data.item_ids.index("it0_2")), (2, data.item_ids.index("it2_1"))}
    assert np.bincount(train.user_index, minlength=3).tolist() == [2, 1, 1]


def test_k_fold_puts_every_row_in_exactly_one_test_fold_spread_over_users() -> None:
    data = interactions([6, 9, 3])

    folds = list(k_fold(data, k=3, seed=0))

    tests = [rows_of(test) for _, test in folds]
    assert set().union(*tests) == rows_of(data)
    assert sum(len(t) for t in tests) == len(data.value)
    for train, test in folds:
        assert rows_of(train) == rows_of(data) - rows_of(test)
        assert sorted(np.bincount(test.user_index, minlength=3).tolist()) == [1, 2, 3]


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_stratified_split_refuses_ratios_outside_the_open_unit_interval(ratio: float) -> None:
    with pytest.raises(Exception, match="ratio must lie strictly between 0 and 1"):
        stratified_split(interactions([2]), ratio)
