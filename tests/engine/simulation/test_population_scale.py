"""`SimulationConfig.population_scale`: each real shopper stands for several with the same tastes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from engine.simulation import ConfigError, SimulationConfig, SimulationError, run
from engine.simulation.config import MAX_POPULATION_SCALE
from recommenders.algorithms.base import IntArray
from tests.engine.simulation.data import popular_lists, retail_shoppers, toy_shoppers
from tests.engine.simulation.factories import two_arms

APPLE, DRILL, HAMMER, PEAR, PLUM, SAW = range(6)


def test_replicas_have_their_own_ids_and_rows_but_the_tastes_of_the_shopper_they_stand_for() -> None:
    real = toy_shoppers()  # eligible: a (index 0) and d (index 3) of users a-e
    triple = real.replicated(3)

    assert (triple.replicas, triple.n_shoppers) == (3, 6)
    assert triple.user_ids.tolist() == ["a", "b", "c", "d", "e", "a#1", "b#1", "c#1", "d#1", "e#1",
                                        "a#2", "b#2", "c#2", "d#2", "e#2"]  # fmt: skip
    assert triple.users.tolist() == [0, 3, 5, 8, 10, 13]
    assert triple.source_user(triple.users).tolist() == [0, 3, 0, 3, 0, 3]
    items = np.array([APPLE, PLUM, SAW, DRILL, HAMMER, PEAR])
    for replica_of_d in (3, 8, 13):
        assert (
            triple.attractiveness(np.full(6, replica_of_d), items).tolist()
            == real.attractiveness(np.full(6, 3), items).tolist()
        )
        assert triple.future_of(replica_of_d).tolist() == real.future_of(3).tolist() == [APPLE]
    assert triple.future_of(10).tolist() == real.future_of(0).tolist()
    assert triple.first_future.tolist() == real.first_future.tolist() * 3
    assert triple.affinity is real.affinity  # shared, not copied
    with pytest.raises(SimulationError, match="not an eligible shopper"):
        triple.rows(np.array([6]))  # b#1: b has no future, so neither has its replica


def test_scale_one_is_the_real_population_and_replicas_cannot_be_replicated_again() -> None:
    real = toy_shoppers()
    assert real.replicated(1) is real
    with pytest.raises(SimulationError, match="already replicated"):
        real.replicated(2).replicated(2)
    with pytest.raises(SimulationError, match="whole number >= 1"):
        real.replicated(0)


@pytest.mark.parametrize("scale", [0, MAX_POPULATION_SCALE + 1, 1.5, True])
def test_population_scale_must_be_a_whole_number_from_one_to_the_maximum(scale: object) -> None:
    with pytest.raises(ConfigError) as error:
        SimulationConfig(population_scale=scale)  # type: ignore[arg-type]
    assert error.value.field == "population_scale"


def test_a_scaled_run_has_more_distinct_shoppers_each_assigned_by_their_own_id_and_scored_as_the_real_one() -> None:
    shoppers = retail_shoppers()
    n = len(shoppers.user_ids)
    asked: list[int] = []
    hashed: list[str] = []

    def recommend(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
        asked.extend(users.tolist())
        return popular_lists(arm, users, queries)

    def assign(user_ids: np.ndarray) -> IntArray:
        hashed.extend(user_ids.tolist())
        return two_arms(user_ids)

    config = SimulationConfig(daily_users=3_000, days=3, seed=5, arrivals="uniform", population_scale=3)
    result = run(config, shoppers, recommend, assign)

    users = np.unique(result.sessions.user)
    # uniform arrivals bring every shopper once the expected sessions (9,000) exceed them: 3 x the real ones
    assert len(users) == 3 * shoppers.n_shoppers
    assert set(np.unique(users // n).tolist()) == {0, 1, 2}
    assert max(asked) < n  # the recommenders only ever see the real users
    assert {h.rpartition("#")[2] for h in hashed if "#" in h} == {"1", "2"}
    arm_of_user = dict(zip(result.sessions.user.tolist(), result.arm.tolist(), strict=True))
    # the replicas of one shopper are hashed by their own ids, so they land in both arms
    split = [len({arm_of_user.get(u + r * n) for r in range(3)} - {None}) for u in shoppers.users[:200].tolist()]
    assert max(split) == 2


def test_a_scaled_run_refuses_a_served_interleaved_list() -> None:
    config = SimulationConfig(daily_users=50, days=1, population_scale=2)

    def interleave(users: IntArray, queries: Sequence[str | None]) -> tuple[IntArray, IntArray]:
        raise AssertionError("not reached")

    with pytest.raises(SimulationError, match="population_scale"):
        run(config, retail_shoppers(), popular_lists, two_arms, interleaved=True, interleave_batch=interleave)
