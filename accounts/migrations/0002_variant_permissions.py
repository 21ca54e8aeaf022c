from django.db import migrations

from accounts.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_roles"),
        ("recommenders", "0002_variants_training_runs_evaluations"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
