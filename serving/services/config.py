"""What serving holds per experiment and what one answer logs; shared by the A/B path
(serving.services.serve) and the interleaved one (serving.services.interleaving)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from engine import bucketing
from experiments.models import Arm
from serving.services.events import EventRow


class ServingError(Exception):
    pass


@dataclass(frozen=True)
class ServingConfig:
    experiment_id: int
    key: str
    status: str
    design: str
    salt: str
    allocation: bucketing.Allocation
    arms: tuple[Arm, ...]
    control: int
    exploration: float  # share of exposed requests explored, in [0, 1]
    # Bandit only: (period start as epoch seconds, allocation for new users), oldest first.
    bandit: tuple[tuple[float, bucketing.Allocation], ...] | None = None
    # Bandit only: the same for each running simulation run's own history, by the run's id.
    bandit_runs: dict[int, tuple[tuple[float, bucketing.Allocation], ...]] | None = None


class UnknownExperiment(ServingError):
    pass


class ServedRow(NamedTuple):
    """One answered request, as the served-requests table stores it (served_at last: the buffered log's
    CSV writer formats the last column as the timestamp)."""

    request_id: uuid.UUID
    experiment_id: int
    arm_id: int
    user_id: str
    exposed: bool
    arm_probability: float
    query: str
    k: int
    exploration_share: float
    explored: bool
    http_request_id: str | None  # the HTTP request's X-Request-ID (core.request_context), None outside one
    served_at: datetime


class ExposureRow(NamedTuple):
    """A user's first exposure to an arm, as the exposures table stores it."""

    experiment_id: int
    arm_id: int
    user_id: str
    bucket: int
    first_exposed_at: datetime


SERVED_COLUMNS = ", ".join(ServedRow._fields)
EXPOSURE_COLUMNS = ", ".join(ExposureRow._fields)


@dataclass(frozen=True)
class ServingLog:
    """What one answer records: the served request, the exposure (None when not exposed), the impressions."""

    served: ServedRow
    exposure: ExposureRow | None
    impressions: list[EventRow]


LogWriter = Callable[[ServingLog], None]


def interleaved_probability(config: ServingConfig) -> float:
    """P(a random user is served the interleaved list of a running interleaving experiment): its entry share."""
    return config.allocation.entry_count / bucketing.BUCKETS
