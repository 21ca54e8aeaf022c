from django.apps import AppConfig


class OffPolicyConfig(AppConfig):
    name = "offpolicy"
    verbose_name = "Off-policy estimates"
    default_auto_field = "django.db.models.BigAutoField"
