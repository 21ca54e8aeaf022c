"""An experiment's results broken down by one user attribute: exploratory segments, never a verdict.

``segment_results(experiment, dimension)`` splits the exposed users by `dimension` and compares each
treatment with the control inside every segment, on the primary metric and every other metric of
``arm_metrics.METRICS``, with the test the results use (the experiment's analysis method,
``verdicts.relative_interval``) on the relative difference: the lift t / c - 1 with its interval and
p-value from that one test. The sufficient statistics of an (arm, segment) are built by
``arm_metrics.statistic``, so the metrics mean here exactly what they mean on the results page. Units
are exposed users; users without events count as zeros.

Dimensions (``DIMENSIONS``; ``DEFINITIONS`` says the same in words for the pages):

    country       the user's `country` attribute in the experiment's data set (UserAttribute, stored by
                  the Online Retail importer); "unknown" without one. Countries with fewer than
                  `min_users` exposed users (all arms together) are folded into "other".
    user_type     "new": no interaction in the data set before the experiment's started_at; "returning":
                  at least one. The rule of the CUPED covariate (``cuped.pre_period_sql``).
    session_type  "search": at least one request served in this experiment carried a non-blank query;
                  "browse": none.

The experiment's data set is its arms' variants' (``cuped.experiment_dataset_id``). Simulated users
("sim<run>:<shopper id>", "sim<run>.<replica>:<shopper id>") have the attributes and history of their
shopper (``cuped.shopper_id_sql``); their served requests are their own.

Multiple testing: per metric, the p-values of every segment x treatment arm form one Holm family
(``p_value_adjusted``). Segments are chosen after the fact and each is a fraction of the sample, so the
breakdown carries ``NOTE``: it points at where to look next, it decides nothing.

Why `min_users` = 100 (``MIN_SEGMENT_USERS``): below about 50 users per arm (of a 50/50 split) the
normal approximations behind the intervals are poor and the intervals so wide they say nothing, while
every extra segment makes Holm stricter for all the others. Folding the small countries keeps their users
counted (the segments' users add up to the experiment's) without a row of noise each.

One set-based statement per call (``_segment_rows``): exposures (up to the rollups' exposure watermark,
so the users are those of the results page) LEFT JOIN user rollups LEFT JOIN the dimension's attribute,
grouped by arm and segment, the small segments folded by a window over those groups. As of the last fold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.db import connection

from analysis.models import ArmRollup, RollupState, UserRollup
from analysis.services.arm_metrics import METRICS, statistic, traffic_filter
from analysis.services.cuped import experiment_dataset_id, pre_period_sql, shopper_id_sql
from engine.stats import StatisticError, adjust_pvalues
from engine.verdicts import TESTS, relative_interval
from experiments.models import Arm, Experiment
from experiments.services.bandit_schedule import is_bandit
from recommenders.models import UserAttribute
from serving.models import Exposure, ServedRequest

DIMENSIONS = {"country": "Country", "user_type": "New vs returning", "session_type": "Search vs browse"}
MIN_SEGMENT_USERS = 100
OTHER, UNKNOWN = "other", "unknown"
DEFINITIONS = {
    "country": "the user's country in the experiment's data set (simulated shoppers: their shopper's); "
    f"'{UNKNOWN}' when the data set has none for the user; countries with fewer exposed users than the "
    f"threshold are counted together as '{OTHER}'",
    "user_type": "new: no interaction in the experiment's data set before it started; returning: at least one "
    "(the same rule as the CUPED covariate)",
    "session_type": "search: at least one request served to the user in this experiment carried a text query; "
    "browse: none. Measured during the experiment: if an arm changes how often users search, its segments "
    "hold different users than the control's",
}
NOTE = (
    "Exploratory, not a verdict: segments were not pre-registered and each holds a fraction of the users, so a "
    "lift in one segment is a lead for a new experiment, not a result. p-values are Holm-adjusted across the "
    "segments (and treatment arms) of each metric; the experiment's verdict is on its results page."
)
_ORDER_LAST = (OTHER, UNKNOWN)


@dataclass(frozen=True)
class SegmentLift:
    """One arm of one segment on one metric: its users and, for a treatment, the relative lift against the
    segment's control users (effect = t / c - 1) with the interval and p-value of the metric's test and the
    Holm-adjusted p-value. `error` says why a treatment could not be tested (too few users, no variance)."""

    segment: str
    arm: str
    is_control: bool
    users: int
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class MetricSegments:
    """One metric's rows, segment by segment and arm by arm; `test` names the engine's test behind them."""

    metric: str
    primary: bool
    test: str
    rows: tuple[SegmentLift, ...]


@dataclass(frozen=True)
class Segment:
    """A segment and its exposed users over all arms; `members` are the values counted in it (the small
    countries of "other"; the segment's own name otherwise)."""

    name: str
    users: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class SegmentBreakdown:
    """The experiment's results by segment of `dimension`; `empty_reason` says why there is nothing to show
    (no traffic yet, no attribute data, a design without per-arm users), and then both tuples are empty."""

    experiment: str
    dimension: str
    dimension_label: str
    definition: str
    traffic: str
    primary_metric: str
    alpha: float
    confidence: float
    min_users: int
    note: str
    segments: tuple[Segment, ...]
    metrics: tuple[MetricSegments, ...]
    warnings: tuple[str, ...] = ()
    empty_reason: str | None = None


# ArmRollup's per-arm sums over users, from each exposed user's totals (zeros without a user rollup).
_PER_USER = {name: f"COALESCE(u.{name}, 0)" for name in ("impressions", "clicks", "add_to_carts", "purchases",
                                                          "revenue")}  # fmt: skip
_SUMS = {
    "exposed_users": "COUNT(*)",
    "active_users": "COUNT(u.id)",
    **{name: f"SUM({value})" for name, value in _PER_USER.items()},
    "impressions_sq": "SUM({impressions} * {impressions})",
    "clicks_sq": "SUM({clicks} * {clicks})",
    "clicks_x_impressions": "SUM({clicks} * {impressions})",
    "revenue_sq": "SUM({revenue} * {revenue})",
    "clickers": "COUNT(*) FILTER (WHERE {clicks} > 0)",
    "adders": "COUNT(*) FILTER (WHERE {add_to_carts} > 0)",
    "purchasers": "COUNT(*) FILTER (WHERE {purchases} > 0)",
}


def _source(experiment: Experiment, dimension: str) -> tuple[str, str, dict[str, Any]] | str:
    """(JOIN clause, segment expression, parameters) of `dimension` over the exposures `x`, or the reason
    why the experiment's users have no such attribute."""
    if dimension == "session_type":
        searchers = (f"SELECT DISTINCT user_id FROM {ServedRequest._meta.db_table} "
                     "WHERE experiment_id = %(experiment)s AND btrim(query) <> ''")  # fmt: skip
        return (f"LEFT JOIN ({searchers}) s ON s.user_id = x.user_id",
                "CASE WHEN s.user_id IS NULL THEN 'browse' ELSE 'search' END", {})  # fmt: skip
    dataset_id = experiment_dataset_id(experiment)
    if dataset_id is None:
        return "the experiment's arms have no data set (an imported experiment), so its users have no attributes"
    shopper = shopper_id_sql("x")
    if dimension == "country":
        join = (f"LEFT JOIN {UserAttribute._meta.db_table} a ON a.dataset_id = %(dataset)s "
                f"AND a.name = %(attribute)s AND a.user_id = {shopper}")  # fmt: skip
        return join, f"COALESCE(a.value, '{UNKNOWN}')", {"dataset": dataset_id, "attribute": UserAttribute.COUNTRY}
    if experiment.started_at is None:
        return "the experiment has not started, so no user is new or returning yet"
    join = f"LEFT JOIN ({pre_period_sql('%(dataset)s', '%(started_at)s')}) p ON p.user_id = {shopper}"
    return (join, "CASE WHEN p.n > 0 THEN 'returning' ELSE 'new' END",
            {"dataset": dataset_id, "started_at": experiment.started_at})  # fmt: skip


def _segment_rows(
    experiment: Experiment, source: tuple[str, str, dict[str, Any]], traffic: str, fold_below: int
) -> list[tuple[int, str, list[str], ArmRollup]]:
    """(arm id, segment, values counted in it, the arm's statistics over the segment's users) per arm and
    segment, in one statement. Segments other than "unknown" with fewer than `fold_below` users (0: none)
    become "other"."""
    join, segment, params = source
    simulated = traffic_filter(traffic).get("simulated")
    traffic_sql = "" if simulated is None else f"AND x.simulation_id IS {'NOT ' if simulated else ''}NULL"
    sums = {name: sql.format(**_PER_USER) for name, sql in _SUMS.items()}
    sql = f"""
        WITH g AS (
            SELECT x.arm_id, {segment} AS segment, {", ".join(f"{sql} AS {name}" for name, sql in sums.items())}
            FROM {Exposure._meta.db_table} x
            LEFT JOIN {UserRollup._meta.db_table} u ON u.experiment_id = x.experiment_id AND u.user_id = x.user_id
            {join}
            WHERE x.experiment_id = %(experiment)s {traffic_sql}
              AND x.id <= (SELECT COALESCE(MAX(exposure_watermark), 0) FROM {RollupState._meta.db_table}
                           WHERE experiment_id = %(experiment)s)
            GROUP BY 1, 2
        ), shown AS (
            SELECT g.*, CASE WHEN segment <> '{UNKNOWN}' AND SUM(exposed_users) OVER (PARTITION BY segment)
                                  < %(fold_below)s THEN '{OTHER}' ELSE segment END AS shown
            FROM g
        )
        SELECT arm_id, shown, array_agg(DISTINCT segment ORDER BY segment), {", ".join(f"SUM({n})" for n in sums)}
        FROM shown GROUP BY 1, 2"""
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "experiment": experiment.pk, "fold_below": fold_below})
        rows = cursor.fetchall()
    return [(arm_id, name, members, ArmRollup(**dict(zip(sums, values, strict=True))))
            for arm_id, name, members, *values in rows]  # fmt: skip


def segment_results(
    experiment: Experiment, dimension: str, *, traffic: str = "all", min_users: int = MIN_SEGMENT_USERS
) -> SegmentBreakdown:
    """The experiment's results by segment of `dimension` (one of DIMENSIONS) over `traffic` ("all", "live"
    or "simulated" users), as of the last fold. Countries with fewer than `min_users` exposed users are
    counted together as "other". Raises ValueError for an unknown dimension or traffic."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}, got {dimension!r}")
    traffic_filter(traffic)
    metrics = (experiment.primary_metric, *(m for m in METRICS if m != experiment.primary_metric))
    empty = SegmentBreakdown(
        experiment=experiment.key, dimension=dimension, dimension_label=DIMENSIONS[dimension],
        definition=DEFINITIONS[dimension], traffic=traffic, primary_metric=experiment.primary_metric,
        alpha=experiment.alpha, confidence=1 - experiment.alpha, min_users=min_users, note=NOTE, segments=(),
        metrics=(),
    )  # fmt: skip
    if experiment.design == Experiment.Design.INTERLEAVING:
        return replace(empty, empty_reason="every user of an interleaving experiment sees both arms: there are no "
                                           "per-arm users to break down")  # fmt: skip
    arms = list(experiment.arms.order_by("position", "pk"))
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return replace(empty, empty_reason="the experiment has no control arm: nothing to compare against")
    source = _source(experiment, dimension)
    if isinstance(source, str):
        return replace(empty, empty_reason=source)
    rows = _segment_rows(experiment, source, traffic, min_users if dimension == "country" else 0)
    if not rows:
        return replace(empty, empty_reason="no exposed users have been counted yet (results are as of the last fold)")
    if all(name == UNKNOWN for _, name, _, _ in rows):
        users = sum(int(row.exposed_users) for *_, row in rows)
        reason = (f"none of the {users:,} exposed users has a {dimension} in the experiment's data set (only the "
                  "Online Retail importer stores one)")  # fmt: skip
        return replace(empty, empty_reason=reason)
    segments = _segments(rows)
    by_segment: dict[str, dict[int, ArmRollup]] = {}
    for arm_id, name, _, row in rows:
        by_segment.setdefault(name, {})[arm_id] = row
    warnings: tuple[str, ...] = ()
    if is_bandit(experiment):
        warnings = ("bandit experiment: the arms' weights changed over time, so these pooled per-segment "
                    "comparisons are biased and descriptive only",)  # fmt: skip
    return replace(empty, segments=segments, warnings=warnings, metrics=tuple(
        _metric(experiment, metric, segments, by_segment, arms, control) for metric in metrics))  # fmt: skip


def _segments(rows: list[tuple[int, str, list[str], ArmRollup]]) -> tuple[Segment, ...]:
    """The segments, largest first, "other" and "unknown" last."""
    users: dict[str, int] = {}
    members: dict[str, set[str]] = {}
    for _, name, values, row in rows:
        users[name] = users.get(name, 0) + int(row.exposed_users)
        members.setdefault(name, set()).update(values)
    last = {name: i for i, name in enumerate(_ORDER_LAST, start=1)}
    order = sorted(users, key=lambda name: (last.get(name, 0), -users[name], name))
    return tuple(Segment(name, users[name], tuple(sorted(members[name]))) for name in order)


def _metric(
    experiment: Experiment,
    metric: str,
    segments: tuple[Segment, ...],
    by_segment: dict[str, dict[int, ArmRollup]],
    arms: list[Arm],
    control: Arm,
) -> MetricSegments:
    """Every arm of every segment on `metric`, the treatments' p-values Holm-adjusted together."""
    method = experiment.analysis_method
    rows: list[SegmentLift] = []
    for segment in segments:
        stats = by_segment[segment.name]
        for arm in arms:
            row = stats.get(arm.pk, ArmRollup())
            lift = SegmentLift(segment.name, arm.name, arm.is_control, int(row.exposed_users))
            if not arm.is_control:
                lift = _lift(lift, method, metric, stats.get(control.pk, ArmRollup()), row, experiment.alpha)
            rows.append(lift)
    tested = {i: row.p_value for i, row in enumerate(rows) if row.p_value is not None}
    if tested:
        holm = adjust_pvalues(list(tested.values()), "holm", experiment.alpha)
        for i, adjusted in zip(tested, holm.adjusted, strict=True):
            rows[i] = replace(rows[i], p_value_adjusted=adjusted)
    return MetricSegments(metric, metric == experiment.primary_metric, TESTS[method], tuple(rows))


def _lift(lift: SegmentLift, method: str, metric: str, control: ArmRollup, treatment: ArmRollup,
          alpha: float) -> SegmentLift:  # fmt: skip
    """`lift` with the relative difference of `treatment` against `control` on `metric` by the experiment's
    analysis method (the results' test), or the engine's reason for refusing it."""
    try:
        result = relative_interval(statistic(metric, control), statistic(metric, treatment), method=method,
                                   alpha=alpha)  # fmt: skip
    except StatisticError as error:
        return replace(lift, error=f"not enough data in this segment: {error}")
    return replace(lift, effect=result.effect, ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value)
