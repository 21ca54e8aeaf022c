"""The simulator's exploration step: serving's pool order, hash, shuffle and mixture propensities, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from engine.offpolicy.exploration import exploration_order, is_explored, propensities
from engine.simulation import Exploration, SimulationConfig, SimulationError, explore, run
from tests.engine.simulation.data import toy_shoppers

E = 0.5


def request_ids(explored: bool, count: int) -> list[str]:
    """`count` request ids that the hash explores (or not) at share E."""
    found = [f"req-{i}" for i in range(200) if is_explored(f"req-{i}", E) == explored]
    return found[:count]


def test_an_unexplored_request_shows_its_arms_list_with_the_mixture_propensities() -> None:
    # Arm 0 ranks (1, 2, 3), arm 1 ranks (3, 4, 5); the session is in arm 1, so C = {3, 4, 5, 1, 2}, |C| = 5.
    lists = [np.array([[1, 2, 3]]), np.array([[3, 4, 5]])]
    (request,) = request_ids(explored=False, count=1)
    day = explore(lists, np.array([1]), [request], E)

    assert day.shown.tolist() == [[3, 4, 5]]
    assert not day.explored[0]
    # p(d_k, k) = (1 - e) + e / |C| = 0.5 + 0.1 at every position.
    np.testing.assert_allclose(day.propensity, [[0.6, 0.6, 0.6]])


def test_an_explored_request_shows_servings_shuffle_of_the_pool_in_servings_order() -> None:
    lists = [np.array([[1, 2, 3], [7, 8, -1]]), np.array([[3, 4, 5], [8, 9, -1]])]
    ids = request_ids(explored=True, count=2)
    day = explore(lists, np.array([1, 0]), ids, E)

    assert day.explored.tolist() == [True, True]
    # Serving's C: the serving arm's list first, then the other arms', each item once.
    first = exploration_order([3, 4, 5, 1, 2], 3, ids[0])
    second = exploration_order([7, 8, 9], 3, ids[1])
    assert day.shown.tolist() == [first, second]
    for row, (own, pool, shown) in enumerate((([3, 4, 5], [3, 4, 5, 1, 2], first), ([7, 8], [7, 8, 9], second))):
        np.testing.assert_allclose(day.propensity[row], propensities(own, pool, shown, E))
    # By hand for the second session: C = {7, 8, 9}; 7 at slot 1 is also the arm's pick: 0.5 + 0.5 / 3.
    expected = [(0.5 * (item == own) + E / 3) for item, own in zip(second, [7, 8, None], strict=True)]
    np.testing.assert_allclose(day.propensity[1], expected)


def test_a_pool_smaller_than_k_leaves_the_last_slots_empty_with_propensity_zero() -> None:
    lists = [np.array([[1, -1, -1]]), np.array([[1, 2, -1]])]
    ids = request_ids(explored=True, count=1)
    day = explore(lists, np.array([0]), ids, E)

    assert sorted(day.shown[0, :2].tolist()) == [1, 2]
    assert day.shown[0, 2] == -1
    assert day.propensity[0, 2] == 0.0


def test_run_serves_every_arm_s_union_and_hands_propensities_to_each_day() -> None:
    shoppers = toy_shoppers()
    config = SimulationConfig(daily_users=40, days=2, seed=3, k=3, search_share=0.0)
    rankings = {0: [0, 1, 2], 1: [2, 3, 4]}
    batches = []

    def recommend(arm: int, users: np.ndarray, _queries: object) -> np.ndarray:
        return np.tile(rankings[arm], (len(users), 1))

    exploration = Exploration(E, 2, lambda sessions: [f"s{s}" for s in sessions.tolist()])
    result = run(config, shoppers, recommend, lambda ids: np.arange(len(ids)) % 2, on_batch=batches.append,
                 exploration=exploration)  # fmt: skip

    sessions = np.concatenate([b.session_offset + np.arange(len(b.arm)) for b in batches])
    explored = np.concatenate([b.explored for b in batches])
    assert explored.tolist() == [is_explored(f"s{s}", E) for s in sessions.tolist()]
    assert 0 < explored.sum() < len(explored)
    shown = result.outcomes.item.reshape(-1, 3)
    arms = np.concatenate([b.arm for b in batches])
    for row in np.flatnonzero(~explored):
        assert shown[row].tolist() == rankings[int(arms[row])]
    for row in np.flatnonzero(explored):
        assert set(shown[row].tolist()) <= {0, 1, 2, 3, 4}
    # |C| = 5: an unexplored slot logs 0.5 + 0.1; an explored item the arm shows there too the same, others 0.1.
    propensity = np.concatenate([b.propensity for b in batches])
    own = np.array([rankings[int(a)] for a in arms])
    np.testing.assert_allclose(propensity, np.where(shown == own, 0.6, 0.1))


def test_exploration_is_refused_in_an_interleaved_run_and_outside_0_to_1() -> None:
    with pytest.raises(SimulationError, match="exploration share must lie in"):
        Exploration(1.5, 2, lambda s: [])
    with pytest.raises(SimulationError, match="interleaved run takes no exploration share"):
        run(SimulationConfig(daily_users=5, days=1), toy_shoppers(), lambda *a: np.zeros((0, 3), dtype=np.int64),
            lambda ids: np.zeros(len(ids), dtype=np.int64), interleaved=True,
            exploration=Exploration(0.2, 2, lambda s: []))  # fmt: skip
