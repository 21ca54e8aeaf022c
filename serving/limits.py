"""The data plane's request limits, each defined once.

Both HTTP front ends apply them: the DRF serializers (serving/serializers.py, which the OpenAPI
schema documents) and the lean WSGI path's own checks (serving/endpoints.py,
serving/services/events.py); the columns that store the values (serving/models.py) are as wide.
Two limits of every API body live elsewhere, and both paths apply them too: its size is Django's
DATA_UPLOAD_MAX_MEMORY_SIZE setting and its JSON nesting core.parsers.MAX_DEPTH (below the apps,
since every API's parser applies it).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

# Recommendation requests.
DEFAULT_K = 10  # items answered when the request names no k
MAX_K = 100  # items per answer
MAX_QUERY_LENGTH = 500  # characters of a request's search text

# Identifiers: a user id (requests and events), an event's event_id, item_id and experiment key.
MAX_ID_LENGTH = 100  # characters

# Event batches.
MAX_BATCH = 10_000  # events per POST /api/v1/events (a larger batch is a 413)
MAX_UTC_OFFSET = timedelta(hours=16)  # PostgreSQL's timestamps take offsets within +-15:59
FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of shops drift; an event further ahead is a bug on their side
MAX_POSITION = 1000  # an event's 1-based position in the answered list
REVENUE_DIGITS, REVENUE_DECIMALS = 14, 2  # an event's revenue: at most 14 digits, 2 of them after the point
MAX_REVENUE = Decimal(10) ** (REVENUE_DIGITS - REVENUE_DECIMALS)  # revenues are below it (10^12)
