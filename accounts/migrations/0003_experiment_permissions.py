from django.db import migrations

from accounts.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_variant_permissions"),
        ("experiments", "0002_initial"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
