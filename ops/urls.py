"""/healthz, /readyz and /metrics (the middleware answers them first; these patterns name them)."""

from django.urls import path

from ops.views import ROUTES

urlpatterns = [path(route.lstrip("/"), view, name=route.strip("/")) for route, view in ROUTES.items()]
