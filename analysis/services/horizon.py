"""The plan's part in an experiment's tests: where the always-valid test is tightest, and whether the
fixed-horizon test may be read yet.

- N*: the always-valid test of control against a treatment is tightest at `n_star` users of those two
  arms: their planned users when the experiment has planning fields (``services.plans.experiment_plan``,
  ``planning.planned_arm_users``), else the engine's default; the source says which ("plan" or
  "default"). The test is valid for any N*; N* only moves where it has the most power.
- The horizon: under ``fixed_horizon`` the verdict is "not enough data" until each arm has its planned
  users, unless a product manager recorded an early read (``override``). An imported experiment's log is
  complete: its horizon is the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from analysis.models import ArmRollup
from analysis.results_types import Override
from engine.planning import Plan, planned_arm_users
from engine.stats import StatisticError
from engine.stats.sequential import DEFAULT_N_STAR
from experiments.models import Arm, Experiment, VerdictOverride
from experiments.services.plans import experiment_plan

NStar = tuple[float, str]  # (N*, where it comes from: "plan" or "default")
NO_PLAN: NStar = (DEFAULT_N_STAR, "default")  # the engine's default N*

_NOT_GIVEN: Any = object()


class Horizon(NamedTuple):
    """Whether a treatment's fixed-horizon test may be read, why not, and whether its arms are short of a plan."""

    reached: bool
    note: str
    behind_plan: bool


NOT_REACHED = Horizon(False, "", False)


def planned_users(plan: Any, arms: list[Arm]) -> dict[int, int] | None:
    """Each arm's users when the A/B `plan` is met, or None without one (or when it can never be met)."""
    if not isinstance(plan, Plan):
        return None
    try:
        return {arm.pk: n for arm, n in zip(arms, planned_arm_users(plan, [arm.weight for arm in arms]), strict=True)}
    except StatisticError:
        return None


def sequential_n_stars(experiment: Experiment, arms: list[Arm], plan: Any = _NOT_GIVEN) -> dict[int, NStar]:
    """(N*, source) of each treatment arm's always-valid test against the control, by the arm's pk.

    N* is the total users of the two arms at which the test is tightest: with source "plan", their
    users when the experiment's own plan is met (`planned_arm_users` for the arms' weights), when its
    planning fields give a plan; else, source "default", the engine's DEFAULT_N_STAR (also when the
    plan can never be met: an arm with weight 0). {} without a control. `plan`: the experiment's plan
    when the caller has it.
    """
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    treatments = [arm for arm in arms if arm.pk != control.pk]
    users = planned_users(experiment_plan(experiment) if plan is _NOT_GIVEN else plan, arms) if treatments else None
    if users is None:
        return dict.fromkeys((arm.pk for arm in treatments), NO_PLAN)
    return {arm.pk: (float(users[control.pk] + users[arm.pk]), "plan") for arm in treatments}


def horizons(experiment: Experiment, plan: Any, arms: list[Arm], row_of: Mapping[int, ArmRollup]) -> dict[int, Horizon]:
    """Per treatment arm: whether the fixed-horizon test may be read (both arms at their planned users),
    and if not, why. An imported experiment's log is complete: its horizon is the data."""
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    treatments = [arm for arm in arms if arm.pk != control.pk]
    if experiment.source == Experiment.Source.IMPORTED:
        return dict.fromkeys((arm.pk for arm in treatments), Horizon(True, "", False))
    planned = planned_users(plan, arms)
    if planned is None:
        note = ("the fixed-horizon test is read at the plan's sample size, and this experiment has no plan "
                "(set its baseline rate and minimum detectable effect)")  # fmt: skip
        return dict.fromkeys((arm.pk for arm in treatments), Horizon(False, note, False))
    out = {}
    for arm in treatments:
        have = min(int(row_of[control.pk].exposed_users), int(row_of[arm.pk].exposed_users))
        need = min(planned[control.pk], planned[arm.pk])
        reached = all(int(row_of[a.pk].exposed_users) >= planned[a.pk] for a in (control, arm))
        note = "" if reached else f"{have:,} of the {need:,} users per arm the plan needs"
        out[arm.pk] = Horizon(reached, note, not reached)
    return out


def early_read(experiment: Experiment) -> Override | None:
    """The product manager's early read of a fixed-horizon verdict, if one was recorded."""
    found = VerdictOverride.objects.filter(experiment=experiment).select_related("user").first()
    if found is None:
        return None
    return Override(by=found.user.username, reason=found.reason, at=found.at.isoformat())
