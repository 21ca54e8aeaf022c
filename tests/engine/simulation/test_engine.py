from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import pytest
from scipy import stats

from engine.interleaving import random_coins, team_draft_many
from engine.simulation import (
    DayBatch,
    SimulationConfig,
    SimulationError,
    examination,
    outcomes,
    plan_sessions,
    run,
)
from engine.simulation.engine import TEAM_DRAFT_STREAM, RecommendBatch
from recommenders.algorithms.base import IntArray
from tests.engine.simulation.data import popular_lists, retail_shoppers, toy_shoppers
from tests.engine.simulation.factories import two_arms

APPLE, DRILL, HAMMER, PEAR, PLUM, SAW = range(6)


def everyone_in_arm_zero(user_ids: np.ndarray) -> IntArray:
    return np.zeros(len(user_ids), dtype=np.int64)


def oracle(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
    return retail_shoppers().oracle_lists(users, 10)


def random_lists(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
    # Seeded by the users so that the lists do not depend on call order.
    rng = np.random.default_rng(int(users.sum()))
    return rng.integers(0, retail_shoppers().n_items, size=(len(users), 10))


RETAIL = SimulationConfig(daily_users=400, days=5, seed=11)


def test_same_seed_gives_identical_events() -> None:
    first = run(RETAIL, retail_shoppers(), popular_lists, two_arms)
    again = run(RETAIL, retail_shoppers(), popular_lists, two_arms)

    for f in fields(first.outcomes):
        assert np.array_equal(getattr(first.outcomes, f.name), getattr(again.outcomes, f.name)), f.name
    assert np.array_equal(first.arm, again.arm)
    assert first.arms == again.arms
    other = run(SimulationConfig(daily_users=400, days=5, seed=12), retail_shoppers(), popular_lists, two_arms)
    assert other.arms != first.arms


def test_popularity_ctr_with_defaults_is_a_few_percent_mostly_from_held_out_purchases_and_neighbours() -> None:
    shoppers = retail_shoppers()

    result = run(RETAIL, shoppers, popular_lists, everyone_in_arm_zero)

    (arm,) = result.arms
    o = result.outcomes
    assert (arm.sessions, arm.impressions, arm.clicks, arm.carts, arm.purchases) == (2_035, 20_350, 350, 99, 67)
    assert round(arm.ctr, 4) == 0.0172
    held_out = shoppers.is_future(result.sessions.user[o.session], o.item)
    search = np.array([q is not None for q in result.sessions.query])[o.session]
    # clicks by source: a held-out purchase, another item (neighbourhood preference), a search session
    assert [int((o.clicked & m).sum()) for m in (held_out & ~search, ~held_out & ~search, search)] == [120, 163, 67]


def test_finding_the_users_future_beats_popularity_which_beats_random() -> None:
    recommenders: dict[str, RecommendBatch] = {"oracle": oracle, "popularity": popular_lists, "random": random_lists}
    arms = {name: run(RETAIL, retail_shoppers(), recommend, everyone_in_arm_zero).arms[0]
            for name, recommend in recommenders.items()}  # fmt: skip

    # the oracle's lists are shorter where a shopper bought fewer than 10 items later
    assert {name: (a.impressions, a.clicks) for name, a in arms.items()} == {
        "oracle": (18_651, 3_431),
        "popularity": (20_350, 350),
        "random": (20_350, 116),
    }


def test_ctr_decays_with_rank() -> None:
    outcomes = run(RETAIL, retail_shoppers(), popular_lists, everyone_in_arm_zero).outcomes

    ctr_at = [outcomes.clicked[outcomes.position == r].mean() for r in (1, 5)]
    assert ctr_at[0] > 2 * ctr_at[1]


def test_injected_effect_lifts_the_treatment_arms_click_probability_by_ten_percent() -> None:
    config = SimulationConfig(daily_users=4_000, days=5, seed=5, injected_effect=0.1, injected_arm=1)
    shoppers = retail_shoppers()

    result = run(config, shoppers, oracle, two_arms)

    o = result.outcomes
    base = examination(config.k, config.eta)[o.position - 1] * shoppers.attractiveness(
        result.sessions.user[o.session], o.item, config
    )
    treated = o.arm == 1
    np.testing.assert_allclose(o.click_probability[treated], 1.1 * base[treated])
    np.testing.assert_allclose(o.click_probability[~treated], base[~treated])
    # Realised clicks over the clicks expected without a lift: 1.1 and 1 (about 50k clicks per arm).
    assert o.clicked[treated].sum() / base[treated].sum() == pytest.approx(1.1, abs=0.02)
    assert o.clicked[~treated].sum() / base[~treated].sum() == pytest.approx(1.0, abs=0.02)


def test_aa_mode_arms_do_not_change_outcomes_without_an_injected_effect() -> None:
    config = SimulationConfig(daily_users=50, days=1)
    shoppers = retail_shoppers()
    sessions = plan_sessions(config, shoppers)
    lists = popular_lists(0, sessions.user, sessions.query)

    as_control = outcomes(config, shoppers, sessions, lists, np.zeros(len(sessions)), np.random.default_rng(4))
    as_treatment = outcomes(config, shoppers, sessions, lists, np.ones(len(sessions)), np.random.default_rng(4))

    assert np.array_equal(as_control.clicked, as_treatment.clicked)
    assert np.array_equal(as_control.click_probability, as_treatment.click_probability)


def test_aa_run_shows_no_significant_difference_between_arms_at_the_user_level() -> None:
    # Users are the randomisation unit: arms differ by who is in them (here 16 % apart in CTR
    # on 357 shoppers), so the comparison is of per-user CTRs, as the analysis must do.
    result = run(SimulationConfig(daily_users=2_000, days=5, seed=9), retail_shoppers(), popular_lists, two_arms)

    o = result.outcomes
    user = result.sessions.user[o.session]
    size = int(result.sessions.user.max()) + 1
    impressions = np.bincount(user, minlength=size)
    user_ctr = np.bincount(user, weights=o.clicked, minlength=size) / np.maximum(impressions, 1)
    arm_of_user = np.full(size, -1)
    arm_of_user[result.sessions.user] = result.arm
    shown = impressions > 0
    p_value = stats.ttest_ind(
        user_ctr[shown & (arm_of_user == 0)], user_ctr[shown & (arm_of_user == 1)], equal_var=False
    ).pvalue
    assert p_value > 0.05
    control, treatment = result.arms
    assert control.sessions == pytest.approx(treatment.sessions, rel=0.1)


def test_progress_batches_and_cancellation() -> None:
    config = SimulationConfig(daily_users=30, days=4)
    reports: list[tuple[float, str]] = []
    batches: list[DayBatch] = []
    days_asked = iter([False, False, True])

    result = run(
        config,
        toy_shoppers(),
        lambda arm, users, queries: np.tile([PLUM, APPLE, SAW], (len(users), 1)),
        everyone_in_arm_zero,
        progress=lambda fraction, message: reports.append((fraction, message)),
        should_stop=lambda: next(days_asked),
        on_batch=batches.append,
    )

    assert result.cancelled
    assert result.days_completed == 2
    assert [f for f, _ in reports] == [0.0, 0.25, 0.5]
    assert reports[1][1].startswith("day 1/4: ")
    assert [b.day for b in batches] == [0, 1]
    assert batches[1].session_offset == len(batches[0].sessions)
    assert len(result.outcomes) == 3 * (len(batches[0].sessions) + len(batches[1].sessions))
    assert result.outcomes.session.max() == batches[1].session_offset + len(batches[1].sessions) - 1
    assert (result.arm[batches[1].session_offset + len(batches[1].sessions) :] == -1).all()


def test_users_outside_the_experiment_see_nothing_and_totals_survive_without_kept_outcomes() -> None:
    def only_user_a(user_ids: np.ndarray) -> IntArray:
        return np.where(user_ids == "a", 0, -1)

    asked: list[IntArray] = []

    def recommend(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
        asked.append(users)
        return np.tile([PLUM, APPLE], (len(users), 1))  # two items although k = 10: padded

    result = run(SimulationConfig(daily_users=30, days=2), toy_shoppers(), recommend, only_user_a, keep_outcomes=False)

    assert set(np.concatenate(asked).tolist()) == {0}
    (arm,) = result.arms
    assert arm.sessions == int((result.sessions.user == 0).sum())
    assert arm.impressions == 2 * arm.sessions
    assert len(result.outcomes) == 0


@pytest.mark.parametrize(
    ("recommend", "message"),
    [
        (lambda arm, users, queries: np.zeros((len(users), 11), dtype=np.int64), "must return"),
        (lambda arm, users, queries: np.zeros(len(users), dtype=np.int64), "must return"),
        (lambda arm, users, queries: np.zeros((len(users), 2)), "integer item indices"),
    ],
)
def test_bad_recommendations_are_rejected(recommend: object, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        run(SimulationConfig(daily_users=30, days=1), toy_shoppers(), recommend, everyone_in_arm_zero)  # type: ignore[arg-type]


def test_bad_assignment_is_rejected() -> None:
    with pytest.raises(SimulationError, match="one integer arm per user"):
        run(
            SimulationConfig(daily_users=30, days=1),
            toy_shoppers(),
            lambda arm, users, queries: np.zeros((len(users), 1), dtype=np.int64),
            lambda ids: np.zeros(len(ids) + 1, dtype=np.int64),
        )


def test_each_distinct_user_and_query_of_a_day_is_recommended_once_unless_told_otherwise() -> None:
    config = SimulationConfig(daily_users=200, days=2, search_share=0.3)
    calls: list[tuple[list[int], list[str | None]]] = []

    def recommend(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
        calls.append((users.tolist(), list(queries)))
        lists: IntArray = np.tile([PLUM, APPLE], (len(users), 1)) + (users[:, None] == 0)
        return lists

    deduplicated = run(config, toy_shoppers(), recommend, everyone_in_arm_zero)
    per_day = [sorted(zip(*call, strict=True), key=str) for call in calls]
    calls.clear()
    every_session = run(config, toy_shoppers(), recommend, everyone_in_arm_zero, deduplicate=False)

    sessions = deduplicated.sessions
    for day, pairs in enumerate(per_day):
        today = sessions.take(sessions.day_slice(day))
        expected = set(zip(today.user.tolist(), today.query, strict=True))
        assert len(pairs) == len(expected)
        assert set(pairs) == expected
    assert [len(users) for users, _ in calls] == [len(sessions.take(sessions.day_slice(d))) for d in range(2)]
    for f in fields(deduplicated.outcomes):
        assert np.array_equal(getattr(deduplicated.outcomes, f.name), getattr(every_session.outcomes, f.name))


def test_an_interleaved_run_shows_team_draft_lists_and_credits_each_impression_to_its_arm() -> None:
    config = SimulationConfig(daily_users=300, days=2, seed=3, injected_effect=0.5, injected_arm=1)
    lists = {0: popular_lists, 1: oracle}
    days: list[DayBatch] = []

    def both(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
        return lists[arm](arm, users, queries)

    result = run(config, retail_shoppers(), both, everyone_in_arm_zero, interleaved=True, on_batch=days.append)

    shown = result.outcomes
    assert set(np.unique(result.arm).tolist()) == {0}  # every session is in the experiment, as arm 0 (team A)
    assert set(np.unique(shown.arm).tolist()) == {0, 1}  # impressions carry the arm that contributed them
    for batch in days:
        users = batch.sessions.user
        coins = random_coins(len(users), config.k, np.random.default_rng([config.seed, TEAM_DRAFT_STREAM, batch.day]))
        drafted = team_draft_many(popular_lists(0, users, []), oracle(1, users, []), config.k, coins)
        own = batch.outcomes
        local = own.session - batch.session_offset
        assert np.array_equal(own.item, drafted.items[local, own.position - 1])
        assert np.array_equal(own.arm, drafted.team[local, own.position - 1].astype(np.int64))
    # The injected lift applies to arm 1's items only.
    attractive = retail_shoppers().attractiveness(result.sessions.user[shown.session], shown.item, config)
    lift = np.where(shown.arm == 1, 1.5, 1.0)
    expected = examination(config.k, config.eta)[shown.position - 1] * np.minimum(1.0, attractive * lift)
    assert np.allclose(shown.click_probability, expected)
    with pytest.raises(SimulationError, match="assigns every user in the experiment to arm 0"):
        run(config, retail_shoppers(), both, two_arms, interleaved=True)


def test_an_interleaved_run_can_take_lists_drafted_elsewhere_and_credits_each_slot_to_its_given_arm() -> None:
    config = SimulationConfig(daily_users=200, days=2, seed=4, injected_effect=0.5, injected_arm=1)
    asked: list[int] = []

    def served(users: IntArray, queries: Sequence[str | None]) -> tuple[IntArray, IntArray]:
        # A "server" that shows oracle's list with every odd slot marked as team B's and the last slot empty.
        asked.append(len(users))
        items = np.asarray(oracle(1, users, queries)).copy()
        items[:, -1] = -1
        return items, np.where(items >= 0, np.arange(config.k) % 2, -1)

    def never(arm: int, users: IntArray, queries: Sequence[str | None]) -> IntArray:
        raise AssertionError("the arms' recommenders are not asked when the lists come drafted")

    result = run(config, retail_shoppers(), never, everyone_in_arm_zero, interleaved=True, interleave_batch=served)

    shown = result.outcomes
    assert asked == [int(np.count_nonzero(result.sessions.day == day)) for day in range(2)]  # one list per session
    lists = np.asarray(oracle(1, result.sessions.user, []))
    assert len(shown) == int((lists[:, :-1] >= 0).sum()) > 0  # the emptied last slot is never shown
    assert np.array_equal(shown.item, lists[shown.session, shown.position - 1])
    assert np.array_equal(shown.arm, (shown.position - 1) % 2)
    attractive = retail_shoppers().attractiveness(result.sessions.user[shown.session], shown.item, config)
    lift = np.where(shown.arm == 1, 1.5, 1.0)
    expected = examination(config.k, config.eta)[shown.position - 1] * np.minimum(1.0, attractive * lift)
    assert np.allclose(shown.click_probability, expected)

    def bad(users: IntArray, queries: Sequence[str | None]) -> tuple[IntArray, IntArray]:
        items, slots = served(users, queries)
        slots[:, 0] = 2
        return items, slots

    with pytest.raises(SimulationError, match="slot arms must be 0 or 1 on shown items and -1 on empty slots"):
        run(config, retail_shoppers(), never, everyone_in_arm_zero, interleaved=True, interleave_batch=bad)
