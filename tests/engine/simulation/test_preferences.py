from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from engine.simulation import ConfigError, Shoppers, SimulationConfig, SimulationError, future_neighbours
from tests.engine.simulation.data import TOY_CUTOFF, retail_shoppers, retail_slice, toy_data, toy_shoppers

# toy indices: users a=0 b=1 c=2 d=3; items apple=0 drill=1 hammer=2 pear=3 plum=4 saw=5
A, B, C, D = 0, 1, 2, 3
# measured on the 800-user slice
SLICE_SHOPPERS, SLICE_HELD_OUT_PAIRS, SLICE_MEAN_AFFINITY, SLICE_MAX_AFFINITY = 357, 14_750, 0.065, 0.7143
APPLE, DRILL, HAMMER, PEAR, PLUM, SAW = range(6)


def test_eligible_shoppers_have_history_before_and_purchases_after_the_cutoff() -> None:
    shoppers = toy_shoppers()

    assert shoppers.users.tolist() == [A, D]
    assert shoppers.row_of_user.tolist() == [0, -1, -1, 1, -1]  # e has no history
    assert shoppers.cutoff == TOY_CUTOFF


def test_future_items_are_the_purchases_after_the_cutoff_most_frequent_first() -> None:
    shoppers = toy_shoppers()

    assert shoppers.future_of(A).tolist() == [SAW, PLUM]
    assert shoppers.future_of(D).tolist() == [APPLE]
    assert shoppers.is_future([A, A, A, D], [SAW, PLUM, APPLE, APPLE]).tolist() == [True, True, False, True]
    assert shoppers.oracle_lists([A, D], 3).tolist() == [[SAW, PLUM, -1], [APPLE, -1, -1]]
    assert shoppers.first_future.tolist() == [150, 110]  # a: plum at 150; d: apple at 110


def test_held_out_neighbours_are_the_shrunk_cosine_of_the_items_future_buyers() -> None:
    data = toy_data()
    after = data.timestamp >= TOY_CUTOFF
    future = sp.csr_matrix((np.ones(int(after.sum())), (data.user_index[after], data.item_index[after])), shape=(5, 6))

    # a bought saw twice: still one buyer. Buyers: apple 2 (c, d), plum 2 (a, e), hammer, pear, saw 1 each.
    plain = future_neighbours(future, shrink=0.0).toarray()
    shrunk = future_neighbours(future, shrink=10.0).toarray()

    r2 = 1 / np.sqrt(2)  # one shared buyer of an item with 2 buyers and one with 1
    expected = np.zeros((6, 6))
    for i, j, value in ((PLUM, SAW, r2), (PEAR, PLUM, r2), (HAMMER, PLUM, r2), (HAMMER, PEAR, 1.0)):
        expected[i, j] = expected[j, i] = value
    np.testing.assert_allclose(plain, expected)
    np.testing.assert_allclose(shrunk[HAMMER, PEAR], 1 / (1 + 10))
    np.testing.assert_allclose(shrunk[PLUM, SAW], 1 / (np.sqrt(2) + 10))
    assert np.diag(shrunk).tolist() == [0.0] * 6
    with pytest.raises(ConfigError, match="shrink"):
        future_neighbours(future, shrink=-1.0)


def test_affinity_is_the_closest_held_out_neighbour_of_the_shoppers_own_future() -> None:
    shoppers = toy_shoppers(shrink=0.0)

    # a will buy plum and saw (-1: held-out purchases): pear and hammer were bought with plum (by e);
    # apple and drill with neither. d will buy apple, which nobody bought with anything else.
    r2 = np.float32(1 / np.sqrt(2))
    assert shoppers.affinity.tolist() == [[0.0, 0.0, r2, r2, -1.0, -1.0], [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(shoppers.item_affinity([A, A, D, D], [PEAR, DRILL, PEAR, APPLE]), [r2, 0.0, 0.0, -1.0])


def test_attractiveness_is_high_for_future_items_and_scaled_by_affinity_otherwise() -> None:
    shoppers = toy_shoppers()  # default shrink 10: s(pear, plum) = s(hammer, plum) = 1 / (sqrt 2 + 10)
    config = SimulationConfig(future_attractiveness=0.6, affinity_attractiveness=0.1, background_attractiveness=0.02)

    values = shoppers.attractiveness([A, A, A, D, D, D], [PLUM, HAMMER, DRILL, APPLE, PEAR, SAW], config)

    near = 0.02 + 0.08 / (np.sqrt(2) + 10)
    np.testing.assert_allclose(values, [0.6, near, 0.02, 0.6, 0.02, 0.02], rtol=1e-6)


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


def test_online_retail_shoppers_are_a_subset_of_users_with_neighbourhood_affinities() -> None:
    data = retail_slice()
    shoppers = retail_shoppers()

    assert shoppers.n_shoppers == SLICE_SHOPPERS
    assert shoppers.affinity.shape == (SLICE_SHOPPERS, data.n_items)
    before = data.timestamp < shoppers.cutoff
    assert set(shoppers.users.tolist()) == set(data.user_index[before].tolist()) & set(
        data.user_index[~before].tolist()
    )
    held_out = shoppers.affinity < 0
    assert int(held_out.sum()) == len(shoppers.future_items) == SLICE_HELD_OUT_PAIRS
    assert round(float(shoppers.affinity[~held_out].mean()), 4) == SLICE_MEAN_AFFINITY
    assert round(float(shoppers.affinity.max()), 4) == SLICE_MAX_AFFINITY
