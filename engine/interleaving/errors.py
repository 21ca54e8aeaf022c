"""One exception family for every input the interleaving core cannot use.

Callers (the serving API, a Celery task, the results page, the bench) catch ``InterleavingError``
to cover every case. It is a ``ValueError``: each one is a bad value, never a bug in the core.
"""

from __future__ import annotations

__all__ = ["InterleavingError"]


class InterleavingError(ValueError):
    """The rankings, clicks, tallies or settings cannot produce an interleaved list or a verdict."""
