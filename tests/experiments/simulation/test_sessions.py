from __future__ import annotations

import numpy as np

from experiments.simulation import SimulationConfig, plan_sessions
from experiments.simulation.config import SECONDS_PER_DAY
from tests.experiments.simulation.data import TOY_CUTOFF, retail_shoppers, toy_shoppers


def test_same_seed_gives_the_same_plan_and_another_seed_does_not() -> None:
    shoppers = toy_shoppers()
    config = SimulationConfig(daily_users=50, days=3, seed=7)

    first, again = plan_sessions(config, shoppers), plan_sessions(config, shoppers)
    other = plan_sessions(SimulationConfig(daily_users=50, days=3, seed=8), shoppers)

    assert np.array_equal(first.timestamp, again.timestamp)
    assert np.array_equal(first.user, again.user)
    assert first.query == again.query
    assert len(first) != len(other) or not np.array_equal(first.timestamp, other.timestamp)


def test_sessions_are_sorted_in_their_days_starting_at_the_cutoff() -> None:
    sessions = plan_sessions(SimulationConfig(daily_users=40, days=5), toy_shoppers())

    assert np.all(np.diff(sessions.timestamp) >= 0)
    assert np.array_equal((sessions.timestamp - TOY_CUTOFF) // SECONDS_PER_DAY, sessions.day)
    assert set(sessions.user.tolist()) == {0, 3}
    day_two = sessions.take(sessions.day_slice(2))
    assert day_two.day.tolist() == [2] * len(day_two)


def test_explicit_start_moves_the_first_day() -> None:
    sessions = plan_sessions(SimulationConfig(daily_users=40, days=1, start=1_700_000_000), toy_shoppers())

    assert sessions.timestamp.min() >= 1_700_000_000
    assert sessions.timestamp.max() < 1_700_000_000 + SECONDS_PER_DAY


def test_daily_sessions_are_poisson_around_daily_users() -> None:
    sessions = plan_sessions(SimulationConfig(daily_users=200, days=200, search_share=0.0), toy_shoppers())
    per_day = np.bincount(sessions.day, minlength=200)

    # Poisson: mean 200 and variance 200; with 200 days the mean's standard error is 1.
    assert abs(per_day.mean() - 200) < 4
    assert 140 < per_day.var() < 270
    assert sessions.query == (None,) * len(sessions)


def test_search_queries_only_contain_words_of_the_users_future_titles() -> None:
    shoppers = retail_shoppers()
    config = SimulationConfig(daily_users=500, days=4, search_share=0.3, query_words=3)

    sessions = plan_sessions(config, shoppers)

    searched = [j for j, q in enumerate(sessions.query) if q is not None]
    assert 0.25 < len(searched) / len(sessions) < 0.35
    for j in searched:
        query = sessions.query[j]
        assert query is not None
        future = shoppers.future_of(int(sessions.user[j]))
        assert sessions.query_item[j] in future
        title = shoppers.item_text[sessions.query_item[j]].split()
        words = query.split()
        assert 1 <= len(words) <= 3
        assert set(words) <= set(title)
    assert all(sessions.query_item[j] == -1 for j, q in enumerate(sessions.query) if q is None)
