"""The navigation's alert badge: how many alerts are unresolved, counted only when a page shows it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ops.models import Alert


def alerts(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("ops.view_alert"):
        return {}
    return {"unresolved_alerts": SimpleLazyObject(lambda: Alert.objects.exclude(status=Alert.Status.RESOLVED).count())}
