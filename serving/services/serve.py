"""Serving recommendations inside an experiment: assign the user's arm, answer, and log it.

Each answer records the served request (arm, whether the user is in the experiment, and
the probability of being served that arm), the user's exposure the first time they are
served an arm of the experiment, and one impression event per returned item (event id
"imp:<request_id>:<position>", so the shop must not send those impressions again).
Users outside the experiment's traffic, and everyone while it is paused or stopped, get
the control arm and are marked as not exposed. Exposed users of a running interleaving
experiment get one team-draft list of both arms instead (serving/services/interleaving.py).

Bandit experiments (analysis.services.bandit_results): a user keeps the arm of their first exposure,
found in a per-process cache or by one lookup on the (experiment, user) unique index; only new
users are assigned, with the weights of the period in force at this request's time, and the
served probability is that period's share of the arm (for a returning user, the share in force
at their first exposure). The cache also covers answers the lean path's log buffer has not
stored yet. Between processes, a user first served by two workers within one log flush across
a weight change may get two arms; the stored exposure (the earlier one) decides from then on.
A request of a running `simulate --http` run names its run (`simulation`, which only a token with
the 'simulate' scope may send: serving/authentication.py); its user is assigned with that run's own
weight history instead of the live one (simulation/services/http_traffic.py), so simulated traffic
never moves, or is moved by, the live weights. A run without a history of this experiment (an
in-process run, a finished one) leaves its requests to the live history.

With an exploration share, a share of exposed
requests get a random ordering of the arm's top items and every exposed impression logs the
position-wise propensity the off-policy estimators need (serving.services.exploration).
"""

from __future__ import annotations

import bisect
import threading
import uuid
from typing import Any

from cachetools import LRUCache, TTLCache
from django.db import connection, transaction
from django.utils import timezone

from core import metrics, request_context
from engine import bucketing
from experiments.models import Arm, BanditUpdate, Experiment
from experiments.services.bandit_schedule import live_schedule
from recommenders.serving import model_for_run, recommend_from_run
from serving.models import Event, Exposure, ServedRequest
from serving.services.config import (
    EXPOSURE_COLUMNS,
    SERVED_COLUMNS,
    ExposureRow,
    LogWriter,
    ServedRow,
    ServingConfig,
    ServingError,
    ServingLog,
    UnknownExperiment,
    interleaved_probability,
)
from serving.services.events import COLUMNS, EventRow, impression_event_id
from serving.services.exploration import ServedList, recommend_with_exploration
from serving.services.interleaving import serve_interleaved

CONFIG_TTL = 1.0  # seconds a process keeps an experiment's arms; lifecycle changes show within it
CONFIGS_MAX = 1_000  # experiments whose configuration a process keeps (the least recently used go first)
STICKY_MAX = 200_000  # bandit users whose arm a process remembers (the least recently served go first)


# Experiments' serving configurations by key, each kept CONFIG_TTL seconds.
_configs: TTLCache[str, ServingConfig] = TTLCache(maxsize=CONFIGS_MAX, ttl=CONFIG_TTL)
# Bandit users' (arm index, served probability) by (experiment id, user id); see the module docstring. A user
# the cache has dropped is found again by their exposure row.
_sticky: LRUCache[tuple[int, str], tuple[int, float]] = LRUCache(maxsize=STICKY_MAX)
_lock = threading.Lock()  # both caches reorder themselves on reads too: every access holds it


def serve(
    experiment: Experiment | str,
    user_id: str,
    k: int,
    query: str | None = None,
    *,
    log: LogWriter | None = None,
    simulation: int | None = None,
) -> dict[str, Any]:
    """Serve `user_id` in the experiment (an Experiment or its key); UnknownExperiment when there is none.

    The answer is logged by `log` (default `write_log`: stored before this returns); the lean
    HTTP path passes a buffer that stores it a moment later (serving/services/serving_log.py).
    `simulation`: the id of the simulation run the request is part of (module docstring), else None.
    """
    config = _config(experiment)
    if config.status not in (Experiment.Status.RUNNING, Experiment.Status.PAUSED, Experiment.Status.STOPPED):
        raise ServingError(f"{config.key} is {config.status}: only started experiments serve traffic.")
    assignment = bucketing.assign(config.allocation, config.salt, user_id)
    exposed = config.status == Experiment.Status.RUNNING and assignment.in_experiment
    if exposed and config.design == Experiment.Design.INTERLEAVING:
        return serve_interleaved(config, user_id, k, query, assignment.bucket, log or write_log)
    now = timezone.now()
    if exposed and config.bandit:
        index, probability = _bandit_arm(config, user_id, now.timestamp(), simulation)
    else:
        index = assignment.arm if exposed and assignment.arm is not None else config.control
        probability = _probability(config, index)
    arm = config.arms[index]
    request_id = uuid.uuid4()
    share = config.exploration if exposed else 0.0
    if share > 0:
        # Exploration draws from the union of every arm's top items: it needs every arm's model.
        models = [model_for_run(a.training_run) for a in config.arms]  # type: ignore[arg-type]
        answer = recommend_with_exploration(models, index, user_id, k, query, str(request_id), share)
    else:  # remembered top lists (exact; see recommenders.serving.recommend_from_run)
        answer = ServedList(recommend_from_run(arm.training_run, user_id, k, query), None, False)  # type: ignore[arg-type]
    recommendations = answer.recommendations
    # Propensity: the arm's probability, or with exploration in force the position-wise marginal
    # of the mixture policy (serving.services.exploration).
    propensity = answer.propensities or [probability] * len(recommendations)
    impressions = [
        EventRow(impression_event_id(request_id, position), "impression", user_id, rec.item_id, request_id,
                 config.experiment_id if exposed else None, arm.pk if exposed else None, position,
                 propensity[position - 1], None, now, now)
        for position, rec in enumerate(recommendations, start=1)
    ]  # fmt: skip
    served = ServedRow(request_id, config.experiment_id, arm.pk, user_id, exposed, probability, query or "", k, share,
                       answer.explored, request_context.current(), now)  # fmt: skip
    exposure = ExposureRow(config.experiment_id, arm.pk, user_id, assignment.bucket, now) if exposed else None
    (log or write_log)(ServingLog(served, exposure, impressions))
    metrics.RECOMMENDATIONS_SERVED.inc(config.key, arm.name)
    return {
        "request_id": str(request_id),
        "experiment": config.key,
        "arm": arm.name,
        "exposed": exposed,
        "arm_probability": probability,
        "explored": answer.explored,
        "items": [
            {"item_id": rec.item_id, "score": rec.score, "position": position}
            for position, rec in enumerate(recommendations, start=1)
        ],
    }


def write_log(entry: ServingLog) -> None:
    """Store one answer's log now, in one transaction and one round trip."""
    _log_statements(entry.served, entry.exposure, entry.impressions)


def _log_statements(served: ServedRow, exposure: ExposureRow | None, impressions: list[EventRow]) -> None:
    """Write the served request, the first exposure and the impressions in one round trip.

    The transaction commits without waiting for the WAL flush (synchronous_commit off): a
    PostgreSQL crash may lose the last fraction of a second of serving logs, never corrupt
    them, and serving does not wait on the disk. Event ingestion keeps synchronous commits,
    because its answer tells the shop what was stored.
    """
    statements = [
        "SET LOCAL synchronous_commit TO OFF",
        f"INSERT INTO {ServedRequest._meta.db_table} ({SERVED_COLUMNS}) VALUES ({', '.join(['%s'] * len(served))})",
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


def _config(experiment: Experiment | str) -> ServingConfig:
    """The experiment's serving configuration, read from the database at most once per CONFIG_TTL."""
    key = experiment if isinstance(experiment, str) else experiment.key
    with _lock:
        cached = _configs.get(key)
    if cached is not None:
        return cached
    found = Experiment.objects.filter(key=key).first()
    if found is None:
        raise UnknownExperiment(f"no experiment {key!r}")
    experiment = found
    arms = tuple(experiment.arms.select_related("training_run", "variant").order_by("position"))
    if not arms:
        raise ServingError(f"{experiment.key} has no arms.")
    allocation = allocation_of(experiment, arms)
    bandit = bandit_runs = None
    if experiment.design == Experiment.Design.BANDIT:

        def periods(schedule: Any) -> tuple[tuple[float, bucketing.Allocation], ...]:
            return tuple(
                (starts, bucketing.Allocation(traffic=allocation.traffic, weights=weights, layer=allocation.layer))
                for starts, weights in schedule
            )

        bandit = periods(live_schedule(experiment.pk))
        bandit_runs = {run: periods(schedule) for run, schedule in _run_schedules(experiment.pk).items()}
    config = ServingConfig(
        experiment_id=experiment.pk,
        key=experiment.key,
        status=experiment.status,
        design=experiment.design,
        salt=experiment.salt,
        allocation=allocation,
        arms=arms,
        control=next(i for i, arm in enumerate(arms) if arm.is_control),
        exploration=experiment.exploration_percent / 100,
        bandit=bandit,
        bandit_runs=bandit_runs,
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


def _probability(config: ServingConfig, index: int, allocation: bucketing.Allocation | None = None) -> float:
    """P(a random user is served this arm's list): the arm's assignment share, plus, for the control,
    the users outside the experiment (they are served the control too). 1.0 when not running.
    `allocation`: a bandit period's (default: the arms' fixed weights)."""
    if config.status != Experiment.Status.RUNNING:
        return 1.0
    if config.design == Experiment.Design.INTERLEAVING:  # exposed users all get the interleaved list instead
        return 1 - interleaved_probability(config)
    allocation = allocation or config.allocation
    share = bucketing.assignment_probability(allocation, index)
    if index == config.control:
        share += 1 - allocation.entry_count / bucketing.BUCKETS
    return share


def _run_schedules(experiment_id: int) -> dict[int, tuple[tuple[float, tuple[float, ...]], ...]]:
    """(starts_at as epoch seconds, weights) of each running simulation run's history, by the run's id.
    Only `simulate --http` runs name theirs in requests; an in-process run's history is listed too, but
    no request names it."""
    rows = (
        BanditUpdate.objects.filter(experiment_id=experiment_id, simulation__status="running")
        .order_by("simulation_id", "period")
        .values_list("simulation_id", "starts_at", "weights")
    )
    schedules: dict[int, list[tuple[float, tuple[float, ...]]]] = {}
    for simulation_id, starts_at, weights in rows:
        schedules.setdefault(simulation_id, []).append((starts_at.timestamp(), tuple(weights)))
    return {run: tuple(schedule) for run, schedule in schedules.items()}


def _schedule(config: ServingConfig, simulation: int | None) -> tuple[tuple[float, bucketing.Allocation], ...]:
    """The bandit periods a request's user is assigned by: its simulation run's, else the live history's."""
    run = config.bandit_runs.get(simulation) if config.bandit_runs and simulation is not None else None
    return run or config.bandit or ()


def _period_allocation(schedule: tuple[tuple[float, bucketing.Allocation], ...], at: float) -> bucketing.Allocation:
    """The allocation of the bandit period in force at epoch second `at` (the first before period 0)."""
    position = bisect.bisect_right([starts for starts, _ in schedule], at) - 1
    return schedule[max(position, 0)][1]


def _bandit_arm(config: ServingConfig, user_id: str, at: float, simulation: int | None) -> tuple[int, float]:
    """A bandit user's (arm index, served probability): the arm of their first exposure if they have
    one (process cache, then the exposure row), else assigned with the weights in force at `at`, in
    the history of the request's simulation run, if any (`_schedule`)."""
    key = (config.experiment_id, user_id)
    with _lock:
        known = _sticky.get(key)
    if known is not None:
        return known
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT arm_id, first_exposed_at FROM {Exposure._meta.db_table} WHERE experiment_id = %s AND user_id = %s",
            [config.experiment_id, user_id],
        )
        row = cursor.fetchone()
    index = next((i for i, arm in enumerate(config.arms) if row is not None and arm.pk == row[0]), None)
    if row is not None and index is not None:
        first = row[1]
        allocation = _period_allocation(_schedule(config, simulation), first.timestamp() if first else at)
    else:
        allocation = _period_allocation(_schedule(config, simulation), at)
        assigned = bucketing.assign(allocation, config.salt, user_id).arm
        index = config.control if assigned is None else assigned
    known = (index, _probability(config, index, allocation))
    with _lock:
        _sticky[key] = known
    return known


def clear_cache() -> None:
    with _lock:
        _configs.clear()
        _sticky.clear()
