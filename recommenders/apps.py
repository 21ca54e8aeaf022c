from django.apps import AppConfig


class RecommendersConfig(AppConfig):
    name = "recommenders"
    verbose_name = "Recommenders"
    default_auto_field = "django.db.models.BigAutoField"
