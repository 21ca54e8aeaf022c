from __future__ import annotations

import numpy as np
import pytest

from engine.simulation import Sessions, SimulationConfig, SimulationError, examination, outcomes
from tests.engine.simulation.data import toy_shoppers

A, D = 0, 3
APPLE, DRILL, HAMMER, PEAR, PLUM, SAW = range(6)


def sessions_of(users: list[int]) -> Sessions:
    n = len(users)
    return Sessions(
        timestamp=np.arange(n, dtype=np.int64),
        day=np.zeros(n, dtype=np.int64),
        user=np.array(users, dtype=np.int64),
        query=(None,) * n,
        query_item=np.full(n, -1, dtype=np.int64),
    )


def test_examination_decays_as_inverse_rank_to_the_power_eta() -> None:
    np.testing.assert_allclose(examination(4, 1.0), [1.0, 0.5, 1 / 3, 0.25])
    np.testing.assert_allclose(examination(3, 2.0), [1.0, 0.25, 1 / 9])
    np.testing.assert_allclose(examination(3, 0.0), [1.0, 1.0, 1.0])


def test_click_probability_is_examination_times_attractiveness_with_the_injected_lift() -> None:
    config = SimulationConfig(injected_effect=0.5, injected_arm=1)  # F=0.6, A=0.12, B=0.005
    recommended = [[PLUM, HAMMER, -1], [APPLE, PEAR, SAW]]

    result = outcomes(config, toy_shoppers(), sessions_of([A, D]), recommended, [0, 1], np.random.default_rng(0))

    assert result.session.tolist() == [0, 0, 1, 1, 1]
    assert result.position.tolist() == [1, 2, 1, 2, 3]
    assert result.item.tolist() == [PLUM, HAMMER, APPLE, PEAR, SAW]
    assert result.arm.tolist() == [0, 0, 1, 1, 1]
    # hammer is a held-out neighbour of a's plum: affinity 1 / (sqrt 2 + 10); d's apple has no neighbours
    hammer = 0.005 + 0.115 / (np.sqrt(2) + 10)
    np.testing.assert_allclose(
        result.click_probability, [0.6, hammer / 2, 0.9, 0.005 * 1.5 / 2, 0.005 * 1.5 / 3], rtol=1e-6
    )


def test_certain_clicks_carts_and_purchases_earn_the_item_price() -> None:
    config = SimulationConfig(
        eta=0.0,
        future_attractiveness=1.0,
        affinity_attractiveness=1.0,
        background_attractiveness=1.0 - 1e-9,
        cart_min=1.0,
        cart_max=1.0,
        purchase_min=1.0,
        purchase_max=1.0,
    )
    shoppers = toy_shoppers([1.5, 2.0, float("nan"), 3.0, 4.0, 5.0])

    result = outcomes(
        config, shoppers, sessions_of([A, D]), [[PLUM, HAMMER], [APPLE, SAW]], [0, 0], np.random.default_rng(1)
    )

    assert result.clicked.all()
    assert result.carted.all()
    assert result.purchased.all()
    assert result.revenue.tolist() == [4.0, 0.0, 1.5, 5.0]  # hammer's price is unknown


def test_conversion_depends_on_relevance_and_follows_the_funnel() -> None:
    config = SimulationConfig(eta=0.0, cart_min=0.1, cart_max=0.5, purchase_min=0.2, purchase_max=0.8)
    n = 40_000
    # a: plum is a future item (relevance 1); pear was bought with plum after the cut-off (shrink 0:
    # affinity 1/sqrt 2, so a = B + (A - B) / sqrt 2 and relevance ≈ 0.14)
    recommended = np.tile([PLUM, PEAR], (n, 1))
    shoppers = toy_shoppers(shrink=0.0)

    result = outcomes(config, shoppers, sessions_of([A] * n), recommended, np.zeros(n), np.random.default_rng(2))

    assert not (result.carted & ~result.clicked).any()
    assert not (result.purchased & ~result.carted).any()
    future, other = result.item == PLUM, result.item == PEAR
    relevance = (0.12 - 0.005) / np.sqrt(2) / (0.6 - 0.005)
    assert result.clicked[future].mean() == pytest.approx(0.6, abs=0.01)
    assert result.carted[future & result.clicked].mean() == pytest.approx(0.5, abs=0.015)
    assert result.purchased[future & result.carted].mean() == pytest.approx(0.8, abs=0.02)
    assert result.carted[other & result.clicked].mean() == pytest.approx(0.1 + 0.4 * relevance, abs=0.025)


def test_price_sensitivity_lowers_carts_of_items_dearer_than_the_reference() -> None:
    config = SimulationConfig(eta=0.0, cart_min=0.8, cart_max=0.8, price_sensitivity=1.0)
    prices = [1.0, 1.0, 1.0, 1.0, 4.0, 1.0]  # reference (median) 1.0; plum costs 4 -> factor 1/4
    n = 40_000

    result = outcomes(
        config,
        toy_shoppers(prices),
        sessions_of([A] * n),
        np.tile([[PLUM]], (n, 1)),
        np.zeros(n),
        np.random.default_rng(3),
    )

    assert result.carted[result.clicked].mean() == pytest.approx(0.8 / 4, abs=0.01)


def test_bad_shapes_and_items_are_rejected() -> None:
    shoppers, config, rng = toy_shoppers(), SimulationConfig(), np.random.default_rng(0)

    with pytest.raises(SimulationError, match="shape"):
        outcomes(config, shoppers, sessions_of([A]), [PLUM], [0], rng)
    with pytest.raises(SimulationError, match="one entry per session"):
        outcomes(config, shoppers, sessions_of([A]), [[PLUM]], [0, 1], rng)
    with pytest.raises(SimulationError, match="outside the catalogue"):
        outcomes(config, shoppers, sessions_of([A]), [[6]], [0], rng)
