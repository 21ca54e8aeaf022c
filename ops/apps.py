from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: health and readiness checks, Prometheus metrics, request ids, the workers' heartbeat, alerts."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"
