"""Rollups: fold an experiment's raw events, incrementally and idempotently, into a few small tables.

Analysis never scans events. Four tables, all keyed by experiment:

- ``UserRollup(arm, user_id)``: each exposed user's cumulative impressions, clicks, add-to-carts,
  purchases and revenue.
- ``ArmRollup(arm, simulated)``: the per-arm sufficient statistics over users that the statistics engine
  needs: exposed users, sums, sums of squares (impressions, clicks, revenue), the clicks x
  impressions cross product (delta-method CTR with users as units), and how many users clicked,
  added to cart, purchased at least once.
- ``DailyRollup(arm, day, simulated)``: per UTC day, event totals (by the event's timestamp), new users
  (by first exposure), and the day's increments of the ArmRollup statistics, for charts and for
  the lift over time (the statistics as of the end of each day).
- ``RollupState``: the watermarks (last event id and last exposure id folded) and counters.

Choice against the suggested design (sums of squares aggregated over UserRollup at read time):
ArmRollup is kept up to date by each fold from the users' *previous* totals, since
(old + d)^2 - old^2 = d (d + 2 old) and (c + dc)(i + di) - c i = dc i + di c + dc di. So results read
O(arms + arms x days) rows whatever the traffic (10 M events or 10 k), and a fold costs O(events
in the range), never O(users of the experiment).

Attribution: a user's events count in the arm of their Exposure (intention to treat: one user,
one arm, the unit of randomisation). ``Event.arm`` is not used: it is the same arm for exposed
users and can name the control for users outside the experiment (served control, never
exposed). Events of users without an exposure are counted as ``unattributed_events`` and skipped.

Traffic: ``simulated`` is true for users whose exposure belongs to a simulation run. A user is
live or simulated, never both, so an arm's two rows add up to its statistics over all users
(sums, squares and cross products are sums over users) and results can show live, simulated or
all traffic from the same rows.

The fold of one step, in one transaction with the experiment's RollupState row locked:

1. exposures with id in (exposure_watermark, upper_x]: add new users per arm, traffic and day;
2. events with id in (event_watermark, upper_e]: one scan, left-joined to exposures with
   id <= upper_x and grouped by (arm, traffic, user, day) into a temporary table (arm NULL:
   unattributed); from that small table: the event counts, the arm increments (computed against
   the users' previous UserRollup totals, so this statement runs before the next), the user
   totals (upsert-add), the per (arm, traffic, day) totals (``INSERT .. ON CONFLICT .. DO UPDATE
   SET x = t.x + excluded.x``);
3. move both watermarks.

A second fold finds empty ranges and changes nothing; a crash rolls the step back whole.

Concurrent writers: ids come from a sequence before commit, so an event with a lower id can
become visible after one with a higher id. A fold therefore stops before the first row received
less than ``FOLD_LAG`` ago (``received_at`` for events, ``first_exposed_at`` for exposures):
anything below the bound was inserted more than FOLD_LAG ago. Residual risk: a transaction
holding rows uncommitted for longer than FOLD_LAG (ingestion batches commit in milliseconds) has
them skipped for good, as has an event whose user's exposure is stored after the event is folded
(serving records the exposure before the shop can show anything); ``recompute`` repairs both.
Imports hold the RollupState lock while they write (see ``lock_state``), so a fold waits for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from analysis.models import ArmRollup, CupedRollup, DailyRollup, RollupState, UserRollup
from analysis.services.cuped import refresh_covariates
from analysis.services.fold_window import FOLD_CHUNK_IDS, FOLD_LAG, settled_upper
from analysis.services.interleaving_rollups import fold_sessions, reset_sessions
from experiments.models import Experiment
from serving.models import Event, Exposure

BULK_RANGE = 50_000  # event ids in one fold step above which its joins are forced to hash joins (see _fold_step)

_EVENT = Event._meta.db_table
_EXPOSURE = Exposure._meta.db_table
_USER = UserRollup._meta.db_table
_ARM = ArmRollup._meta.db_table
_DAILY = DailyRollup._meta.db_table
_STATE = RollupState._meta.db_table
_COUNTS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue")
_ARM_COLUMNS = ("exposed_users", "active_users", *_COUNTS, "impressions_sq", "clicks_sq", "clicks_x_impressions",
                "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip
_DAILY_COLUMNS = ("new_users", *_COUNTS)


@dataclass(frozen=True)
class FoldResult:
    experiment_id: int
    events: int  # events in the folded range (attributed + unattributed)
    unattributed: int
    exposures: int
    event_watermark: int
    exposure_watermark: int


def _day(column: str) -> str:
    """SQL for the UTC day of a stored timestamptz."""
    return f"(({column}) AT TIME ZONE 'UTC')::date"


def _add_all(table: str, columns: tuple[str, ...]) -> str:
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)


_DELTA = "rollup_delta"
_DELTA_COLUMNS = "arm_id, simulated, user_id, day, n, imp, clk, atc, pur, rev"


def _create_delta_sql() -> str:
    """A per-connection scratch table for one fold step's single pass over its event range."""
    return f"""
        CREATE TEMP TABLE IF NOT EXISTS {_DELTA} (
            arm_id BIGINT, simulated BOOLEAN, user_id VARCHAR(100), day DATE, n BIGINT,
            imp BIGINT, clk BIGINT, atc BIGINT, pur BIGINT, rev NUMERIC(18, 2))"""


def _fill_delta_sql() -> str:
    """The one scan of the range: per (arm, traffic, user, day) event totals; arm NULL = unattributed.

    Attribution through exposures folded so far (id <= the exposure bound); the traffic is
    simulated when the user's exposure belongs to a simulation run. Unattributed events are
    grouped under one empty user, as only their number matters.
    """
    return f"""
        INSERT INTO {_DELTA} ({_DELTA_COLUMNS})
        SELECT x.arm_id, x.simulation_id IS NOT NULL, CASE WHEN x.id IS NULL THEN '' ELSE e.user_id END,
               {_day('e."timestamp"')}, COUNT(*),
               SUM(CASE WHEN e.type = 'impression' THEN 1 ELSE 0 END),
               SUM(CASE WHEN e.type = 'click' THEN 1 ELSE 0 END),
               SUM(CASE WHEN e.type = 'add_to_cart' THEN 1 ELSE 0 END),
               SUM(CASE WHEN e.type = 'purchase' THEN 1 ELSE 0 END),
               COALESCE(SUM(e.revenue), 0)
        FROM {_EVENT} e
        LEFT JOIN {_EXPOSURE} x ON x.experiment_id = e.experiment_id AND x.user_id = e.user_id
                               AND x.id <= %(exposures)s
        WHERE e.experiment_id = %(experiment)s AND e.id > %(low)s AND e.id <= %(high)s
        GROUP BY 1, 2, 3, 4"""


# Per (arm, traffic, user) totals of the step, from the delta table.
_USER_DELTA = f"""
        SELECT arm_id, simulated, user_id, SUM(imp) AS imp, SUM(clk) AS clk, SUM(atc) AS atc, SUM(pur) AS pur,
               SUM(rev) AS rev
        FROM {_DELTA} WHERE arm_id IS NOT NULL GROUP BY arm_id, simulated, user_id"""


def _arm_events_sql() -> str:
    # Runs before the user upsert: u holds each user's totals before this fold step.
    return f"""
        INSERT INTO {_ARM} (experiment_id, arm_id, simulated, {", ".join(_ARM_COLUMNS)})
        SELECT %(experiment)s, d.arm_id, d.simulated, 0,
               SUM(CASE WHEN u.id IS NULL THEN 1 ELSE 0 END),
               SUM(d.imp), SUM(d.clk), SUM(d.atc), SUM(d.pur), SUM(d.rev),
               SUM(d.imp * (d.imp + 2 * COALESCE(u.impressions, 0))),
               SUM(d.clk * (d.clk + 2 * COALESCE(u.clicks, 0))),
               SUM(d.clk * COALESCE(u.impressions, 0) + d.imp * COALESCE(u.clicks, 0) + d.clk * d.imp),
               SUM(d.rev * (d.rev + 2 * COALESCE(u.revenue, 0))),
               SUM(CASE WHEN d.clk > 0 AND COALESCE(u.clicks, 0) = 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN d.atc > 0 AND COALESCE(u.add_to_carts, 0) = 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN d.pur > 0 AND COALESCE(u.purchases, 0) = 0 THEN 1 ELSE 0 END)
        FROM ({_USER_DELTA}) d
        LEFT JOIN {_USER} u ON u.experiment_id = %(experiment)s AND u.user_id = d.user_id
        WHERE 1 = 1
        GROUP BY d.arm_id, d.simulated
        ON CONFLICT (experiment_id, arm_id, simulated) DO UPDATE SET {_add_all(_ARM, _ARM_COLUMNS)}"""


def _user_events_sql() -> str:
    return f"""
        INSERT INTO {_USER} (experiment_id, arm_id, user_id, {", ".join(_COUNTS)})
        SELECT %(experiment)s, d.arm_id, d.user_id, d.imp, d.clk, d.atc, d.pur, d.rev
        FROM ({_USER_DELTA}) d
        WHERE 1 = 1
        ON CONFLICT (experiment_id, user_id) DO UPDATE SET {_add_all(_USER, _COUNTS)}"""


_DAILY_STATS = ("impressions_sq", "clicks_sq", "clicks_x_impressions", "revenue_sq", "clickers", "adders",
                "purchasers")  # fmt: skip


# A day's increments of the per-user statistics, from the day's totals (imp, clk, ...) and each user's
# totals before that day (p_imp, p_clk, ...): (p + d)^2 - p^2 = d (d + 2 p), and so on. The fold and the
# recompute both use it, in DailyRollup's _DAILY_STATS order.
_INCREMENTS = """SUM(imp * (imp + 2 * p_imp)) AS imp_sq, SUM(clk * (clk + 2 * p_clk)) AS clk_sq,
               SUM(clk * p_imp + imp * p_clk + clk * imp) AS clk_imp, SUM(rev * (rev + 2 * p_rev)) AS rev_sq,
               COUNT(*) FILTER (WHERE clk > 0 AND p_clk = 0) AS clickers,
               COUNT(*) FILTER (WHERE atc > 0 AND p_atc = 0) AS adders,
               COUNT(*) FILTER (WHERE pur > 0 AND p_pur = 0) AS purchasers"""


def _daily_events_sql() -> str:
    """Per (arm, traffic, day): the event totals, and the day's increments of the arm's per-user
    sufficient statistics (the same formulas as ``_arm_events_sql``, day by day).

    A user's totals before a day of this step are their UserRollup totals (before the step, so this
    runs before the user upsert) plus their earlier days in this step: a running sum over the
    user's days. Summed over all days the increments equal ArmRollup's exactly; summed up to day D
    they are the statistics as of the end of day D, for events that arrive in time order (an event
    folded after later days' events counts on its own day against the totals of its fold).
    """
    before = {name: f"COALESCE(u.{total}, 0) + SUM(d.{name}) OVER w - d.{name}"
              for name, total in (("imp", "impressions"), ("clk", "clicks"), ("atc", "add_to_carts"),
                                  ("pur", "purchases"), ("rev", "revenue"))}  # fmt: skip
    return f"""
        INSERT INTO {_DAILY} (experiment_id, arm_id, simulated, day, {", ".join(_DAILY_COLUMNS)},
                              {", ".join(_DAILY_STATS)})
        SELECT %(experiment)s, arm_id, simulated, day, 0, SUM(imp), SUM(clk), SUM(atc), SUM(pur), SUM(rev),
               {_INCREMENTS}
        FROM (
            SELECT d.arm_id, d.simulated, d.day, d.imp, d.clk, d.atc, d.pur, d.rev,
                   {before["imp"]} AS p_imp, {before["clk"]} AS p_clk, {before["atc"]} AS p_atc,
                   {before["pur"]} AS p_pur, {before["rev"]} AS p_rev
            FROM {_DELTA} d
            LEFT JOIN {_USER} u ON u.experiment_id = %(experiment)s AND u.user_id = d.user_id
            WHERE d.arm_id IS NOT NULL
            WINDOW w AS (PARTITION BY d.user_id ORDER BY d.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        ) t
        GROUP BY arm_id, simulated, day
        ON CONFLICT (experiment_id, arm_id, day, simulated)
        DO UPDATE SET {_add_all(_DAILY, (*_DAILY_COLUMNS, *_DAILY_STATS))}"""


def _exposure_sqls() -> tuple[str, str]:
    where = "x.experiment_id = %(experiment)s AND x.id > %(low)s AND x.id <= %(high)s"
    zeros = ", ".join(["0"] * (len(_ARM_COLUMNS) - 1))
    arm = f"""
        INSERT INTO {_ARM} (experiment_id, arm_id, simulated, {", ".join(_ARM_COLUMNS)})
        SELECT %(experiment)s, x.arm_id, x.simulation_id IS NOT NULL, COUNT(*), {zeros}
        FROM {_EXPOSURE} x WHERE {where} GROUP BY 2, 3
        ON CONFLICT (experiment_id, arm_id, simulated) DO UPDATE SET {_add_all(_ARM, _ARM_COLUMNS)}"""
    daily = f"""
        INSERT INTO {_DAILY} (experiment_id, arm_id, simulated, day, {", ".join((*_DAILY_COLUMNS, *_DAILY_STATS))})
        SELECT %(experiment)s, x.arm_id, x.simulation_id IS NOT NULL, {_day("x.first_exposed_at")},
               COUNT(*), {", ".join(["0"] * (len(_DAILY_COLUMNS) - 1 + len(_DAILY_STATS)))}
        FROM {_EXPOSURE} x WHERE {where} GROUP BY 2, 3, 4
        ON CONFLICT (experiment_id, arm_id, day, simulated) DO UPDATE SET {_add_all(_DAILY, _DAILY_COLUMNS)}"""
    return arm, daily


def lock_state(experiment_id: int) -> RollupState:
    """Create (if needed) and lock the experiment's RollupState row until the transaction ends.

    Must be called inside ``transaction.atomic``. The no-op UPDATE takes the row lock before any
    read, so two folds queue instead of both reading one watermark.
    """
    RollupState.objects.bulk_create([RollupState(experiment_id=experiment_id)], ignore_conflicts=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_STATE} SET event_watermark = event_watermark WHERE experiment_id = %s", [experiment_id]
        )
    return RollupState.objects.get(pk=experiment_id)


def _fold_step(experiment_id: int, cutoff: datetime, chunk: int) -> tuple[FoldResult, bool]:
    """Fold one chunk of events (and all settled exposures); returns the result and whether more is due."""
    with transaction.atomic(), connection.cursor() as cursor:
        state = lock_state(experiment_id)
        params: dict[str, Any] = {"experiment": experiment_id}
        upper_x = settled_upper(cursor, _EXPOSURE, "first_exposed_at", experiment_id, state.exposure_watermark, cutoff)
        exposures = 0
        if upper_x > state.exposure_watermark:
            params.update(low=state.exposure_watermark, high=upper_x)
            cursor.execute(f"SELECT COUNT(*) FROM {_EXPOSURE} x WHERE x.experiment_id = %(experiment)s "
                           "AND x.id > %(low)s AND x.id <= %(high)s", params)  # fmt: skip
            exposures = int(cursor.fetchone()[0])
            for sql in _exposure_sqls():
                cursor.execute(sql, params)
        settled = settled_upper(cursor, _EVENT, "received_at", experiment_id, state.event_watermark, cutoff)
        # Chunks count from the experiment's next event, not the watermark: ids are shared by all
        # experiments, so walking an empty id range in steps would be one transaction per step.
        cursor.execute(
            f"SELECT MIN(id) FROM {_EVENT} WHERE experiment_id = %s AND id > %s", [experiment_id, state.event_watermark]
        )
        following = cursor.fetchone()[0]
        upper_e = min(settled, (int(following) - 1 if following else state.event_watermark) + chunk)
        events = unattributed = 0
        if upper_e > state.event_watermark:
            params.update(low=state.event_watermark, high=upper_e, exposures=upper_x)
            if upper_e - state.event_watermark > BULK_RANGE:
                # Events copied in bulk a moment ago (a simulation, an import) are not in the planner's
                # statistics yet: it then expects one row, picks a nested loop over the experiment's
                # exposures per event, and the scan takes minutes instead of seconds (seen: 3+ min for
                # 436 k events). Large ranges are bulk work, where hash joins are right whatever the
                # estimates; small periodic folds keep their index lookups (cost O(events), not O(users)).
                cursor.execute("SET LOCAL enable_nestloop = off")
            cursor.execute(_create_delta_sql())
            cursor.execute(f"DELETE FROM {_DELTA}")
            cursor.execute(_fill_delta_sql(), params)
            cursor.execute(
                f"SELECT COALESCE(SUM(n), 0), COALESCE(SUM(CASE WHEN arm_id IS NULL THEN n ELSE 0 END), 0) "
                f"FROM {_DELTA}"
            )
            total, missing = cursor.fetchone()
            events, unattributed = int(total), int(missing)
            if events > unattributed:
                for sql in (
                    _arm_events_sql(),
                    _daily_events_sql(),
                    _user_events_sql(),
                ):  # users last: see _arm_events_sql
                    cursor.execute(sql, params)
        RollupState.objects.filter(pk=experiment_id).update(
            event_watermark=max(upper_e, state.event_watermark),
            exposure_watermark=upper_x,
            folded_events=state.folded_events + events - unattributed,
            unattributed_events=state.unattributed_events + unattributed,
            folded_at=timezone.now(),
        )
    result = FoldResult(experiment_id, events, unattributed, exposures, max(upper_e, state.event_watermark), upper_x)
    return result, settled > upper_e


def fold(experiment_id: int, *, lag: timedelta = FOLD_LAG, chunk: int = FOLD_CHUNK_IDS) -> FoldResult:
    """Fold the experiment's new events and exposures received more than `lag` ago (idempotent).

    Works in steps of at most `chunk` event ids, each its own transaction; returns the totals.
    """
    cutoff = timezone.now() - lag
    events = unattributed = exposures = 0
    while True:
        step, more = _fold_step(experiment_id, cutoff, chunk)
        events += step.events
        unattributed += step.unattributed
        exposures += step.exposures
        if not more:
            if events or exposures:
                refresh_covariates(experiment_id)  # CUPED's sums follow the rollups they join
            fold_sessions(experiment_id, lag=lag, chunk=chunk)  # a no-op unless the design is interleaving
            return FoldResult(experiment_id, events, unattributed, exposures, step.event_watermark,
                              step.exposure_watermark)  # fmt: skip


def _recompute_sql() -> str:
    """All of a recompute's rollup rows in one statement: one scan of the events, one sort, one window.

    ``g``: the events left-joined to their exposures, grouped per exposure (= user) and UTC day
    (unattributed events under a NULL exposure). ``w``: each user's days in order, with the user's
    totals before the day (a running sum) and whether it is the user's last day. From ``w``: the
    user totals (each user's last day plus what came before), the arm statistics (final totals:
    squares, cross products, users with at least one click, add-to-cart, purchase), and the daily
    increments (the same formulas as ``_daily_events_sql`` with no earlier fold); exposures give
    the arms' exposed users and each day's new users. Plain INSERTs into emptied tables: no
    upserts, no reads of earlier rollups. Returns (events, unattributed events, exposures).
    """
    counts = ", ".join(f"SUM({c}) AS {c}" for c in ("imp", "clk", "atc", "pur", "rev"))
    exposures = "x.experiment_id = %(experiment)s AND x.id <= %(exposures)s"
    previous = ", ".join(f"SUM({c}) OVER p - {c} AS p_{c}" for c in ("imp", "clk", "atc", "pur", "rev"))
    zero = "COALESCE({}, 0)"
    arm_stats = ", ".join(zero.format(f"a.{c}") for c in (
        "active", "imp", "clk", "atc", "pur", "rev", "imp_sq", "clk_sq", "clk_imp", "rev_sq", "clickers", "adders",
        "purchasers"))  # fmt: skip
    daily_stats = ", ".join(zero.format(f"d.{c}") for c in (
        "imp", "clk", "atc", "pur", "rev", "imp_sq", "clk_sq", "clk_imp", "rev_sq", "clickers", "adders",
        "purchasers"))  # fmt: skip
    return f"""
    WITH g AS (
        SELECT x.id AS xid, x.arm_id, x.simulation_id IS NOT NULL AS simulated, {_day('e."timestamp"')} AS day,
               COUNT(*)::int AS n, COUNT(*) FILTER (WHERE e.type = 'impression')::int AS imp,
               COUNT(*) FILTER (WHERE e.type = 'click')::int AS clk,
               COUNT(*) FILTER (WHERE e.type = 'add_to_cart')::int AS atc,
               COUNT(*) FILTER (WHERE e.type = 'purchase')::int AS pur, COALESCE(SUM(e.revenue), 0) AS rev
        FROM {_EVENT} e
        LEFT JOIN {_EXPOSURE} x ON x.experiment_id = e.experiment_id AND x.user_id = e.user_id
                               AND x.id <= %(exposures)s
        WHERE e.experiment_id = %(experiment)s AND e.id <= %(high)s
        GROUP BY x.id, 4
    ), w AS MATERIALIZED (
        SELECT xid, arm_id, simulated, day, n, imp, clk, atc, pur, rev, {previous},
               lead(day) OVER p IS NULL AS last
        FROM g
        WINDOW p AS (PARTITION BY xid ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ), users AS MATERIALIZED (
        SELECT xid, arm_id, simulated, p_imp + imp AS imp, p_clk + clk AS clk, p_atc + atc AS atc,
               p_pur + pur AS pur, p_rev + rev AS rev
        FROM w WHERE last AND xid IS NOT NULL
    ), exposed AS MATERIALIZED (
        SELECT x.arm_id, x.simulation_id IS NOT NULL AS simulated, {_day("x.first_exposed_at")} AS day,
               COUNT(*) AS n
        FROM {_EXPOSURE} x WHERE {exposures} GROUP BY 1, 2, 3
    ), user_rows AS (
        INSERT INTO {_USER} (experiment_id, arm_id, user_id, {", ".join(_COUNTS)})
        SELECT %(experiment)s, u.arm_id, x.user_id, u.imp, u.clk, u.atc, u.pur, u.rev
        FROM users u JOIN {_EXPOSURE} x ON x.id = u.xid
    ), arm_rows AS (
        INSERT INTO {_ARM} (experiment_id, arm_id, simulated, {", ".join(_ARM_COLUMNS)})
        SELECT %(experiment)s, arm_id, simulated, COALESCE(x.n, 0), {arm_stats}
        FROM (SELECT arm_id, simulated, SUM(n) AS n FROM exposed GROUP BY 1, 2) x
        FULL JOIN (SELECT arm_id, simulated, COUNT(*) AS active, {counts},
                          SUM(imp * imp) AS imp_sq, SUM(clk * clk) AS clk_sq, SUM(clk * imp) AS clk_imp,
                          SUM(rev * rev) AS rev_sq, COUNT(*) FILTER (WHERE clk > 0) AS clickers,
                          COUNT(*) FILTER (WHERE atc > 0) AS adders, COUNT(*) FILTER (WHERE pur > 0) AS purchasers
                   FROM users GROUP BY 1, 2) a USING (arm_id, simulated)
    ), daily_rows AS (
        INSERT INTO {_DAILY} (experiment_id, arm_id, simulated, day, {", ".join(_DAILY_COLUMNS)},
                              {", ".join(_DAILY_STATS)})
        SELECT %(experiment)s, arm_id, simulated, day, COALESCE(x.n, 0), {daily_stats}
        FROM exposed x
        FULL JOIN (
            SELECT arm_id, simulated, day, {counts},
                   {_INCREMENTS}
            FROM w WHERE xid IS NOT NULL GROUP BY 1, 2, 3
        ) d USING (arm_id, simulated, day)
    )
    SELECT COALESCE(SUM(n), 0), COALESCE(SUM(n) FILTER (WHERE xid IS NULL), 0),
           (SELECT COALESCE(SUM(n), 0) FROM exposed)
    FROM w"""


def recompute(experiment_id: int, *, lag: timedelta = FOLD_LAG) -> FoldResult:
    """Delete the experiment's rollups and rebuild them from every settled event, in one transaction.

    Set-based: one statement (``_recompute_sql``) writes the user, arm and daily rows from one
    scan of the events; then the CUPED sums (one grouped join) and the interleaving sessions. The
    rows are those that incremental folds of the same events in time order give
    (``tests/analysis/test_rollups``).
    """
    cutoff = timezone.now() - lag
    with transaction.atomic(), connection.cursor() as cursor:
        lock_state(experiment_id)
        for table in (_ARM, _USER, _DAILY, CupedRollup._meta.db_table):
            cursor.execute(f"DELETE FROM {table} WHERE experiment_id = %s", [experiment_id])
        reset_sessions(experiment_id)
        upper_x = settled_upper(cursor, _EXPOSURE, "first_exposed_at", experiment_id, 0, cutoff)
        upper_e = settled_upper(cursor, _EVENT, "received_at", experiment_id, 0, cutoff)
        params: dict[str, Any] = {"experiment": experiment_id, "low": 0, "high": upper_e, "exposures": upper_x}
        # Bulk work: hash joins whatever the planner's (possibly stale) estimates; sorts in memory.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(_recompute_sql(), params)
        total, missing, exposures = (int(v) for v in cursor.fetchone())
        RollupState.objects.filter(pk=experiment_id).update(
            event_watermark=upper_e, exposure_watermark=upper_x, folded_events=total - missing,
            unattributed_events=missing, folded_at=timezone.now(),
        )  # fmt: skip
    refresh_covariates(experiment_id)
    fold_sessions(experiment_id, lag=lag)
    return FoldResult(experiment_id, total, missing, exposures, upper_e, upper_x)


def experiments_to_fold() -> list[int]:
    """Ids of experiments with events or exposures beyond their watermarks (one indexed probe each)."""
    due = []
    states = dict(RollupState.objects.values_list("experiment_id", "event_watermark"))
    exposure_marks = dict(RollupState.objects.values_list("experiment_id", "exposure_watermark"))
    for experiment_id in Experiment.objects.exclude(status=Experiment.Status.DRAFT).values_list("id", flat=True):
        if (
            Event.objects.filter(experiment_id=experiment_id, id__gt=states.get(experiment_id, 0)).exists()
            or Exposure.objects.filter(
                experiment_id=experiment_id, id__gt=exposure_marks.get(experiment_id, 0)
            ).exists()
        ):
            due.append(experiment_id)
    return due
