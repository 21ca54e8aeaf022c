"""Each arm's users when an A/B plan is met (Django-free planning helpers)."""

from __future__ import annotations

import pytest

from engine.planning import plan_experiment, planned_arm_users
from engine.stats import InvalidParameterError

# Two proportions 0.30 -> 0.36 at alpha 0.05 and power 0.8: 963 users per arm (the report's test states it too).
BASELINE, MDE, N_PER_ARM = 0.3, 0.2, 963


def test_with_equal_weights_every_arm_has_the_plans_users_per_arm() -> None:
    plan = plan_experiment(BASELINE, MDE, weights=[1.0, 1.0, 1.0])
    assert plan.n_per_arm == N_PER_ARM
    assert planned_arm_users(plan, [1.0, 1.0, 1.0]) == (963, 963, 963)
    assert sum(planned_arm_users(plan, [0.5, 0.5, 0.5])) == plan.total_users  # only the ratios count


def test_with_unequal_weights_the_smallest_arm_sets_the_pace_and_the_others_get_more() -> None:
    plan = plan_experiment(BASELINE, MDE, weights=[2.0, 1.0, 0.5], daily_users=1_000)
    # The smallest arm (share 0.5 / 3.5) reaches 963 users after ceil(963 / (1000 x 0.5 / 3.5)) = 7 days;
    # by then the arm of weight 1 has twice as many, the arm of weight 2 four times as many.
    assert plan.days == 7
    assert planned_arm_users(plan, [2.0, 1.0, 0.5]) == (3_852, 1_926, 963)
    # 963 x 0.9 / 0.3 is 2,889.0000000000005 in floating point: rounded, not ceiled, to a whole user;
    # 963 / 0.7 = 1,375.71 is expected users, rounded too.
    assert planned_arm_users(plan_experiment(BASELINE, MDE, weights=[0.9, 0.3]), [0.9, 0.3]) == (2_889, 963)
    assert planned_arm_users(plan_experiment(BASELINE, MDE, weights=[1.0, 0.7]), [1.0, 0.7]) == (1_376, 963)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0, 0.0], "weight 0 never reaches"), ([1.0, 1.0, 1.0], "plan is for 2 arms, got 3 weights")],
)
def test_a_plan_that_cannot_be_met_is_refused(weights: list[float], message: str) -> None:
    plan = plan_experiment(BASELINE, MDE, weights=[1.0, 0.0])  # no daily users: the plan itself is accepted
    with pytest.raises(InvalidParameterError, match=message):
        planned_arm_users(plan, weights)
