"""How far behind the rollups are: seconds since the oldest event the fold has not counted yet.

For each running experiment, the event with the lowest id above its RollupState watermark (the next one the
fold takes) and how long ago it was received. The fold leaves the last FOLD_LAG of events for its next
run on purpose and runs every 30 seconds (beat), so a healthy platform shows up to about 40 seconds; a
stopped beat or a fold that keeps failing shows a lag that grows with the clock. One index probe per
running experiment (events by experiment and id), cheap enough to run at every scrape and readiness check.
"""

from __future__ import annotations

from django.db import connection

from analysis.models import RollupState
from experiments.models import Experiment
from serving.models import Event


def rollup_lags() -> dict[str, float]:
    """{experiment key: seconds since its oldest unfolded event was received (0 when none)} of running experiments."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT experiment.key, COALESCE(EXTRACT(EPOCH FROM (now() - oldest.received_at)), 0)
            FROM {Experiment._meta.db_table} experiment
            LEFT JOIN {RollupState._meta.db_table} state ON state.experiment_id = experiment.id
            LEFT JOIN LATERAL (
                SELECT event.received_at FROM {Event._meta.db_table} event
                WHERE event.experiment_id = experiment.id AND event.id > COALESCE(state.event_watermark, 0)
                ORDER BY event.id LIMIT 1
            ) oldest ON true
            WHERE experiment.status = %s
            ORDER BY experiment.key
            """,
            [Experiment.Status.RUNNING],
        )
        return {key: max(float(seconds), 0.0) for key, seconds in cursor.fetchall()}
