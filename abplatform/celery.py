"""The Celery application. Workers start with `celery -A abplatform worker`."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

from ops.worker import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

app = Celery("abplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker keeps a heartbeat row up to date, which readiness (/readyz) and /metrics read.
app.steps["worker"].add(Heartbeat)


@setup_logging.connect
def use_the_platforms_logging(loglevel: int | str | None = None, **kwargs: Any) -> None:
    """Workers and beat log as the web processes do (settings.LOGGING: JSON lines in production), instead of
    Celery's own format: connecting this signal tells Celery to leave logging alone. Their `--loglevel`
    still sets the level."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
