"""Drop the varchar_pattern_ops index Django adds beside the unique index on Event.event_id.

PostgreSQL gets a second index for LIKE queries on every unique CharField; nothing queries
event ids by pattern, and every ingested event paid for maintaining it. The unique index (the
idempotency key) stays. SQLite has no such index: nothing to do there.
"""

from typing import Any

from django.db import migrations

INDEX = "experiments_event_event_id_b39f2223_like"


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


def restore(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON experiments_event (event_id varchar_pattern_ops)")


class Migration(migrations.Migration):
    dependencies = [("experiments", "0007_cuped_rollup")]

    operations = [migrations.RunPython(drop, restore)]
