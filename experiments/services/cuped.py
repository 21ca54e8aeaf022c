"""CUPED inputs from the platform's own pre-experiment data.

For an experiment served by the platform, the arms' data set holds what each shopper did
before the experiment started. The covariate of an exposed user is the number of that
user's interactions in the data set before `started_at` (0 for new shoppers); it predicts
their clicks and spend during the experiment, and CUPED removes the part of the metric's
variance it explains (Deng et al. 2013). Reading it means one grouped join of exposures,
user rollups and pre-period interactions: proportional to users, not events.
"""

from __future__ import annotations

from django.db import connection

from experiments.models import Experiment, Exposure, UserRollup
from experiments.stats import CovariateSample
from recommenders.models import Interaction

_TRAFFIC_SQL = {
    "all": "",
    "live": "AND x.simulation_id IS NULL",
    "simulated": "AND x.simulation_id IS NOT NULL",
}
# Metric -> the per-user expression (over the user rollup `u`) it averages.
CUPED_METRICS = {
    "clicks_per_user": "COALESCE(u.clicks, 0)",
    "revenue_per_user": "COALESCE(u.revenue, 0)",
}


def covariate_samples(experiment: Experiment, traffic: str = "all") -> dict[str, dict[int, CovariateSample]]:
    """{metric: {arm id: CovariateSample(n, sum_y, sum_y2, sum_x, sum_x2, sum_xy)}}; empty when no pre-period.

    `traffic`: "live", "simulated" or "all" users (by whether their exposure is a simulation run's).
    """
    if experiment.source != Experiment.Source.PLATFORM or experiment.started_at is None:
        return {}
    arm = experiment.arms.exclude(variant=None).select_related("variant").first()
    if arm is None or arm.variant is None:
        return {}
    dataset_id = arm.variant.dataset_id
    if not Interaction.objects.filter(dataset_id=dataset_id, timestamp__lt=experiment.started_at).exists():
        return {}
    # Simulated users are stored as "sim<run>:<shopper id>"; their history is the shopper's.
    position = "strpos(x.user_id, ':')" if connection.vendor == "postgresql" else "instr(x.user_id, ':')"
    shopper_id = f"CASE WHEN x.simulation_id IS NULL THEN x.user_id ELSE substr(x.user_id, {position} + 1) END"
    samples: dict[str, dict[int, CovariateSample]] = {}
    for metric, y in CUPED_METRICS.items():
        sql = f"""
            SELECT x.arm_id, COUNT(*), SUM({y}), SUM({y} * {y}),
                   SUM(COALESCE(p.n, 0)), SUM(COALESCE(p.n, 0) * COALESCE(p.n, 0)), SUM({y} * COALESCE(p.n, 0))
            FROM {Exposure._meta.db_table} x
            LEFT JOIN {UserRollup._meta.db_table} u ON u.experiment_id = x.experiment_id AND u.user_id = x.user_id
            LEFT JOIN (
                SELECT user_id, COUNT(*) AS n FROM {Interaction._meta.db_table}
                WHERE dataset_id = %s AND "timestamp" < %s GROUP BY user_id
            ) p ON p.user_id = {shopper_id}
            WHERE x.experiment_id = %s {_TRAFFIC_SQL[traffic]}
            GROUP BY x.arm_id"""
        with connection.cursor() as cursor:
            cursor.execute(sql, [dataset_id, experiment.started_at, experiment.pk])
            rows = cursor.fetchall()
        samples[metric] = {
            arm_id: CovariateSample(int(n), *(float(v or 0) for v in (sy, syy, sx, sxx, sxy)))
            for arm_id, n, sy, syy, sx, sxx, sxy in rows
        }
    return samples
