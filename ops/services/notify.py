"""Delivering an alert to a notification channel: a webhook POST (plain JSON, or a Slack-compatible
`{"text": ...}` body) or an e-mail through Django's mail backend. Every attempt is recorded as an
AlertDelivery; a transient failure (a connection error, a timeout, a 5xx or 429 answer) raises
TransientDeliveryError for the task to retry with backoff, any other failure is final.

Which channels get an alert: the active ones without an experiment, and those of the alert's experiment,
whose `min_severity` the alert reaches.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.core.mail import send_mail
from django.db.models import Q

from ops.models import Alert, AlertDelivery, NotificationChannel

WEBHOOK_TIMEOUT = 10.0
SEVERITY_ORDER = {"warning": 0, "critical": 1}


class TransientDeliveryError(Exception):
    """The channel may take the alert later: retry."""


def channels_for(alert: Alert) -> list[NotificationChannel]:
    """The channels that want this alert (module docstring)."""
    channels = NotificationChannel.objects.filter(active=True).filter(
        Q(experiment__isnull=True) | Q(experiment_id=alert.experiment_id)
    )
    rank = SEVERITY_ORDER.get(alert.severity, 0)
    return [channel for channel in channels if SEVERITY_ORDER.get(channel.min_severity, 0) <= rank]


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as the API lists it, plus its details: the plain JSON body of a webhook."""
    return {
        "id": alert.pk,
        "experiment": alert.experiment.key if alert.experiment else None,
        "rule": alert.rule,
        "severity": alert.severity,
        "status": alert.status,
        "message": alert.message,
        "details": alert.details,
        "opened_at": alert.opened_at.isoformat(),
    }


def alert_text(alert: Alert) -> str:
    where = f" [{alert.experiment.key}]" if alert.experiment else ""
    return f"{alert.severity.upper()} {alert.rule}{where}: {alert.message}"


def deliver(alert_id: int, channel_id: int) -> AlertDelivery | None:
    """Send the alert to the channel once and record the attempt; None when it was sent already (a retried
    or redelivered task). Raises TransientDeliveryError after recording a failure worth retrying."""
    alert = Alert.objects.select_related("experiment").get(pk=alert_id)
    channel = NotificationChannel.objects.get(pk=channel_id)
    done = AlertDelivery.objects.filter(alert=alert, channel=channel)
    if done.filter(status=AlertDelivery.Status.SENT).exists():
        return None
    attempt = done.count() + 1
    code: int | None = None
    error = ""
    transient = False
    try:
        if channel.kind == NotificationChannel.Kind.EMAIL:
            send_mail(f"[A/B platform] {alert_text(alert)}"[:200], _email_body(alert), None, list(channel.emails))
        else:
            code = _post(channel, alert)
    except urllib.error.HTTPError as failure:
        code = failure.code
        error = f"HTTP {failure.code} {failure.reason}"
        transient = failure.code >= 500 or failure.code == 429
    except (urllib.error.URLError, TimeoutError, OSError) as failure:
        error = f"{type(failure).__name__}: {failure}"
        transient = True
    status = AlertDelivery.Status.FAILED if error else AlertDelivery.Status.SENT
    delivery = AlertDelivery.objects.create(
        alert=alert, channel=channel, attempt=attempt, status=status, response_code=code, error=error[:2000]
    )
    if transient:
        raise TransientDeliveryError(error)
    return delivery


def _post(channel: NotificationChannel, alert: Alert) -> int:
    body: dict[str, Any] = (
        {"text": alert_text(alert)} if channel.format == NotificationChannel.Format.SLACK else alert_payload(alert)
    )
    request = urllib.request.Request(  # the URL: an http(s) URLField an administrator set
        channel.url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "abplatform-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as answer:
        return int(answer.status)


def _email_body(alert: Alert) -> str:
    return f"{alert_text(alert)}\n\nOpened at {alert.opened_at.isoformat()}.\n\n{json.dumps(alert.details, indent=2)}\n"
