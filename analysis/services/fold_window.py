"""The settled window a fold reads: rows received more than FOLD_LAG ago, FOLD_CHUNK_IDS ids a step.

Shared by the A/B rollups (analysis.services.rollups) and the interleaving ones
(analysis.services.interleaving_rollups); see the former's docstring for why the lag exists.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

FOLD_LAG = timedelta(seconds=10)
FOLD_CHUNK_IDS = 1_000_000  # event ids per transaction, so a recompute of 10 M events is 10 short steps


def settled_upper(cursor: Any, table: str, clock: str, experiment_id: int, low: int, cutoff: datetime) -> int:
    """The highest id such that every id in (low, upper] of the experiment is older than cutoff."""
    when = connection.ops.adapt_datetimefield_value(cutoff)
    cursor.execute(
        f"SELECT MIN(id) FROM {table} WHERE experiment_id = %s AND id > %s AND {clock} > %s",
        [experiment_id, low, when],
    )
    first_recent = cursor.fetchone()[0]
    if first_recent is not None:
        return int(first_recent) - 1
    cursor.execute(f"SELECT MAX(id) FROM {table} WHERE experiment_id = %s AND id > %s", [experiment_id, low])
    latest = cursor.fetchone()[0]
    return int(latest) if latest is not None else low
