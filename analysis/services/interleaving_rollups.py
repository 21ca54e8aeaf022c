"""Interleaving rollups: sessions and their credited clicks, folded incrementally and idempotently.

Two tables, for interleaving experiments only (``rollups.fold`` calls ``fold_sessions`` after the
A/B fold, so the beat task that folds every 30 s keeps them up to date):

- ``InterleavingSession`` (one row per served interleaved list = one request): its UTC day, live
  or simulated, the number of items shown, and the clicks credited to team A and team B;
- ``InterleavingDaily`` (experiment x day x live/simulated): sessions, sessions won by A, by B,
  tied, and the clicks credited to each team, for the verdict and its history.

Credit (team draft): a click with a ``request_id`` and an ``item_id`` counts for the team whose
impression of that request showed the item, read from the impression's ``arm`` (serving stores
the contributing arm there). The impression is found through its unique event id (positions 1
to ``shown``: "imp:<request id>:<position>" when served through the API, "<request hex>:<position>:i"
when simulated), so crediting a click costs a few index probes, never a scan. Only clicks count:
add-to-carts and purchases follow clicks and would count the same preference twice. A click on
an item the request did not show is counted as ``uncredited_clicks``; a click of a request that
is not an interleaved session of the experiment (not exposed) is ignored, as it is outside the
experiment. Session outcome: A wins when clicks_a > clicks_b, B when clicks_b > clicks_a, else a
tie (including sessions without clicks).

One fold step, in one transaction with the experiment's InterleavingState row locked, over the
events with id in (event_watermark, upper] (``upper`` settled as in ``rollups``: received more than
FOLD_LAG ago, at most FOLD_CHUNK_IDS ids):

1. impressions -> sessions: new requests are inserted as tied sessions (sessions + 1, ties + 1
   on their day); a request whose impressions straddle two steps only adds to ``shown``;
2. clicks -> credit per request; each credited session's clicks grow and its day's counts move
   from the old outcome to the new one (``RETURNING`` gives both), so the daily rows always
   equal a count over the sessions;
3. the watermark moves.

Idempotent: a second fold finds an empty range. ``rollups.recompute`` (through ``reset_sessions``) deletes both
tables and folds from id 0, giving the same rows. Residual risk, as for the A/B rollups: a click folded in
an earlier step than its request's impressions (possible only when a fold boundary falls in the
0.1 s before the lean path's buffered log is stored) is ignored; a recompute repairs it.

Steps 1 and 2 are one statement each (``RETURNING`` in data-modifying CTEs, ``generate_series``,
``xmax``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from analysis.models import InterleavingDaily, InterleavingSession, InterleavingState
from analysis.services.fold_window import FOLD_CHUNK_IDS, FOLD_LAG, settled_upper
from experiments.models import Experiment
from serving.models import Event
from serving.services.interleaving import teams

_EVENT = Event._meta.db_table
_SESSION = InterleavingSession._meta.db_table
_DAILY = InterleavingDaily._meta.db_table
_STATE = InterleavingState._meta.db_table
_RANGE = "e.experiment_id = %(experiment)s AND e.id > %(low)s AND e.id <= %(high)s"
_SUMS = ("sessions", "wins_a", "wins_b", "ties", "clicks_a", "clicks_b")
_ADD_DAILY = ", ".join(f"{c} = {_DAILY}.{c} + excluded.{c}" for c in _SUMS)

_NEW_SESSIONS = f"""
    WITH shown AS (
        SELECT e.request_id, bool_or(e.simulation_id IS NOT NULL) AS simulated,
               MIN((e."timestamp" AT TIME ZONE 'UTC')::date) AS day, COUNT(*) AS n
        FROM {_EVENT} e
        WHERE {_RANGE} AND e.type = 'impression' AND e.request_id IS NOT NULL AND e.arm_id IS NOT NULL
        GROUP BY e.request_id
    ), stored AS (
        INSERT INTO {_SESSION} (request_id, experiment_id, simulated, day, shown, clicks_a, clicks_b)
        SELECT request_id, %(experiment)s, simulated, day, n, 0, 0 FROM shown
        ON CONFLICT (request_id) DO UPDATE SET shown = {_SESSION}.shown + excluded.shown
        RETURNING day, simulated, (xmax = 0) AS inserted
    )
    INSERT INTO {_DAILY} (experiment_id, day, simulated, sessions, wins_a, wins_b, ties, clicks_a, clicks_b)
    SELECT %(experiment)s, day, simulated, COUNT(*), 0, 0, COUNT(*), 0, 0 FROM stored WHERE inserted
    GROUP BY day, simulated
    ON CONFLICT (experiment_id, day, simulated) DO UPDATE SET {_ADD_DAILY}"""

# The team of each click of the range: the arm of the impression of the same request showing the same item.
_CREDIT = f"""
    INSERT INTO interleaving_credit (request_id, arm_id)
    SELECT c.request_id, (
        SELECT imp.arm_id FROM generate_series(1, s.shown) AS p(n)
        JOIN {_EVENT} imp ON imp.event_id IN ('imp:' || c.request_id::text || ':' || p.n,
                                             replace(c.request_id::text, '-', '') || ':' || p.n || ':i')
        WHERE imp.item_id = c.item_id AND imp.type = 'impression'
        LIMIT 1)
    FROM {_EVENT} c JOIN {_SESSION} s ON s.request_id = c.request_id AND s.experiment_id = %(experiment)s
    WHERE {_RANGE.replace("e.", "c.")} AND c.type = 'click' AND c.request_id IS NOT NULL"""

_APPLY_CREDIT = f"""
    WITH per_request AS (
        SELECT request_id, SUM(CASE WHEN arm_id = %(arm_a)s THEN 1 ELSE 0 END) AS da,
               SUM(CASE WHEN arm_id = %(arm_b)s THEN 1 ELSE 0 END) AS db
        FROM interleaving_credit WHERE arm_id IS NOT NULL GROUP BY request_id
    ), changed AS (
        UPDATE {_SESSION} s SET clicks_a = s.clicks_a + d.da, clicks_b = s.clicks_b + d.db
        FROM per_request d WHERE s.request_id = d.request_id
        RETURNING s.day, s.simulated, d.da, d.db, SIGN(s.clicks_a - s.clicks_b) AS after,
                  SIGN((s.clicks_a - d.da) - (s.clicks_b - d.db)) AS before
    )
    INSERT INTO {_DAILY} (experiment_id, day, simulated, sessions, wins_a, wins_b, ties, clicks_a, clicks_b)
    SELECT %(experiment)s, day, simulated, 0,
           SUM(CASE WHEN after = 1 THEN 1 ELSE 0 END) - SUM(CASE WHEN before = 1 THEN 1 ELSE 0 END),
           SUM(CASE WHEN after = -1 THEN 1 ELSE 0 END) - SUM(CASE WHEN before = -1 THEN 1 ELSE 0 END),
           SUM(CASE WHEN after = 0 THEN 1 ELSE 0 END) - SUM(CASE WHEN before = 0 THEN 1 ELSE 0 END),
           SUM(da), SUM(db)
    FROM changed GROUP BY day, simulated
    ON CONFLICT (experiment_id, day, simulated) DO UPDATE SET {_ADD_DAILY}"""


def _step(experiment_id: int, arm_a: int, arm_b: int, cutoff: datetime, chunk: int) -> bool:
    """Fold one chunk of events; returns whether more settled events are due."""
    with transaction.atomic(), connection.cursor() as cursor:
        InterleavingState.objects.bulk_create([InterleavingState(experiment_id=experiment_id)], ignore_conflicts=True)
        # Lock the state row before reading the watermark, so two folds never take the same range.
        cursor.execute(f"SELECT event_watermark, uncredited_clicks FROM {_STATE} WHERE experiment_id = %s FOR UPDATE",
                       [experiment_id])  # fmt: skip
        low, uncredited = cursor.fetchone()
        settled = settled_upper(cursor, _EVENT, "received_at", experiment_id, low, cutoff)
        # Chunks count from the experiment's next event (ids are shared by all experiments).
        cursor.execute(f"SELECT MIN(id) FROM {_EVENT} WHERE experiment_id = %s AND id > %s", [experiment_id, low])
        following = cursor.fetchone()[0]
        high = min(settled, (int(following) - 1 if following else low) + chunk)
        if high <= low:
            return False
        missed = _fold_sql(cursor, {"experiment": experiment_id, "low": low, "high": high, "arm_a": arm_a,
                                    "arm_b": arm_b})  # fmt: skip
        cursor.execute(f"UPDATE {_STATE} SET event_watermark = %s, uncredited_clicks = %s WHERE experiment_id = %s",
                       [high, uncredited + missed, experiment_id])  # fmt: skip
    return settled > high


def _fold_sql(cursor: Any, params: dict[str, int]) -> int:
    """Steps 1 and 2; returns the range's uncredited clicks."""
    cursor.execute(_NEW_SESSIONS, params)
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS interleaving_credit (request_id UUID, arm_id BIGINT) "
                   "ON COMMIT DELETE ROWS")  # fmt: skip
    cursor.execute("DELETE FROM interleaving_credit")  # inside an outer transaction no commit has emptied it
    cursor.execute(_CREDIT, params)
    cursor.execute("SELECT COUNT(*) FROM interleaving_credit WHERE arm_id IS NULL")
    missed = int(cursor.fetchone()[0])
    cursor.execute(_APPLY_CREDIT, params)
    return missed


def fold_sessions(experiment_id: int, *, lag: timedelta = FOLD_LAG, chunk: int = FOLD_CHUNK_IDS) -> None:
    """Fold an interleaving experiment's new impressions and clicks (module docstring); a no-op for
    other designs and for an experiment without its two arms."""
    experiment = Experiment.objects.filter(pk=experiment_id, design=Experiment.Design.INTERLEAVING).first()
    if experiment is None:
        return
    try:
        team_a, team_b = teams(list(experiment.arms.all()))
    except ValueError:
        return
    cutoff = timezone.now() - lag
    while _step(experiment_id, team_a.pk, team_b.pk, cutoff, chunk):
        pass


def reset_sessions(experiment_id: int) -> None:
    """Delete the experiment's interleaving rollups and move its watermark back to 0 (the next fold
    starts again from the first event); `rollups.recompute` calls it in its transaction."""
    with transaction.atomic():
        InterleavingState.objects.filter(pk=experiment_id).select_for_update().first()
        InterleavingSession.objects.filter(experiment_id=experiment_id).delete()
        InterleavingDaily.objects.filter(experiment_id=experiment_id).delete()
        InterleavingState.objects.filter(pk=experiment_id).update(event_watermark=0, uncredited_clicks=0)
