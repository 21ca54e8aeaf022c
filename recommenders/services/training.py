"""Training and offline evaluation of variant versions (called by Celery tasks, given ids).

Both use cases claim their row with a conditional UPDATE (queued -> running), so a
redelivered or duplicated task message does the work at most once; a run left `running`
by a worker that died is reclaimed once it is older than the task's hard time limit.
Failures are recorded with their traceback; only database outages propagate (the task
retries those).
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from django.contrib.auth.models import User
from django.db import OperationalError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import jobs
from recommenders import artifacts
from recommenders.algorithms import registry
from recommenders.algorithms.base import ProgressCallback, TrainingData
from recommenders.models import Dataset, Evaluation, Interaction, Item, TrainingRun, Variant
from recommenders.services.metric_curves import metric_curves

TRAINING_TIME_LIMIT = 60 * 60  # seconds; the tasks' hard limit, also when a stuck run may be reclaimed
PROGRESS_INTERVAL = 0.5  # seconds between progress writes: often enough to watch, rare enough to be cheap

RunModel = TypeVar("RunModel", TrainingRun, Evaluation)


class TrainingError(Exception):
    pass


def load_training_data(dataset: Dataset, *, include_holdout: bool = False) -> TrainingData:
    """A data set's interactions and item text as `TrainingData` (items in id order, users sorted).

    Interactions from `dataset.holdout_from` on are left out unless `include_holdout`.
    """
    items = list(
        Item.objects.filter(dataset=dataset)
        .order_by("id")
        .values_list("id", "external_id", "title", "description", "category")
    )
    position = {pk: j for j, (pk, *_rest) in enumerate(items)}
    interactions = Interaction.objects.filter(dataset=dataset)
    if dataset.holdout_from is not None and not include_holdout:
        interactions = interactions.filter(timestamp__lt=dataset.holdout_from)
    rows = interactions.order_by("id").values_list("user_id", "item_id", "value", "timestamp")
    users: list[str] = []
    item_index: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    for user, item_pk, value, when in rows.iterator(chunk_size=20_000):
        users.append(user)
        item_index.append(position[item_pk])
        values.append(value)
        stamps.append(int(when.timestamp()))
    if not users:
        raise TrainingError(f"Data set {dataset.name!r} has no interactions to train on.")
    user_ids, user_index = np.unique(np.asarray(users, dtype=object), return_inverse=True)
    return TrainingData(
        user_ids=tuple(str(u) for u in user_ids),
        item_ids=tuple(external for _pk, external, *_rest in items),
        user_index=user_index.astype(np.int64),
        item_index=np.asarray(item_index, dtype=np.int64),
        value=np.asarray(values, dtype=np.float32),
        timestamp=np.asarray(stamps, dtype=np.int64),
        item_text=tuple(
            " ".join(part for part in (title, description) if part) for _pk, _e, title, description, _c in items
        ),
        item_category=tuple(category for *_rest, category in items),
    )


def fingerprint(data: TrainingData) -> str:
    """sha256 over the ids and interaction arrays: equal fingerprints mean equal training data."""
    digest = hashlib.sha256()
    for ids in (data.user_ids, data.item_ids):
        digest.update("\x1f".join(ids).encode())
        digest.update(b"\x1e")
    for array in (data.user_index, data.item_index, data.value, data.timestamp):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# ---- queueing ------------------------------------------------------------------------


def create_training_run(variant: Variant, requested_by: User | None = None) -> TrainingRun:
    """A queued training run of the variant (``recommenders.tasks.queue_training`` also queues its task;
    ``train --inline`` runs it in-process with ``run_training``)."""
    run = TrainingRun.objects.create(variant=variant, requested_by=requested_by, message="waiting for a worker")
    if variant.status != Variant.Status.TRAINED:
        Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.TRAINING)
    return run


def create_evaluation(
    variant: Variant,
    *,
    split: str = Evaluation.Split.STRATIFIED,
    ratio: float = 0.75,
    seed: int = 42,
    k: int = 10,
    requested_by: User | None = None,
) -> Evaluation:
    """Validate the split settings and create a queued evaluation (``recommenders.tasks.queue_evaluation``
    also queues its task)."""
    if split not in Evaluation.Split.values:
        raise TrainingError(f"split {split!r} is unknown; use {', '.join(Evaluation.Split.values)}")
    if not 0 < ratio < 1:
        raise TrainingError(f"ratio {ratio} must lie strictly between 0 and 1")
    if not 1 <= k <= 1000:
        raise TrainingError(f"k {k} must lie between 1 and 1000")
    return Evaluation.objects.create(
        variant=variant, split=split, ratio=ratio, seed=seed, k=k, requested_by=requested_by,
        message="waiting for a worker",
    )  # fmt: skip


# ---- running -------------------------------------------------------------------------


def run_training(run_id: int) -> None:
    run = _claim(TrainingRun, run_id)
    if run is None:
        return
    variant = run.variant
    log: list[str] = []
    progress = _ProgressWriter(TrainingRun, run_id, log)
    try:
        with jobs.heartbeat(TrainingRun, run_id):
            progress(0.0, "loading data")
            data = load_training_data(variant.dataset)
            digest = fingerprint(data)
            log.append(f"{data.n_users} users x {data.n_items} items, {len(data.user_index)} interactions")
            model = registry.get(variant.algorithm)(variant.params)
            started = time.perf_counter()
            report = model.fit(data, _scaled(progress, 0.02, 0.95))
            log.append(f"fitted in {time.perf_counter() - started:.2f} s")
            progress(0.96, "saving the model")
            path, sha256 = artifacts.save_model(model, f"{variant.name}-v{variant.version}-run{run_id}.pkl")
    except OperationalError:
        _requeue(TrainingRun, run_id)
        raise
    except Exception as error:
        _fail(TrainingRun, run_id, error, log)
        Variant.objects.filter(pk=variant.pk).exclude(status=Variant.Status.TRAINED).update(
            status=Variant.Status.FAILED
        )
        return
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.SUCCEEDED, progress=100, message="trained", finished_at=timezone.now(),
            data_fingerprint=digest, artifact_path=str(path), artifact_sha256=sha256,
            fit_report={"history": report.history, "notes": _jsonable(report.notes)},
            peak_memory_mb=_peak_memory_mb(), log="\n".join(log),
        )  # fmt: skip
        Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.TRAINED)


def run_evaluation(evaluation_id: int) -> None:
    from recommenders.evaluation import splits
    from recommenders.evaluation.evaluator import evaluate, item_tfidf_vectors

    evaluation = _claim(Evaluation, evaluation_id)
    if evaluation is None:
        return
    variant = evaluation.variant
    log: list[str] = []
    progress = _ProgressWriter(Evaluation, evaluation_id, log)
    try:
        with jobs.heartbeat(Evaluation, evaluation_id):
            progress(0.0, "loading data")
            data = load_training_data(variant.dataset)
            if evaluation.split == Evaluation.Split.TEMPORAL:
                train, test = splits.temporal_split(data, test_fraction=1 - evaluation.ratio)
            elif evaluation.split == Evaluation.Split.LEAVE_LAST_OUT:
                train, test = splits.leave_last_out(data)
            else:
                train, test = splits.stratified_split(data, evaluation.ratio, evaluation.seed)
            model = registry.get(variant.algorithm)(variant.params)
            started = time.perf_counter()
            model.fit(train, _scaled(progress, 0.05, 0.85))
            train_seconds = time.perf_counter() - started
            progress(0.9, "ranking the test users")
            result = evaluate(model, train, test, evaluation.k, item_vectors=item_tfidf_vectors(train))
            progress(0.95, "measuring at every k up to 50")
            curves = metric_curves(model, train, test)
    except OperationalError:
        _requeue(Evaluation, evaluation_id)
        raise
    except Exception as error:
        _fail(Evaluation, evaluation_id, error, log)
        return
    from dataclasses import asdict

    # metrics["at_k"] holds the comparison page's metric@k curves (k = 1…50); the flat keys stay at evaluation.k.
    measured = {**asdict(result), **({"at_k": curves} if curves is not None else {})}
    Evaluation.objects.filter(pk=evaluation_id).update(
        status=Evaluation.Status.SUCCEEDED, progress=100, message="evaluated", finished_at=timezone.now(),
        data_fingerprint=fingerprint(data), metrics=_jsonable(measured),
        train_seconds=train_seconds, evaluate_seconds=result.seconds,
    )  # fmt: skip


def _claim(model: type[RunModel], pk: int) -> RunModel | None:
    """The job, claimed for this worker (``core.jobs.claim``: queued, or running with a dead worker);
    None when another worker has it or it has finished."""
    if not jobs.claim(model, pk):
        return None
    return model.objects.select_related("variant__dataset").get(pk=pk)


def _requeue(model: type[RunModel], pk: int) -> None:
    jobs.requeue(model, pk)


def _fail(model: type[RunModel], pk: int, error: BaseException, log: list[str]) -> None:
    jobs.fail(model, pk, error, **({"log": "\n".join(log)} if model is TrainingRun else {}))


class _ProgressWriter:
    """Writes (fraction, message) to the run's row, at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, model: type[RunModel], pk: int, log: list[str]) -> None:
        self._rows: QuerySet[Any] = model._default_manager.filter(pk=pk)
        self._log = log
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if message and (not self._log or self._log[-1] != message):
            self._log.append(message)
        if now - self._last < PROGRESS_INTERVAL and fraction < 1.0:
            return
        self._last = now
        self._rows.update(progress=max(0, min(100, round(100 * fraction))), message=message[:300])


def _scaled(progress: Callable[[float, str], None], low: float, high: float) -> ProgressCallback:
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


def _peak_memory_mb() -> float:
    # ru_maxrss is in KiB on Linux; it is the worker process's peak so far (not just this run).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays become floats/ints/lists; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
