from __future__ import annotations

import hashlib

import numpy as np

from engine.simulation import Sessions, SimulationConfig, plan_sessions
from engine.simulation.config import SECONDS_PER_DAY
from tests.engine.simulation.data import TOY_CUTOFF, retail_shoppers, toy_shoppers


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


def _fingerprint(sessions: Sessions) -> str:
    raw = sessions.timestamp.tobytes() + sessions.user.tobytes() + repr(sessions.query).encode()
    return hashlib.sha256(raw + sessions.query_item.tobytes()).hexdigest()[:16]


def test_at_start_arrivals_keep_the_plan_of_earlier_versions() -> None:
    # Reference computed with the simulator before `arrivals` existed: the default must not move any seed's traffic.
    sessions = plan_sessions(SimulationConfig(daily_users=60, days=4, seed=11, search_share=0.5), retail_shoppers())

    assert SimulationConfig().arrivals == "at-start"
    assert (len(sessions), _fingerprint(sessions)) == (262, "07df814f4d33d88e")


def test_first_purchase_arrivals_come_at_the_rescaled_real_first_purchase_and_return_at_rate_rho() -> None:
    # Toy shoppers: a first bought after the cut-off (t = 100) at 150, d at 110, so with D = 51 days
    # t_a = 51 x 50 / 51 = 50 days and t_d = 51 x 10 / 51 = 10 days. Expected total 1 x 51 sessions, so
    # rho = (51 - 2) / ((51 - 50) + (51 - 10)) = 49 / 42 a day, and E[sessions] = 1 + 49 / 42 x (51 - t).
    shoppers = toy_shoppers()
    a, d = (int(shoppers.users[r]) for r in range(2))
    counts = {a: [], d: []}
    totals = []
    for seed in range(300):
        config = SimulationConfig(daily_users=1, days=51, seed=seed, arrivals="first-purchase")
        sessions = plan_sessions(config, shoppers)
        assert np.all(np.diff(sessions.timestamp) >= 0)
        assert np.array_equal((sessions.timestamp - TOY_CUTOFF) // SECONDS_PER_DAY, sessions.day)
        for user, first_day in ((a, 50), (d, 10)):
            mine = sessions.timestamp[sessions.user == user]
            assert mine.min() == TOY_CUTOFF + first_day * SECONDS_PER_DAY
            counts[user].append(len(mine))
        totals.append(len(sessions))

    rho = 49 / 42
    # Poisson counts: the mean of 300 has standard error sqrt(mean / 300) (0.4 for d, 0.06 for a, 0.4 in total).
    assert abs(np.mean(counts[a]) - (1 + rho * 1)) < 0.3
    assert abs(np.mean(counts[d]) - (1 + rho * 41)) < 2.0
    assert abs(np.mean(totals) - 51) < 2.0


def test_uniform_arrivals_keep_new_shoppers_coming_until_the_last_day() -> None:
    shoppers = retail_shoppers()  # 357 eligible shoppers
    config = SimulationConfig(daily_users=500, days=14, seed=5, search_share=0.0, arrivals="uniform")

    sessions = plan_sessions(config, shoppers)

    users, first = np.unique(sessions.user, return_index=True)
    assert len(users) == shoppers.n_shoppers  # 500 x 14 >= 357: everyone comes
    new_per_day = np.bincount(sessions.day[first], minlength=14)
    # Binomial(357, 1/14) per day: mean 25.5, s.d. 4.9.
    assert new_per_day.min() >= 10, new_per_day
    assert new_per_day.max() <= 45, new_per_day
    # 357 first visits + Poisson(7,000 - 357) returns: s.d. 82.
    assert abs(len(sessions) - 7_000) < 400
    per_day = np.bincount(sessions.day, minlength=14)
    assert per_day[-1] > 3 * per_day[0]  # traffic grows as shoppers accumulate
    assert np.all(np.diff(sessions.timestamp) >= 0)


def test_spread_arrivals_with_fewer_sessions_than_shoppers_bring_each_chosen_shopper_once() -> None:
    shoppers = retail_shoppers()

    sessions = plan_sessions(SimulationConfig(daily_users=10, days=14, arrivals="uniform"), shoppers)

    assert len(sessions) == 140
    assert len(np.unique(sessions.user)) == 140
    assert set(sessions.user.tolist()) <= set(shoppers.users.tolist())
