"""What serving holds per experiment and what one answer logs; shared by the A/B path
(serving.services.serve) and the interleaved one (serving.services.interleaving)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import bucketing
from experiments.models import Arm


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


@dataclass(frozen=True)
class ServingLog:
    """What one answer records: the served request, the exposure (None when not exposed), the impressions.

    Rows are tuples in column order: `served` in SERVED_COLUMNS, `exposure` in
    EXPOSURE_COLUMNS, each impression in events.COLUMNS.
    """

    served: tuple[Any, ...]
    exposure: tuple[Any, ...] | None
    impressions: list[tuple[Any, ...]]


LogWriter = Callable[[ServingLog], None]


def interleaved_probability(config: ServingConfig) -> float:
    """P(a random user is served the interleaved list of a running interleaving experiment): its entry share."""
    return config.allocation.entry_count / bucketing.BUCKETS
