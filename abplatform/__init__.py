"""The Django project package (named `abplatform`: a top-level `platform` would shadow the standard library)."""

from abplatform.celery import app as celery_app

__all__ = ("celery_app",)
