"""Experiment planning: how many users, and how many days, an experiment needs (Django-free).

The product manager gives the primary metric's baseline rate, the smallest relative lift worth
detecting, the users expected per day and the share of them that enters the experiment:

    n_per_arm   = sample_size_proportions(baseline, mde, alpha, power)   (two-sided, Cohen's h)
    total_users = n_per_arm x arms       (every arm must reach n; equal weights assumed)
    days        = ceil(total_users / (daily_users x traffic_percent / 100))

With unequal weights the smallest arm sets the pace; ``days`` then uses the smallest arm's share, and
by then arm i has n_per_arm x w_i / min(w) users (``planned_arm_users``).

Interleaving experiments are planned in sessions instead (``plan_interleaving``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.interleaving import InterleavingError, sessions_for_power
from engine.stats import InvalidParameterError, sample_size_proportions


@dataclass(frozen=True, slots=True)
class Plan:
    baseline: float
    mde_relative: float
    treatment_rate: float
    alpha: float
    power: float
    arms: int
    n_per_arm: int
    total_users: int
    daily_users: int | None
    traffic_percent: float
    days: int | None  # None without a daily-users estimate


def plan_experiment(
    baseline: float,
    mde_relative: float,
    *,
    weights: Sequence[float] = (1.0, 1.0),
    daily_users: int | None = None,
    traffic_percent: float = 100.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Plan:
    """The users and days needed (formulas in the module docstring); raises StatisticError on bad input."""
    if len(weights) < 2 or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InvalidParameterError("give at least two arms with non-negative weights that sum to more than 0")
    if not 0 < traffic_percent <= 100:
        raise InvalidParameterError(f"traffic_percent must lie in (0, 100], got {traffic_percent}")
    if daily_users is not None and daily_users < 1:
        raise InvalidParameterError(f"daily_users must be at least 1, got {daily_users}")
    size = sample_size_proportions(baseline, mde_relative, alpha=alpha, power=power)
    smallest_share = min(weights) / sum(weights)
    days = None
    if daily_users is not None:
        if smallest_share == 0:
            raise InvalidParameterError("an arm with weight 0 never reaches its sample size")
        days = math.ceil(size.n_per_arm / (daily_users * traffic_percent / 100 * smallest_share))
    return Plan(
        baseline=size.baseline, mde_relative=size.mde_relative, treatment_rate=size.treatment_rate,
        alpha=size.alpha, power=size.power, arms=len(weights), n_per_arm=size.n_per_arm,
        total_users=size.n_per_arm * len(weights), daily_users=daily_users, traffic_percent=traffic_percent,
        days=days,
    )  # fmt: skip


def planned_arm_users(plan: Plan, weights: Sequence[float]) -> tuple[int, ...]:
    """Each arm's users when the plan is met, for the arms' `weights` (those the plan was made with).

    The traffic is split by weight and the experiment runs until its smallest arm has `plan.n_per_arm`
    users (what `days` counts), so arm i then has n_per_arm x w_i / min(w), rounded to a whole user;
    with equal weights every arm has n_per_arm. Raises InvalidParameterError when the number of weights
    is not the plan's number of arms, or an arm has weight 0 (it never reaches the plan).
    """
    if len(weights) != plan.arms:
        raise InvalidParameterError(f"the plan is for {plan.arms} arms, got {len(weights)} weights")
    smallest = min(weights)
    if not smallest > 0:
        raise InvalidParameterError("an arm with weight 0 never reaches its sample size")
    return tuple(round(plan.n_per_arm * weight / smallest) for weight in weights)


@dataclass(frozen=True, slots=True)
class InterleavingPlan:
    """Sessions (served interleaved lists) an interleaving experiment needs; see `plan_interleaving`."""

    baseline: float
    mde_relative: float
    alpha: float
    power: float
    share_b: float
    sessions: int
    decided: int
    daily_users: int | None
    traffic_percent: float
    days: int | None


def plan_interleaving(
    baseline: float,
    mde_relative: float,
    *,
    daily_users: int | None = None,
    traffic_percent: float = 100.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> InterleavingPlan:
    """Sessions for the sign test of an interleaving experiment (`interleaving.sessions_for_power`).

    Interleaving is planned in sessions, not users per arm: every exposed request shows both arms.
    The inputs are read as: `baseline` = the share of sessions with a click, `mde_relative` = how
    much more B's items attract clicks than A's in the same slots. With one deciding click per
    clicked session, A wins a session with p_A = baseline / (2 + mde) and B with
    p_B = baseline (1 + mde) / (2 + mde) (the rest tie), so B's share of decided sessions is
    (1 + mde) / (2 + mde). days = ceil(sessions / (daily_users x traffic_percent / 100)), counting one
    session per user and day (users who come back make it shorter). Raises StatisticError on bad input.
    """
    if not 0 < traffic_percent <= 100:
        raise InvalidParameterError(f"traffic_percent must lie in (0, 100], got {traffic_percent}")
    if daily_users is not None and daily_users < 1:
        raise InvalidParameterError(f"daily_users must be at least 1, got {daily_users}")
    if not (0 < baseline < 1 and mde_relative > 0):
        raise InvalidParameterError(
            "for interleaving give the share of sessions with a click (strictly between 0 and 1) and a positive "
            f"relative effect; got {baseline} and {mde_relative}"
        )
    try:
        size = sessions_for_power(baseline / (2 + mde_relative), baseline * (1 + mde_relative) / (2 + mde_relative),
                                  alpha=alpha, power=power)  # fmt: skip
    except InterleavingError as error:
        raise InvalidParameterError(str(error)) from None
    days = math.ceil(size.sessions / (daily_users * traffic_percent / 100)) if daily_users is not None else None
    return InterleavingPlan(
        baseline=baseline, mde_relative=mde_relative, alpha=alpha, power=power, share_b=1 - size.share_a,
        sessions=size.sessions, decided=size.decided, daily_users=daily_users, traffic_percent=traffic_percent,
        days=days,
    )  # fmt: skip
