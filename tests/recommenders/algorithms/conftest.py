from __future__ import annotations

from typing import Any

import pytest

from recommenders.algorithms.base import TrainingData
from tests.recommenders.algorithms.shared_data import movielens_slice, online_retail_slice

# Small settings so that the whole suite stays fast on a shared machine.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "popularity": {"half_life_days": 30.0},
    "content_tfidf": {},
    "item_knn": {"neighbours": 20},
    "ease": {"l2": 100.0},
    "als": {"factors": 8, "iterations": 3, "num_threads": 1},
    "bpr": {"factors": 8, "iterations": 5, "num_threads": 1},
    "hybrid": {
        "components": [
            {"algorithm": "ease", "params": {"l2": 100.0}, "weight": 0.7},
            {"algorithm": "content_tfidf", "weight": 0.3},
        ]
    },
}


@pytest.fixture(scope="session")
def ml_slice() -> TrainingData:
    return movielens_slice()


@pytest.fixture(scope="session")
def retail_slice() -> TrainingData:
    return online_retail_slice()


def toy_data() -> TrainingData:
    """Four users, five items with text: u1 and u2 like fruit, u3 and u4 like tools."""
    return TrainingData.from_records(
        users=["u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4"],
        items=["apple", "pear", "apple", "pear", "plum", "hammer", "saw", "hammer"],
        timestamps=[0, 0, 0, 0, 0, 0, 0, 0],
        item_ids=["apple", "pear", "plum", "hammer", "saw"],
        item_text={
            "apple": "red apple fruit",
            "pear": "green pear fruit",
            "plum": "purple plum fruit",
            "hammer": "steel hammer tool",
            "saw": "steel saw tool",
        },
        item_category={"apple": "fruit", "pear": "fruit", "plum": "fruit", "hammer": "tools", "saw": "tools"},
    )
