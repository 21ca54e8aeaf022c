"""gunicorn settings read from the working directory (the repository root, /app in the image).

`worker_exit` stores the serving logs still buffered in the worker (experiments/services/serving_log.py)
when it stops gracefully (SIGTERM, a max-requests restart, a reload).
"""

from typing import Any


def worker_exit(server: Any, worker: Any) -> None:
    from experiments.services.serving_log import buffer

    buffer.stop()
