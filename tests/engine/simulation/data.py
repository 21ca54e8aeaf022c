"""Data for the simulator tests: a hand-made toy shop and a slice of the bundled Online Retail file."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.simulation import DEFAULT_SHRINK, Shoppers, default_cutoff
from recommenders.algorithms.base import IntArray, TrainingData, top_k
from recommenders.algorithms.popularity import PopularityRecommender
from recommenders.evaluation.datasets import load_online_retail
from recommenders.evaluation.splits import temporal_split

ONLINE_RETAIL = Path(__file__).resolve().parents[3] / "data" / "online-retail" / "online_retail.csv.gz"
TOY_CUTOFF = 100


def toy_data() -> TrainingData:
    """Users a, b, c, d; fruit (apple, pear, plum) and tools (drill, hammer, saw); cut-off at t = 100.

    a: history apple, pear, hammer; future plum, saw, saw  -> eligible
    b: history saw only                                    -> not eligible (no future)
    c: future apple only                                   -> not eligible (no history)
    d: history drill, hammer; future apple                 -> eligible
    e: future pear, plum, hammer                           -> not eligible (no history), but a future buyer

    Held-out buyers (a, c, d, e): apple 2, plum 2, hammer 1, pear 1, saw 1; bought together after the
    cut-off: plum + saw (a), pear + plum, pear + hammer, plum + hammer (e).
    """
    rows = [
        ("a", "apple", 10),
        ("a", "pear", 20),
        ("a", "apple", 25),
        ("a", "hammer", 30),
        ("a", "plum", 150),
        ("a", "saw", 160),
        ("a", "saw", 170),
        ("b", "saw", 10),
        ("c", "apple", 120),
        ("d", "drill", 50),
        ("d", "hammer", 60),
        ("d", "apple", 110),
        ("e", "pear", 130),
        ("e", "plum", 140),
        ("e", "hammer", 150),
    ]
    items = ["apple", "drill", "hammer", "pear", "plum", "saw"]
    return TrainingData.from_records(
        users=[r[0] for r in rows],
        items=[r[1] for r in rows],
        timestamps=[r[2] for r in rows],
        item_ids=items,
        item_text={
            "apple": "RED APPLE",
            "drill": "CORDLESS DRILL",
            "hammer": "STEEL HAMMER",
            "pear": "GREEN PEAR",
            "plum": "SWEET PURPLE PLUM",
            "saw": "STEEL SAW",
        },
        item_category={
            "apple": "fruit",
            "pear": "fruit",
            "plum": "fruit",
            "drill": "tools",
            "hammer": "tools",
            "saw": "tools",
        },
    )


def toy_shoppers(prices: list[float] | None = None, shrink: float = DEFAULT_SHRINK) -> Shoppers:
    return Shoppers.build(toy_data(), cutoff=TOY_CUTOFF, item_price=prices, shrink=shrink)


@lru_cache(maxsize=1)
def online_retail() -> TrainingData:
    return load_online_retail(ONLINE_RETAIL)


@lru_cache(maxsize=1)
def retail_slice(n_users: int = 800) -> TrainingData:
    """The first `n_users` customers (all items kept, so indices match the full catalogue)."""
    full = online_retail()
    keep = full.take(full.user_index < n_users)
    return TrainingData(
        user_ids=full.user_ids[:n_users],
        item_ids=full.item_ids,
        user_index=keep.user_index,
        item_index=keep.item_index,
        value=keep.value,
        timestamp=keep.timestamp,
        item_text=full.item_text,
    )


@lru_cache(maxsize=1)
def retail_shoppers() -> Shoppers:
    data = retail_slice()
    return Shoppers.build(data, cutoff=default_cutoff(data, 0.2))


@lru_cache(maxsize=1)
def retail_popularity() -> PopularityRecommender:
    """Popularity trained on the history only (what a variant would see)."""
    data = retail_slice()
    train, _ = temporal_split(data, cutoff=retail_shoppers().cutoff)
    model = PopularityRecommender()
    model.fit(train)
    return model


def popular_lists(arm: int, users: IntArray, queries: Sequence[str | None], k: int = 10) -> IntArray:
    """Top-k popular items, the user's history masked (as the Django layer will serve them)."""
    model = retail_popularity()
    scores = model.score_users(users)
    rows, cols = model.seen[users].nonzero()
    scores[rows, cols] = -np.inf
    return top_k(scores, k)
