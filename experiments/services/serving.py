"""Serving recommendations inside an experiment: assign the user's arm, answer, and log it.

Each answer records the served request (arm, whether the user is in the experiment, and
the probability of being served that arm), the user's exposure the first time they are
served an arm of the experiment, and one impression event per returned item (event id
"imp:<request_id>:<position>", so the shop must not send those impressions again).
Users outside the experiment's traffic, and everyone while it is paused or stopped, get
the control arm and are marked as not exposed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from experiments import bucketing
from experiments.models import Arm, Event, Experiment, Exposure, ServedRequest
from experiments.services.events import COLUMNS, insert_events
from recommenders.serving import recommend_from_run

CONFIG_TTL = 1.0  # seconds a process keeps an experiment's arms; lifecycle changes show within it


class ServingError(Exception):
    pass


@dataclass(frozen=True)
class _Config:
    experiment_id: int
    key: str
    status: str
    salt: str
    allocation: bucketing.Allocation
    arms: tuple[Arm, ...]
    control: int
    loaded_at: float


_configs: dict[str, _Config] = {}
_lock = threading.Lock()


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


def serve(
    experiment: Experiment | str, user_id: str, k: int, query: str | None = None, *, log: LogWriter | None = None
) -> dict[str, Any]:
    """Serve `user_id` in the experiment (an Experiment or its key); UnknownExperiment when there is none.

    The answer is logged by `log` (default `write_log`: stored before this returns); the lean
    HTTP path passes a buffer that stores it a moment later (experiments/services/serving_log.py).
    """
    config = _config(experiment)
    if config.status not in (Experiment.Status.RUNNING, Experiment.Status.PAUSED, Experiment.Status.STOPPED):
        raise ServingError(f"{config.key} is {config.status}: only started experiments serve traffic.")
    assignment = bucketing.assign(config.allocation, config.salt, user_id)
    exposed = config.status == Experiment.Status.RUNNING and assignment.in_experiment
    index = assignment.arm if exposed and assignment.arm is not None else config.control
    arm = config.arms[index]
    probability = _probability(config, index)
    recommendations = recommend_from_run(arm.training_run, user_id, k, query)  # type: ignore[arg-type]
    request_id = uuid.uuid4()
    now = timezone.now()
    impressions = [
        (f"imp:{request_id}:{position}", "impression", user_id, rec.item_id, request_id,
         config.experiment_id if exposed else None, arm.pk if exposed else None, position, probability, None, now, now)
        for position, rec in enumerate(recommendations, start=1)
    ]  # fmt: skip
    served = (request_id, config.experiment_id, arm.pk, user_id, exposed, probability, query or "", k, now)
    exposure = (config.experiment_id, arm.pk, user_id, assignment.bucket, now) if exposed else None
    (log or write_log)(ServingLog(served, exposure, impressions))
    return {
        "request_id": str(request_id),
        "experiment": config.key,
        "arm": arm.name,
        "exposed": exposed,
        "arm_probability": probability,
        "items": [
            {"item_id": rec.item_id, "score": rec.score, "position": position}
            for position, rec in enumerate(recommendations, start=1)
        ],
    }


SERVED_COLUMNS = "request_id, experiment_id, arm_id, user_id, exposed, arm_probability, query, k, served_at"
EXPOSURE_COLUMNS = "experiment_id, arm_id, user_id, bucket, first_exposed_at"


def write_log(entry: ServingLog) -> None:
    """Store one answer's log now, in one transaction (one round trip on PostgreSQL)."""
    if connection.vendor == "postgresql":
        _log_postgres(entry.served, entry.exposure, entry.impressions)
    else:
        with transaction.atomic():
            _log_portable(entry.served, entry.exposure, entry.impressions)


def _log_postgres(
    served: tuple[Any, ...], exposure: tuple[Any, ...] | None, impressions: list[tuple[Any, ...]]
) -> None:
    """Write the served request, the first exposure and the impressions in one round trip.

    The transaction commits without waiting for the WAL flush (synchronous_commit off): a
    PostgreSQL crash may lose the last fraction of a second of serving logs, never corrupt
    them, and serving does not wait on the disk. Event ingestion keeps synchronous commits,
    because its answer tells the shop what was stored.
    """
    statements = [
        "SET LOCAL synchronous_commit TO OFF",
        f"INSERT INTO {ServedRequest._meta.db_table} ({SERVED_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
    ]
    params: list[Any] = list(served)
    if exposure is not None:
        statements.append(
            f"INSERT INTO {Exposure._meta.db_table} ({EXPOSURE_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (experiment_id, user_id) DO NOTHING"
        )
        params.extend(exposure)
    if impressions:
        row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
        statements.append(
            f"INSERT INTO {Event._meta.db_table} ({', '.join(COLUMNS)}) VALUES "
            + ", ".join([row] * len(impressions))
            + " ON CONFLICT (event_id) DO NOTHING"
        )
        params.extend(value for impression in impressions for value in impression)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(";\n".join(statements), params)


def _log_portable(
    served: tuple[Any, ...], exposure: tuple[Any, ...] | None, impressions: list[tuple[Any, ...]]
) -> None:
    request_id, experiment_id, arm_id, user_id, exposed, probability, query, k, now = served
    ServedRequest.objects.create(
        request_id=request_id, experiment_id=experiment_id, arm_id=arm_id, user_id=user_id, exposed=exposed,
        arm_probability=probability, query=query, k=k, served_at=now,
    )  # fmt: skip
    if exposure is not None:
        Exposure.objects.get_or_create(
            experiment_id=exposure[0], user_id=exposure[2],
            defaults={"arm_id": exposure[1], "bucket": exposure[3], "first_exposed_at": exposure[4]},
        )  # fmt: skip
    insert_events(impressions)


def _config(experiment: Experiment | str) -> _Config:
    """The experiment's serving configuration, read from the database at most once per CONFIG_TTL."""
    key = experiment if isinstance(experiment, str) else experiment.key
    now = time.monotonic()
    with _lock:
        cached = _configs.get(key)
    if cached is not None and now - cached.loaded_at < CONFIG_TTL:
        return cached
    found = Experiment.objects.filter(key=key).first()
    if found is None:
        raise UnknownExperiment(f"no experiment {key!r}")
    experiment = found
    arms = tuple(experiment.arms.select_related("training_run", "variant").order_by("position"))
    if not arms:
        raise ServingError(f"{experiment.key} has no arms.")
    config = _Config(
        experiment_id=experiment.pk,
        key=experiment.key,
        status=experiment.status,
        salt=experiment.salt,
        allocation=allocation_of(experiment, arms),
        arms=arms,
        control=next(i for i, arm in enumerate(arms) if arm.is_control),
        loaded_at=now,
    )
    with _lock:
        _configs[experiment.key] = config
    return config


def allocation_of(experiment: Experiment, arms: tuple[Arm, ...]) -> bucketing.Allocation:
    """The bucketing allocation of a started experiment; a layer's salt is shared by its experiments."""
    layer = None
    if experiment.layer and experiment.layer_start is not None and experiment.layer_end is not None:
        layer = bucketing.LayerSlot(salt=f"layer:{experiment.layer}", start=experiment.layer_start,
                                    end=experiment.layer_end)  # fmt: skip
    return bucketing.Allocation(
        traffic=experiment.traffic_percent / 100, weights=tuple(arm.weight for arm in arms), layer=layer
    )


def _probability(config: _Config, index: int) -> float:
    """P(a random user is served this arm's list): the arm's assignment share, plus, for the control,
    the users outside the experiment (they are served the control too). 1.0 when not running."""
    if config.status != Experiment.Status.RUNNING:
        return 1.0
    share = bucketing.assignment_probability(config.allocation, index)
    if index == config.control:
        share += 1 - config.allocation.entry_count / bucketing.BUCKETS
    return share


def clear_cache() -> None:
    with _lock:
        _configs.clear()
