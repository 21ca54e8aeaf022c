from __future__ import annotations

import numpy as np
import pytest

from experiments.simulation import ConfigError, Shoppers, SimulationConfig, SimulationError, cluster_items
from tests.experiments.simulation.data import TOY_CUTOFF, retail_shoppers, retail_slice, toy_data, toy_shoppers

# toy indices: users a=0 b=1 c=2 d=3; items apple=0 drill=1 hammer=2 pear=3 plum=4 saw=5
A, B, C, D = 0, 1, 2, 3
APPLE, DRILL, HAMMER, PEAR, PLUM, SAW = range(6)


def test_eligible_shoppers_have_history_before_and_purchases_after_the_cutoff() -> None:
    shoppers = toy_shoppers()

    assert shoppers.users.tolist() == [A, D]
    assert shoppers.row_of_user.tolist() == [0, -1, -1, 1]
    assert shoppers.cutoff == TOY_CUTOFF


def test_future_items_are_the_purchases_after_the_cutoff_most_frequent_first() -> None:
    shoppers = toy_shoppers()

    assert shoppers.future_of(A).tolist() == [SAW, PLUM]
    assert shoppers.future_of(D).tolist() == [APPLE]
    assert shoppers.is_future([A, A, A, D], [SAW, PLUM, APPLE, APPLE]).tolist() == [True, True, False, True]
    assert shoppers.oracle_lists([A, D], 3).tolist() == [[SAW, PLUM, -1], [APPLE, -1, -1]]


def test_affinity_is_distinct_history_items_per_category_over_the_users_maximum() -> None:
    shoppers = toy_shoppers()

    # a bought apple (twice), pear: fruit 2 distinct items; hammer: tools 1. d: tools 2, fruit 0.
    assert shoppers.affinity.tolist() == [[1.0, 0.5], [0.0, 1.0]]
    assert shoppers.item_affinity([A, A, D], [PLUM, DRILL, PEAR]).tolist() == [1.0, 0.5, 0.0]


def test_attractiveness_is_high_for_future_items_and_scaled_by_affinity_otherwise() -> None:
    shoppers = toy_shoppers()
    config = SimulationConfig(future_attractiveness=0.6, affinity_attractiveness=0.1, background_attractiveness=0.02)

    values = shoppers.attractiveness([A, A, A, D, D, D], [PLUM, APPLE, DRILL, APPLE, PEAR, SAW], config)

    np.testing.assert_allclose(values, [0.6, 0.1, 0.06, 0.6, 0.02, 0.1])


def test_attractiveness_rejects_users_who_are_not_shoppers_and_unknown_items() -> None:
    shoppers = toy_shoppers()

    with pytest.raises(SimulationError, match="not an eligible shopper"):
        shoppers.attractiveness([B], [APPLE])
    with pytest.raises(SimulationError, match="outside the catalogue"):
        shoppers.attractiveness([A], [6])


def test_no_eligible_user_is_an_error() -> None:
    with pytest.raises(SimulationError, match="nobody can be simulated"):
        Shoppers.build(toy_data(), cutoff=1_000)


def test_prices_unknown_when_missing_or_negative() -> None:
    shoppers = toy_shoppers([1.0, 2.0, float("nan"), -1.0, 4.0, 5.0])

    assert np.isnan(shoppers.item_price).tolist() == [False, False, True, True, False, False]
    assert shoppers.reference_price == 3.0
    with pytest.raises(SimulationError, match="one entry per item"):
        toy_shoppers([1.0])


def test_text_clusters_group_items_sharing_title_words() -> None:
    titles = ("RED APPLE FRUIT", "GREEN APPLE FRUIT", "STEEL HAMMER TOOL", "STEEL SAW TOOL", "", "42")

    clusters = cluster_items(titles, n_clusters=2, seed=3)

    assert clusters[0] == clusters[1]
    assert clusters[2] == clusters[3]
    assert clusters[0] != clusters[2]
    assert clusters[4] == clusters[5] == 2  # no usable words: the extra cluster
    assert np.array_equal(clusters, cluster_items(titles, n_clusters=2, seed=3))


def test_cluster_items_validates_its_parameters() -> None:
    with pytest.raises(ConfigError, match="n_clusters"):
        cluster_items(("a b",), n_clusters=0)


def test_online_retail_shoppers_use_text_clusters_and_are_a_subset_of_users() -> None:
    data = retail_slice()
    shoppers = retail_shoppers()

    assert 0 < shoppers.n_shoppers < data.n_users
    assert shoppers.item_cluster.max() == 50  # 50 text clusters + one for items without words
    assert shoppers.affinity.max(axis=1).tolist() == [1.0] * shoppers.n_shoppers
    before = data.timestamp < shoppers.cutoff
    assert set(shoppers.users.tolist()) == set(data.user_index[before].tolist()) & set(
        data.user_index[~before].tolist()
    )
