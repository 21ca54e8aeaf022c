from __future__ import annotations

import numpy as np

from recommenders.algorithms.base import Recommender, TrainingData
from recommenders.algorithms.factorization import AlsRecommender, BprRecommender


def two_blocks(users_per_block: int = 30, items_per_block: int = 10, seed: int = 0) -> TrainingData:
    """Users of block b interact with 60% of block b's items and nothing else."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for block in range(2):
        for u in range(users_per_block):
            chosen = rng.choice(items_per_block, size=6, replace=False)
            users += [f"b{block}u{u}"] * 6
            items += [f"b{block}i{j}" for j in chosen]
    catalogue = [f"b{b}i{j}" for b in range(2) for j in range(items_per_block)]
    return TrainingData.from_records(users, items, item_ids=catalogue)


def recommended_blocks(model: Recommender, data: TrainingData) -> set[str]:
    return {r.item_id[:2] for u in data.user_ids if u.startswith("b1") for r in model.recommend(u, k=3)}


def test_als_recommends_items_of_the_users_own_block_and_reports_its_loss() -> None:
    data = two_blocks()
    # Two factors for two blocks: more would fit each user's own items and nothing else.
    model = AlsRecommender({"factors": 2, "iterations": 8, "num_threads": 1, "regularization": 0.1})

    report = model.fit(data)

    assert recommended_blocks(model, data) == {"b1"}
    assert len(report.history["loss"]) == 8


def test_bpr_recommends_items_of_the_users_own_block() -> None:
    data = two_blocks()
    model = BprRecommender({"factors": 8, "iterations": 200, "learning_rate": 0.05, "num_threads": 1})
    model.fit(data)

    assert recommended_blocks(model, data) == {"b1"}


def test_training_reports_progress_up_to_done() -> None:
    seen: list[float] = []
    AlsRecommender({"factors": 2, "iterations": 4, "num_threads": 1}).fit(two_blocks(), lambda f, _: seen.append(f))

    assert seen == [0.25, 0.5, 0.75, 1.0]
