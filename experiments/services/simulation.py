"""Simulated traffic for a running experiment, stored like live traffic but marked with its run.

Shoppers are the real users of the arms' data set; what they want next is what they really
bought after the data set's hold-out time (`Dataset.holdout_from`, which training never
sees). Each simulated day goes through the experiment's own bucketing (`assign_many` with its
allocation and salt) and the arms' frozen trained models (the serving artifacts, scored in
batches with seen items removed); the day's served requests, first exposures and impression,
click, add-to-cart and purchase events are then written in bulk through the ingestion path,
each pointing to the run. The Django-free core (`experiments.simulation`) draws the outcomes.
"""

from __future__ import annotations

import contextlib
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.db import OperationalError, transaction
from django.utils import timezone

from experiments import bucketing
from experiments.models import Event, Experiment, Exposure, ServedRequest, SimulationRun
from experiments.services.events import insert_events
from experiments.services.rollups import fold, recompute
from experiments.services.serving import allocation_of
from experiments.simulation import DayBatch, Shoppers, SimulationConfig, SimulationError, run
from recommenders.algorithms.base import Recommender, top_k
from recommenders.models import Item
from recommenders.services.training import load_training_data
from recommenders.serving import model_for_run

CONFIG_FIELDS = {f.name for f in fields(SimulationConfig)} - {"start"}


class SimulationRefused(Exception):
    """The simulation cannot run for this experiment or configuration; the message says why."""


def queue_simulation(
    experiment: Experiment, settings: dict[str, Any], requested_by: User | None = None, *, send: bool = True
) -> SimulationRun:
    """Check the experiment and the settings, create a queued run and (with `send`) queue its task."""
    from experiments.tasks import simulate_task

    unknown = sorted(set(settings) - CONFIG_FIELDS)
    if unknown:
        raise SimulationRefused(f"unknown setting {unknown[0]!r}; use {', '.join(sorted(CONFIG_FIELDS))}")
    try:
        SimulationConfig(**settings)
    except SimulationError as error:
        raise SimulationRefused(str(error)) from None
    if experiment.status != Experiment.Status.RUNNING:
        raise SimulationRefused(f"{experiment.key} is {experiment.status}: start it before simulating traffic")
    dataset = _dataset(experiment)
    if dataset.holdout_from is None:
        raise SimulationRefused(
            f"data set {dataset.name!r} has no held-out period to simulate from: import it with --holdout-fraction"
        )
    with transaction.atomic():
        simulation = SimulationRun.objects.create(
            experiment=experiment, config=settings, requested_by=requested_by, message="waiting for a worker"
        )
        if send:
            transaction.on_commit(lambda: simulate_task.delay(simulation.pk))
    return simulation


def run_simulation(run_id: int) -> None:
    """The task body: claim the run, simulate day by day, store, fold the rollups (idempotent)."""
    claimed = SimulationRun.objects.filter(pk=run_id, status="queued").update(
        status="running", started_at=timezone.now(), message="loading the shoppers"
    )
    if not claimed:
        return
    simulation = SimulationRun.objects.select_related("experiment").get(pk=run_id)
    try:
        _simulate(simulation)
    except OperationalError:
        with contextlib.suppress(OperationalError):
            SimulationRun.objects.filter(pk=run_id).update(status="queued", message="retrying after a database error")
        raise
    except Exception as error:
        SimulationRun.objects.filter(pk=run_id).update(
            status="failed", finished_at=timezone.now(), message=f"failed: {error}"[:300],
            error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc(),
        )  # fmt: skip


def delete_simulation(simulation: SimulationRun) -> None:
    """Remove a run with all it stored, then rebuild the experiment's rollups without it."""
    with transaction.atomic():
        Event.objects.filter(simulation=simulation)._raw_delete(Event.objects.db)  # type: ignore[attr-defined]
        Exposure.objects.filter(simulation=simulation).delete()
        ServedRequest.objects.filter(simulation=simulation).delete()
        experiment_id = simulation.experiment_id
        simulation.delete()
    recompute(experiment_id, lag=timedelta(0))


def _dataset(experiment: Experiment) -> Any:
    arm = experiment.arms.exclude(variant=None).select_related("variant__dataset").first()
    if arm is None or arm.variant is None:
        raise SimulationRefused(f"{experiment.key} has no arm with a trained variant to simulate")
    return arm.variant.dataset


def _simulate(simulation: SimulationRun) -> None:
    experiment = simulation.experiment
    dataset = _dataset(experiment)
    data = load_training_data(dataset, include_holdout=True)
    prices = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "price"))
    item_price = np.array([float(prices.get(i) or np.nan) for i in data.item_ids])
    shoppers = Shoppers.build(data, cutoff=int(dataset.holdout_from.timestamp()), item_price=item_price)
    config = SimulationConfig(**simulation.config)
    arms = tuple(experiment.arms.select_related("training_run", "variant").order_by("position"))
    models = [model_for_run(arm.training_run) for arm in arms]  # type: ignore[arg-type]
    allocation = allocation_of(experiment, arms)
    rows = SimulationRun.objects.filter(pk=simulation.pk)

    def assign(user_ids: np.ndarray) -> np.ndarray:
        # The shopper's own id decides the arm, as it would on a live request: same seed, same traffic.
        return bucketing.assign_many(allocation, experiment.salt, user_ids).arm

    def recommend(arm: int, users: np.ndarray, queries: Sequence[str | None]) -> np.ndarray:
        return _recommend_batch(models[arm], data.user_ids, data.item_ids, users, queries, config.k)

    def store(batch: DayBatch) -> None:
        _store_day(simulation, experiment, arms, allocation, data.user_ids, data.item_ids, shoppers, batch)

    def report(fraction: float, message: str) -> None:
        rows.update(progress=round(100 * fraction * 0.95), message=message[:300])

    def cancelled() -> bool:
        return bool(rows.filter(cancel_requested=True).exists())

    result = run(config, shoppers, recommend, assign, progress=report, should_stop=cancelled, on_batch=store,
                 keep_outcomes=False)  # fmt: skip
    rows.update(message="folding the rollups")
    fold(experiment.pk, lag=timedelta(0))
    totals = result.arms
    rows.update(
        status="succeeded", progress=100, finished_at=timezone.now(),
        message=f"cancelled after {result.days_completed} days" if result.cancelled else "simulated",
        sessions=sum(a.sessions for a in totals), impressions=sum(a.impressions for a in totals),
        clicks=sum(a.clicks for a in totals), purchases=sum(a.purchases for a in totals),
    )  # fmt: skip


def _recommend_batch(
    model: Recommender,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    users: np.ndarray,
    queries: Sequence[str | None],
    k: int,
) -> np.ndarray:
    """Top-k item indices (in the simulation data's item order) per user, seen items removed.

    Users the model knows without a query are scored in one batch; searches and unknown
    users go through `recommend` one by one (the serving path).
    """
    position = {item: j for j, item in enumerate(item_ids)}
    to_data = np.array([position.get(item, -1) for item in model.item_ids], dtype=np.int64)
    out = np.full((len(users), k), -1, dtype=np.int64)
    known = [i for i, (u, q) in enumerate(zip(users, queries, strict=True))
             if q is None and user_ids[u] in model._user_pos]  # fmt: skip
    if known:
        pos = np.array([model._user_pos[user_ids[users[i]]] for i in known], dtype=np.int64)
        scores = model.score_users(pos).copy()
        seen = model.seen[pos]
        scores[seen.nonzero()] = -np.inf
        best = top_k(scores, k)
        out[known, : best.shape[1]] = to_data[best]
    for i in sorted(set(range(len(users))) - set(known)):
        recs = model.recommend(user_ids[users[i]], k, queries[i])
        out[i, : len(recs)] = [position.get(r.item_id, -1) for r in recs]
    return out


def _store_day(
    simulation: SimulationRun,
    experiment: Experiment,
    arms: Sequence[Any],
    allocation: bucketing.Allocation,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    shoppers: Shoppers,
    batch: DayBatch,
) -> None:
    prefix = simulation.user_prefix
    k = int(simulation.config.get("k", 10))
    probability = [bucketing.assignment_probability(allocation, a) for a in range(len(arms))]
    sessions, outcome = batch.sessions, batch.outcomes
    request_of: dict[int, uuid.UUID] = {}
    served, exposures, events = [], {}, []
    now = timezone.now()
    for j in range(len(sessions)):
        arm = int(batch.arm[j])
        if arm < 0:
            continue
        request_id = uuid.uuid4()
        request_of[batch.session_offset + j] = request_id
        user = prefix + user_ids[sessions.user[j]]
        when = datetime.fromtimestamp(int(sessions.timestamp[j]), tz=UTC)
        served.append(ServedRequest(
            request_id=request_id, experiment=experiment, arm=arms[arm], user_id=user, exposed=True,
            arm_probability=probability[arm], query=sessions.query[j] or "", k=k, served_at=when,
            simulation=simulation,
        ))  # fmt: skip
        exposures.setdefault(user, Exposure(experiment=experiment, arm=arms[arm], user_id=user, bucket=0,
                                             first_exposed_at=when, simulation=simulation))  # fmt: skip
    for n in range(len(outcome.session)):
        session = int(outcome.session[n])
        request_id = request_of.get(session)
        if request_id is None:
            continue
        j = session - batch.session_offset
        user = prefix + user_ids[sessions.user[j]]
        arm_index = int(outcome.arm[n])
        item = item_ids[int(outcome.item[n])]
        position = int(outcome.position[n])
        when = datetime.fromtimestamp(int(sessions.timestamp[j]), tz=UTC)
        base = (user, item, request_id, experiment.pk, arms[arm_index].pk, position, probability[arm_index])
        events.append((f"{request_id}:{position}:i", "impression", *base, None, when, now))
        # Clicks, carts and purchases follow the impression within the session's first minutes.
        if outcome.clicked[n]:
            events.append((f"{request_id}:{position}:c", "click", *base, None, when + timedelta(seconds=20), now))
        if outcome.carted[n]:
            events.append((f"{request_id}:{position}:a", "add_to_cart", *base, None, when + timedelta(seconds=60), now))
        if outcome.purchased[n]:
            revenue = f"{float(outcome.revenue[n]):.2f}"
            events.append(
                (f"{request_id}:{position}:p", "purchase", *base, revenue, when + timedelta(seconds=120), now)
            )
    with transaction.atomic():
        ServedRequest.objects.bulk_create(served, batch_size=5000)
        existing = set(Exposure.objects.filter(experiment=experiment, user_id__in=list(exposures)).values_list(
            "user_id", flat=True))  # fmt: skip
        Exposure.objects.bulk_create([e for u, e in exposures.items() if u not in existing], batch_size=5000)
        insert_events(events, simulation_id=simulation.pk)
