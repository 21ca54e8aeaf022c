"""How many shoppers a simulation of an experiment has, and whether they are enough for its plan.

The simulated shoppers are the arms' data set's eligible users (`Shoppers.build`): those with an
interaction before its hold-out time and one at or after it. An experiment planned for more users
than that cannot reach its planned power on simulated traffic, however long it runs: the shoppers
come back, but their differences stay. `SimulationConfig.population_scale` makes the shop larger;
the experiment page says which scale the plan needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db.models import Max, Min

from engine.planning import Plan
from engine.simulation.config import MAX_POPULATION_SCALE
from experiments.models import Experiment
from experiments.services.plans import experiment_plan
from recommenders.models import Dataset, Interaction


@dataclass(frozen=True)
class PopulationAdvice:
    """`shoppers`: the data set's eligible shoppers. `plan_users`: the users the experiment's plan needs
    in all (None without an A/B or bandit plan). `scale`: the smallest population scale whose shoppers
    reach the plan (1 when the data set is large enough; None when no scale up to the maximum does)."""

    shoppers: int
    plan_users: int | None
    scale: int | None

    @property
    def largest(self) -> int:
        """Shoppers at the largest population scale."""
        return self.shoppers * MAX_POPULATION_SCALE


@lru_cache(maxsize=64)
def _eligible(dataset_id: int, holdout_from: datetime) -> int:
    # Imported data sets do not change, so (id, hold-out time) identifies the answer.
    users = (
        Interaction.objects.filter(dataset_id=dataset_id)
        .values("user_id")
        .annotate(first=Min("timestamp"), last=Max("timestamp"))
        .filter(first__lt=holdout_from, last__gte=holdout_from)
    )
    return users.count()


def eligible_shoppers(dataset: Dataset) -> int:
    """Users of `dataset` with an interaction before its hold-out time and one at or after it (0 without one)."""
    if dataset.holdout_from is None:
        return 0
    return _eligible(dataset.pk, dataset.holdout_from)


def population_advice(experiment: Experiment) -> PopulationAdvice | None:
    """The simulated population of `experiment` against its plan; None when it has no variant's data set."""
    arm = experiment.arms.exclude(variant=None).select_related("variant__dataset").first()
    if arm is None or arm.variant is None:
        return None
    shoppers = eligible_shoppers(arm.variant.dataset)
    plan = experiment_plan(experiment)
    if not isinstance(plan, Plan) or shoppers == 0:
        return PopulationAdvice(shoppers=shoppers, plan_users=None, scale=None)
    scale = max(1, math.ceil(plan.total_users / shoppers))
    return PopulationAdvice(shoppers, plan.total_users, scale if scale <= MAX_POPULATION_SCALE else None)
