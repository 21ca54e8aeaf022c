from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: the background-job lifecycle."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
