"""CUPED inputs from the platform's own pre-experiment data.

For an experiment served by the platform, the arms' data set holds what each shopper did
before the experiment started. The covariate of an exposed user is the number of that
user's interactions in the data set before `started_at` (0 for new shoppers); it predicts
their clicks and spend during the experiment, and CUPED removes the part of the metric's
variance it explains (Deng et al. 2013). Computing the sums means one grouped join of exposures,
user rollups and pre-period interactions (proportional to users, not events, but about a second
on the demo data): ``refresh_covariates`` runs it after each fold that changed something and
stores the sums in CupedRollup, and ``covariate_samples`` reads those few rows.
"""

from __future__ import annotations

from django.db import connection, transaction

from analysis.models import CupedRollup, UserRollup
from engine.stats import CovariateSample
from experiments.models import Experiment
from recommenders.models import Interaction
from serving.models import Exposure

# Metric -> the per-user expression (over the user rollup `u`) it averages.
CUPED_METRICS = {
    "clicks_per_user": "COALESCE(u.clicks, 0)",
    "revenue_per_user": "COALESCE(u.revenue, 0)",
}
_SUMS = ("n", "sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")


def experiment_dataset_id(experiment: Experiment) -> int | None:
    """The data set of the experiment's arms' variants (None for arms without one: an imported experiment)."""
    arm = experiment.arms.exclude(variant=None).select_related("variant").first()
    return arm.variant.dataset_id if arm is not None and arm.variant is not None else None


def shopper_id_sql(exposure: str) -> str:
    """SQL for the data set's user id of the user of the exposure aliased `exposure`: live users are
    themselves; simulated users are stored as "sim<run>:<shopper id>" (or "sim<run>.<replica>:<shopper
    id>"), and their history and attributes are the shopper's."""
    user = f"{exposure}.user_id"
    return f"CASE WHEN {exposure}.simulation_id IS NULL THEN {user} ELSE substr({user}, strpos({user}, ':') + 1) END"


def pre_period_sql(dataset: str = "%s", started_at: str = "%s") -> str:
    """SQL for (user_id, n): each user's interactions in the data set before the experiment started, the
    CUPED covariate. A user without a row is new to the shop (covariate 0); with one, returning. The two
    arguments are the query's placeholders for the data set id and the start time."""
    return (
        f"SELECT user_id, COUNT(*) AS n FROM {Interaction._meta.db_table} "
        f'WHERE dataset_id = {dataset} AND "timestamp" < {started_at} GROUP BY user_id'
    )


def refresh_covariates(experiment_id: int) -> int:
    """Recompute the experiment's CUPED sums per (arm, traffic kind, metric); returns the rows stored."""
    experiment = Experiment.objects.get(pk=experiment_id)
    if experiment.source != Experiment.Source.PLATFORM or experiment.started_at is None:
        return 0
    dataset_id = experiment_dataset_id(experiment)
    if dataset_id is None:
        return 0
    if not Interaction.objects.filter(dataset_id=dataset_id, timestamp__lt=experiment.started_at).exists():
        return 0
    x = "COALESCE(p.n, 0)"
    columns = ", ".join(f"SUM({y}), SUM({y} * {y}), SUM({y} * {x})" for y in CUPED_METRICS.values())
    sql = f"""
        SELECT x.arm_id, x.simulation_id IS NOT NULL, COUNT(*), SUM({x}), SUM({x} * {x}), {columns}
        FROM {Exposure._meta.db_table} x
        LEFT JOIN {UserRollup._meta.db_table} u ON u.experiment_id = x.experiment_id AND u.user_id = x.user_id
        LEFT JOIN ({pre_period_sql()}) p ON p.user_id = {shopper_id_sql("x")}
        WHERE x.experiment_id = %s
        GROUP BY 1, 2"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset_id, experiment.started_at, experiment.pk])
        rows = cursor.fetchall()
    stored = []
    for arm_id, simulated, n, sx, sxx, *per_metric in rows:
        for index, metric in enumerate(CUPED_METRICS):
            sy, syy, sxy = (float(v or 0) for v in per_metric[3 * index : 3 * index + 3])
            stored.append(CupedRollup(experiment_id=experiment_id, arm_id=arm_id, simulated=bool(simulated),
                                      metric=metric, n=int(n), sum_y=sy, sum_y2=syy, sum_x=float(sx or 0),
                                      sum_x2=float(sxx or 0), sum_xy=sxy))  # fmt: skip
    with transaction.atomic():
        CupedRollup.objects.filter(experiment_id=experiment_id).delete()
        CupedRollup.objects.bulk_create(stored)
    return len(stored)


def covariate_samples(experiment: Experiment, traffic: str = "all") -> dict[str, dict[int, CovariateSample]]:
    """{metric: {arm id: CovariateSample(n, sum_y, sum_y2, sum_x, sum_x2, sum_xy)}} from the stored sums
    (as of the last fold); empty when there is no pre-period.

    `traffic`: "live", "simulated" or "all" users (by whether their exposure is a simulation run's).
    """
    rows = CupedRollup.objects.filter(experiment=experiment)
    if traffic != "all":
        rows = rows.filter(simulated=traffic == "simulated")
    totals: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        into = totals.setdefault(row.metric, {}).setdefault(row.arm_id, [0.0] * len(_SUMS))
        for i, name in enumerate(_SUMS):
            into[i] += getattr(row, name)
    return {
        metric: {arm_id: CovariateSample(int(v[0]), *v[1:]) for arm_id, v in by_arm.items()}
        for metric, by_arm in totals.items()
    }
