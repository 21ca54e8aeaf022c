"""The Celery broker as operations see it: does it answer, and how many messages wait in each queue.

Each call opens a fresh connection to CELERY_BROKER_URL (with the transport options of the settings) with
a short timeout and no retry, so a broker that is down or unreachable answers within TIMEOUT_SECONDS
instead of hanging a readiness probe; the connection is closed at once. Redis, AMQP and kombu's
filesystem transport (the embedded default, whose "connection" is its folder) all work the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from amqp.exceptions import ChannelError as AmqpChannelError
from django.conf import settings
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.utils.url import maybe_sanitize_url

TIMEOUT_SECONDS = 1.0


def queue_names() -> list[str]:
    """The platform's queues: the default one and those of the task routes (`default`, `training`)."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *routed})


def _connection() -> Connection:
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "max_retries": 0,
               "socket_timeout": TIMEOUT_SECONDS, "socket_connect_timeout": TIMEOUT_SECONDS}  # fmt: skip
    return Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS, transport_options=options)


def describe() -> str:
    """The broker's URL without its password (for messages)."""
    return str(maybe_sanitize_url(settings.CELERY_BROKER_URL))


def queue_depths(names: Iterable[str] | None = None) -> dict[str, int]:
    """{queue: messages waiting} for `names` (default: `queue_names()`); raises when the broker does not answer.

    A queue the broker does not know yet (Redis deletes an empty list) has 0 messages waiting.
    """
    depths: dict[str, int] = {}
    with _connection() as connection:
        connection.ensure_connection(max_retries=0, timeout=int(TIMEOUT_SECONDS))
        for name in names if names is not None else queue_names():
            with connection.channel() as channel:  # one per queue: AMQP closes a channel after a 404
                try:
                    depths[name] = int(channel.queue_declare(name, passive=True).message_count)  # type: ignore[attr-defined]
                except (ChannelError, AmqpChannelError) as error:  # kombu's virtual transports raise amqp's
                    if str(getattr(error, "reply_code", "")) != "404":  # NOT_FOUND: no such queue (yet)
                        raise
                    depths[name] = 0
    return depths
