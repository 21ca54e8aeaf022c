"""The Celery application. Workers start with `celery -A abplatform worker`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")

app = Celery("abplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
