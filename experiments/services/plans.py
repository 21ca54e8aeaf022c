"""An experiment's own plan, from its planning fields (pages, the report and the interleaving results read it)."""

from __future__ import annotations

from engine.planning import InterleavingPlan, Plan, plan_experiment, plan_interleaving
from engine.stats import StatisticError
from experiments.models import Experiment


def experiment_plan(experiment: Experiment) -> Plan | InterleavingPlan | None:
    """The experiment's own plan from its planning fields (an InterleavingPlan for an interleaving
    experiment), or None when they are incomplete or impossible."""
    if not experiment.baseline_rate or not experiment.minimum_detectable_effect:
        return None
    if experiment.design == Experiment.Design.INTERLEAVING:
        try:
            return plan_interleaving(
                experiment.baseline_rate, experiment.minimum_detectable_effect,
                daily_users=experiment.expected_daily_users, traffic_percent=experiment.traffic_percent or 100.0,
                alpha=experiment.alpha, power=experiment.power,
            )  # fmt: skip
        except StatisticError:
            return None
    weights = [arm.weight for arm in experiment.arms.all()] or [1.0, 1.0]
    try:
        return plan_experiment(
            experiment.baseline_rate, experiment.minimum_detectable_effect, weights=weights,
            daily_users=experiment.expected_daily_users, traffic_percent=experiment.traffic_percent or 100.0,
            alpha=experiment.alpha, power=experiment.power,
        )  # fmt: skip
    except StatisticError:
        return None
