"""The exploration share's randomised ranking and its propensities, checked by hand and by enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.offpolicy import EstimatorConfig, LoggedFeedback, SlateLog, evaluate_ranking_target, ips, snips
from engine.offpolicy.exploration import (
    exploration_order,
    is_explored,
    mixture_propensities,
    propensities,
)


def test_propensities_by_hand_on_a_four_item_pool() -> None:
    # d = (a, b), C = {a, b, c, d}, e = 0.2: p = 0.8 * 1[d_k = item] + 0.2 / 4
    top, pool = ["a", "b"], ["a", "b", "c", "d"]
    assert propensities(top, pool, ["a", "b"], 0.2) == pytest.approx([0.85, 0.85])
    assert propensities(top, pool, ["c", "a"], 0.2) == pytest.approx([0.05, 0.05])
    assert propensities(top, pool, ["b", "a"], 0.2) == pytest.approx([0.05, 0.05])
    assert propensities(top, pool, ["a", "d"], 0.2) == pytest.approx([0.85, 0.05])


def test_propensities_are_the_mixture_marginals_by_enumeration() -> None:
    # Every ordering of the pool is equally likely when explored; the deterministic top 2 otherwise.
    top, pool, share, k = ["a", "b"], ["a", "b", "c", "d"], 0.2, 2
    orders = list(itertools.permutations(pool))
    for item in pool:
        for position in range(k):
            explored = sum(order[position] == item for order in orders) / len(orders)
            marginal = (1 - share) * (top[position] == item) + share * explored
            shown = ["x"] * k
            shown[position] = item
            assert propensities(top, pool, shown, share)[position] == pytest.approx(marginal)


def test_exploration_order_is_a_permutation_of_the_pool_fixed_by_the_request_id() -> None:
    pool = [f"i{j}" for j in range(30)]
    first = exploration_order(pool, 10, "req-1")
    assert first == exploration_order(pool, 10, "req-1")
    assert len(set(first)) == 10
    assert set(first) <= set(pool)
    assert first != exploration_order(pool, 10, "req-2")


def test_explored_share_is_reproducible_and_close_to_the_setting() -> None:
    ids = [f"request-{j}" for j in range(20_000)]
    explored = [is_explored(request, 0.1) for request in ids]
    assert explored == [is_explored(request, 0.1) for request in ids]
    assert sum(explored) == 2_048  # 10.24 %; a binomial(20,000, 0.1) lies within 2,000 +- 127 with 99.9 %
    assert not any(is_explored(request, 0.0) for request in ids[:1000])
    # A request explored at 10 % is explored at every larger share (u < 0.1 implies u < 0.2).
    assert all(is_explored(r, 0.2) for r, flag in zip(ids, explored, strict=True) if flag)


def test_mixture_propensities_match_the_scalar_formula() -> None:
    det = np.array([[0, 1], [2, 3]])
    pool = np.array([[0, 1, 2, 3], [2, 3, 4, -1]])  # the second request's pool has 3 items
    shown = np.array([[2, 0], [2, -1]])
    got = mixture_propensities(det, pool, shown, 0.3)
    assert got[0].tolist() == pytest.approx(propensities([0, 1], [0, 1, 2, 3], [2, 0], 0.3))
    assert got[1].tolist() == pytest.approx([0.7 + 0.1, 0.0])


def test_ranking_target_estimates_by_hand() -> None:
    # Four impressions; the target agrees with units 0 and 2 (and shows nothing at unit 3's slot).
    log = SlateLog(
        items=np.array([0, 1, 2, 1]), positions=np.array([0, 1, 0, 1]), rewards=np.array([1.0, 0.0, 1.0, 1.0]),
        propensities=np.array([0.5, 0.25, 0.05, 0.85]), n_items=3, n_positions=2,
    )  # fmt: skip
    target = np.array([0, 2, 2, -1])
    config = EstimatorConfig(n_bootstrap=200, seed=3)
    evaluation = evaluate_ranking_target(log, target, config)
    # w = (1/0.5, 0, 1/0.05, 0) = (2, 0, 20, 0); IPS = (2 + 20) / 4; SNIPS = 22 / 22.
    assert evaluation.ips.estimate == pytest.approx(5.5)
    assert evaluation.snips.estimate == pytest.approx(1.0)
    assert evaluation.ips.effective_sample_size == pytest.approx(22**2 / (4 + 400))
    feedback = LoggedFeedback(log.rewards, log.propensities, np.array([1.0, 0.0, 1.0, 0.0]))
    assert evaluation.ips == ips(feedback, config)
    assert evaluation.snips == snips(feedback, config)
    # Item 2 at position 2 (unit 1's target) is never logged: 1 of 3 placements.
    assert evaluation.unlogged_target_mass == pytest.approx(1 / 3)
    assert any("the target puts 33.3% of its placements on (item, position) pairs" in w for w in evaluation.warnings)
