"""The Celery worker's heartbeat (a worker bootstep, added in abplatform/celery.py).

At start and then every WORKER_HEARTBEAT_SECONDS the worker writes its row (hostname, queues, pid) in
WorkerHeartbeat; /readyz and /metrics read those rows (ops.services.health). It beats from the worker's own
timer: with the prefork pool (the default) and Redis or AMQP, that is the consumer's event loop, so a worker
whose loop is stuck stops beating too. With `--pool solo` the loop runs the tasks as well, so a long task
pauses the beat (a worker may then look gone while it trains); with the filesystem broker the timer is a
thread of its own. Each beat opens and closes its own database connection: the main process keeps none
open between beats (it forks the pool's processes). A graceful stop deletes the row.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)


class Heartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry: Any = None
        self.hostname = ""
        self.queues: list[str] = []
        self.started_at: Any = None

    def start(self, worker: Any) -> None:
        from django.conf import settings
        from django.utils import timezone

        self.hostname = str(worker.hostname)
        self.queues = sorted(worker.app.amqp.queues.consume_from)
        self.started_at = timezone.now()
        self.beat()
        self.timer_entry = worker.timer.call_repeatedly(float(settings.WORKER_HEARTBEAT_SECONDS), self.beat)

    def stop(self, worker: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        if self.hostname:
            self._with_connection(lambda: _services().forget(self.hostname))

    def beat(self) -> None:
        self._with_connection(lambda: _services().record_beat(self.hostname, self.queues, os.getpid(), self.started_at))

    def _with_connection(self, write: Any) -> None:
        from django.db import connection

        try:
            write()
        except Exception:  # the next beat tries again; readiness reports the worker gone meanwhile
            logger.warning("the worker heartbeat could not be stored", exc_info=True)
        finally:
            connection.close()


def _services() -> Any:
    from ops.services import workers

    return workers
