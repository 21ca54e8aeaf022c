"""The platform's roles (Django groups) and the permissions each one holds.

Roles are synchronised by data migrations calling `sync_roles`; a later feature that adds
permissions appends them here and ships a migration that calls `sync_roles` again.
"""

from __future__ import annotations

from typing import Any

PRODUCT_MANAGERS = "Product managers"
DATA_SCIENTISTS = "Data scientists"
REVIEWERS = "Reviewers"
ROLES = (PRODUCT_MANAGERS, DATA_SCIENTISTS, REVIEWERS)

# "app_label.codename" of each permission a role holds.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PRODUCT_MANAGERS: (
        "recommenders.view_dataset",
        "recommenders.view_item",
        "recommenders.view_variant",
        "recommenders.view_trainingrun",
        "recommenders.view_evaluation",
        "experiments.view_experiment",
        "experiments.add_experiment",
        "experiments.change_experiment",
        "experiments.run_experiment",
        "experiments.view_decision",
        "ops.view_alert",
        "ops.change_alert",
    ),
    DATA_SCIENTISTS: (
        "recommenders.view_dataset",
        "recommenders.add_dataset",
        "recommenders.change_dataset",
        "recommenders.delete_dataset",
        "recommenders.import_dataset",
        "recommenders.view_item",
        "recommenders.view_interaction",
        "recommenders.view_variant",
        "recommenders.add_variant",
        "recommenders.view_trainingrun",
        "recommenders.add_trainingrun",
        "recommenders.view_evaluation",
        "recommenders.add_evaluation",
        "experiments.view_experiment",
        "experiments.view_decision",
        "ops.view_alert",
    ),
    REVIEWERS: (
        "recommenders.view_dataset",
        "recommenders.view_variant",
        "recommenders.view_evaluation",
        "experiments.view_experiment",
        "experiments.view_decision",
        "experiments.add_decision",
        "experiments.record_decision",
        "ops.view_alert",
    ),
}  # fmt: skip


def sync_roles(apps: Any) -> None:
    """Create the role groups and set their permissions to exactly ROLE_PERMISSIONS (works on historical models)."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran (post_migrate); create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            permissions.append(permission_model.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
