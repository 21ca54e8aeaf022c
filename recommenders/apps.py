from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class RecommendersConfig(AppConfig):
    name = "recommenders"
    verbose_name = "Recommenders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recommenders.algorithms import registry
        from recommenders.algorithms.base import RecommenderError

        for path in settings.EXTRA_ALGORITHMS:
            try:
                registry.register_dotted_path(path)
            except RecommenderError as error:
                raise ImproperlyConfigured(f"ABPLATFORM_EXTRA_ALGORITHMS: {error}") from None
