from django.db import migrations

from accounts.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_experiment_permissions"),
        ("ops", "0002_alerts"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
