"""gunicorn settings read from the working directory (the repository root, /app in the image).

Command-line flags win over these (the Dockerfile and compose set --workers).

* Threaded workers (gthread) keep HTTP connections alive between requests, so a shop's
  client does not pay a TCP handshake and a worker does not block per connection; the hot
  endpoints hold the GIL only briefly outside numpy and the database, and with 8 threads a
  worker overlaps one request's database wait with another's work (bench/serving.py
  compares worker settings; figures in CHANGELOG.md).
* `worker_exit` stores the serving logs still buffered in the worker
  (serving/services/serving_log.py) when it stops gracefully (SIGTERM, max-requests, reload).
* `on_starting` empties the Prometheus multiprocess folder (core.metrics) in the master, before
  any worker starts counting.
"""

import os
from typing import Any

worker_class = "gthread"
threads = 8
keepalive = 5  # seconds an idle client connection stays open


def worker_exit(server: Any, worker: Any) -> None:
    from serving.services.serving_log import buffer

    buffer.stop()


def on_starting(server: Any) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "abplatform.settings")
    from django.conf import settings

    from core.metrics import clear_directory

    clear_directory(settings.METRICS_DIR)
