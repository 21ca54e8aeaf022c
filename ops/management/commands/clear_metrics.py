"""Empty the Prometheus multiprocess folder before the web server starts (the image and compose run it)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from core.metrics import clear_directory


class Command(BaseCommand):
    help = (
        "Remove the metric files of a previous run from PROMETHEUS_MULTIPROC_DIR (default var/prometheus). "
        "Run it before starting the web server, never while it runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        removed = clear_directory(settings.METRICS_DIR)
        self.stdout.write(f"Cleared {removed} metric file{'s' if removed != 1 else ''} from {settings.METRICS_DIR}.")
