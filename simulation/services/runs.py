"""Simulated traffic for a running experiment, stored like live traffic but marked with its run.

Shoppers are the real users of the arms' data set; what they want next is what they really
bought after the data set's hold-out time (`Dataset.holdout_from`, which training never
sees). Each simulated day goes through the experiment's own bucketing (`assign_many` with its
allocation and salt) and the arms' frozen trained models (the serving artifacts, scored in
batches by `BatchScorer` as `Recommender.recommend` would); the day's served requests, first
exposures and impression, click, add-to-cart and purchase events are then written in bulk
(`simulation_storage`: COPY on PostgreSQL, through the ingestion path's `copy_events`), each
pointing to the run. The Django-free core (`engine.simulation`) draws the outcomes.
On an interleaving experiment every simulated shopper in the experiment gets the team-draft list
of both arms (`run(..., interleaved=True)`); each impression and click is stored with the arm
that contributed its item, and the fold credits the clicks as for live traffic.
On an experiment with an exploration share, every simulated request in the experiment is served as
live serving would serve it (`engine.simulation.exploring`): the stored request id's hash picks
the explored requests, which show a random ordering of the union of every arm's top k; the served
requests store the share and the explored flag, and every impression the mixture policy's
position-wise propensity, so an off-policy estimate can read a simulated run's log.

A run can be cancelled (`cancel_simulation`): queued, it never starts; running, it stops
before its next day with status "cancelled" and keeps the days it stored. `simulation_http`
sends the same traffic through the HTTP API instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.db import OperationalError, transaction
from django.utils import timezone

from analysis.services import bandit_results
from analysis.services.rollups import fold, recompute
from core import jobs
from engine import bucketing
from engine.simulation import DayBatch, Exploration, Shoppers, SimulationConfig, SimulationError, run
from engine.simulation.config import SECONDS_PER_DAY
from experiments.models import Experiment
from experiments.services import bandit_schedule
from recommenders.algorithms.base import Recommender, TrainingData, top_k
from recommenders.models import Item
from recommenders.services.training import load_training_data
from recommenders.serving import model_for_run
from serving.models import Event, Exposure, ServedRequest
from serving.services.interleaving import teams
from serving.services.serve import allocation_of
from simulation.models import SimulationRun
from simulation.services.storage import DayQueue, RunWriter

CONFIG_FIELDS = {f.name for f in fields(SimulationConfig)} - {"start"}


class SimulationRefused(Exception):
    """The simulation cannot run for this experiment or configuration; the message says why."""


def create_simulation(
    experiment: Experiment, settings: dict[str, Any], requested_by: User | None = None
) -> SimulationRun:
    """Check the experiment and the settings and create a queued run (``simulation.tasks.queue_simulation``
    also queues its task; the demo runs it in-process)."""
    check_simulation(experiment, settings)
    return SimulationRun.objects.create(
        experiment=experiment, config=settings, requested_by=requested_by, message="waiting for a worker"
    )


def check_simulation(experiment: Experiment, settings: dict[str, Any]) -> None:
    """Raise SimulationRefused unless the settings are valid and the experiment can be simulated now."""
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


def run_simulation(run_id: int) -> None:
    """The task body: claim the run (queued, or running with a dead worker), simulate day by day, store, fold
    the rollups. Idempotent: a day whose requests are stored already is skipped, so a run taken over after
    its worker died resumes from its first missing day."""
    if not jobs.claim(SimulationRun, run_id, "loading the shoppers"):
        return
    simulation = SimulationRun.objects.select_related("experiment").get(pk=run_id)
    try:
        with jobs.heartbeat(SimulationRun, run_id):
            _simulate(simulation)
    except OperationalError:
        jobs.requeue(SimulationRun, run_id)
        raise
    except Exception as error:
        jobs.fail(SimulationRun, run_id, error)


def cancel_simulation(simulation: SimulationRun) -> SimulationRun:
    """Stop a run: a queued one at once, a running one before its next day (the task polls the flag).

    A cancelled run keeps (and folds) the days it stored; delete it to remove them. Raises
    SimulationRefused when the run has already finished.
    """
    rows = SimulationRun.objects.filter(pk=simulation.pk)
    # Conditional updates: a worker claiming the run at the same moment sees one state or the other.
    stopped = rows.filter(status="queued").update(
        status="cancelled", finished_at=timezone.now(), message="cancelled before it started", cancel_requested=True
    )
    if stopped:
        return rows.get()
    current = rows.get()
    if jobs.is_stale(current):  # its worker died: nothing will poll the flag, so it is cancelled now
        rows.filter(status="running").update(status="cancelled", finished_at=timezone.now(), cancel_requested=True,
                                             message="cancelled after its worker stopped")  # fmt: skip
        return rows.get()
    if rows.filter(status="running").update(cancel_requested=True, message="cancelling after the current day"):
        return rows.get()
    current = rows.get()
    raise SimulationRefused(f"simulation run {current.pk} has already {current.status}")


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


def load_shoppers(experiment: Experiment) -> tuple[TrainingData, Shoppers]:
    """The arms' data set with its held-out period, and the simulated shoppers built from it."""
    dataset = _dataset(experiment)
    data = load_training_data(dataset, include_holdout=True)
    prices = dict(Item.objects.filter(dataset=dataset).values_list("external_id", "price"))
    item_price = np.array([float(prices.get(i) or np.nan) for i in data.item_ids])
    return data, Shoppers.build(data, cutoff=int(dataset.holdout_from.timestamp()), item_price=item_price)


def _simulate(simulation: SimulationRun) -> None:
    experiment = simulation.experiment
    data, shoppers = load_shoppers(experiment)
    config = SimulationConfig(**simulation.config)
    arms = tuple(experiment.arms.select_related("training_run", "variant").order_by("position"))
    allocation = allocation_of(experiment, arms)
    interleaved = experiment.design == Experiment.Design.INTERLEAVING
    if interleaved:
        # Engine arm 0 is team A (the control), arm 1 team B; the served request and exposure hold A, as
        # when serving (services/interleaving.py), and every exposed user has the interleaved list's probability.
        arms = teams(arms)
        probabilities = [allocation.entry_count / bucketing.BUCKETS] * 2
    else:
        probabilities = [bucketing.assignment_probability(allocation, a) for a in range(len(arms))]
    scorers = [BatchScorer(model_for_run(arm.training_run), data.user_ids, data.item_ids) for arm in arms]  # type: ignore[arg-type]
    rows = SimulationRun.objects.filter(pk=simulation.pk)
    share = 0.0 if interleaved else experiment.exploration_percent / 100
    writer = RunWriter.build(simulation.pk, experiment.pk, [arm.pk for arm in arms], probabilities, config.k,
                             data.user_ids, data.item_ids, exploration_share=share,
                             replicas=config.population_scale)  # fmt: skip
    # With an exploration share, the same request ids as stored decide and order the explored lists, as serving does.
    exploration = Exploration(share, len(arms), writer.request_texts) if share > 0 else None

    def assign(user_ids: np.ndarray) -> np.ndarray:
        # The shopper's own id decides the arm, as it would on a live request: same seed, same traffic.
        arm = bucketing.assign_many(allocation, experiment.salt, user_ids).arm
        return np.where(arm >= 0, 0, -1) if interleaved else arm

    adaptive = None
    if bandit_schedule.is_bandit(experiment):
        start = config.start if config.start is not None else shoppers.cutoff
        adaptive = _BanditDays(experiment, simulation.pk, allocation, writer, int(start))
        assign = adaptive.assign

    def recommend(arm: int, users: np.ndarray, queries: Sequence[str | None]) -> np.ndarray:
        return scorers[arm](users, queries, config.k)

    def report(fraction: float, message: str) -> None:
        rows.update(progress=round(100 * fraction * 0.95), message=message[:300])

    def cancelled() -> bool:
        return bool(rows.filter(cancel_requested=True).exists())

    with DayQueue(adaptive.store if adaptive else writer.store) as days:
        if adaptive is not None:
            adaptive.queue = days
        result = run(config, shoppers, recommend, assign, progress=report, should_stop=cancelled,
                     on_batch=days.put, keep_outcomes=False, interleaved=interleaved,
                     before_day=adaptive.before_day if adaptive else None, exploration=exploration)  # fmt: skip
    rows.update(message="folding the rollups")
    fold(experiment.pk, lag=timedelta(0))
    if adaptive is not None and not result.cancelled:
        adaptive.before_day(result.days_completed)  # the weights the last day's traffic leads to
    totals = result.arms
    done = f"{result.days_completed} of {config.days} days"
    rows.update(
        status="cancelled" if result.cancelled else "succeeded", finished_at=timezone.now(),
        progress=round(100 * result.days_completed / config.days) if result.cancelled else 100,
        message=f"cancelled after {done}" if result.cancelled else f"simulated {done}",
        sessions=sum(a.sessions for a in totals), impressions=sum(a.impressions for a in totals),
        clicks=sum(a.clicks for a in totals), purchases=sum(a.purchases for a in totals),
    )  # fmt: skip


class _BanditDays:
    """A simulated bandit run: before each simulated day, store the day's weights (the same update
    service as the beat task, on the run's own history and simulated clock, after waiting for the
    earlier days' rows and folding them); assign new shoppers with them, keep returning shoppers in
    their first arm, and log each day's requests with the probabilities that day served."""

    def __init__(
        self, experiment: Experiment, simulation_id: int, allocation: bucketing.Allocation, writer: RunWriter,
        start: int,
    ) -> None:  # fmt: skip
        self.experiment, self.simulation_id, self.fixed, self.writer = experiment, simulation_id, allocation, writer
        self.start = start  # epoch second of simulated day 0
        self.queue: DayQueue | None = None  # the run's storing queue, set once it exists
        self.allocation = allocation
        self.arm_of: dict[str, int] = {}  # shopper id -> arm of their first exposure in this run
        self.probabilities: dict[int, tuple[float, ...]] = {}

    def before_day(self, day: int) -> None:
        at = datetime.fromtimestamp(self.start + day * SECONDS_PER_DAY, tz=UTC)
        if day == 0:
            row = bandit_schedule.start_history(self.experiment, at, self.simulation_id)
        else:
            if self.queue is not None:
                self.queue.wait()  # the earlier days are stored, so the fold sees them
            bandit_results.update_weights(self.experiment.pk, at=at, simulation_id=self.simulation_id)
            row = bandit_schedule.history(self.experiment.pk, self.simulation_id)[-1]
        self.allocation = bucketing.Allocation(
            traffic=self.fixed.traffic, weights=tuple(row.weights), layer=self.fixed.layer
        )
        self.probabilities[day] = tuple(
            bucketing.assignment_probability(self.allocation, a) for a in range(len(row.weights))
        )

    def assign(self, user_ids: np.ndarray) -> np.ndarray:
        return bandit_schedule.assign_sticky(self.allocation, self.experiment.salt, user_ids, self.arm_of)

    def store(self, batch: DayBatch) -> int:
        return replace(self.writer, arm_probability=self.probabilities[batch.day]).store(batch)


class BatchScorer:
    """One arm's frozen model answering a day's lists in batches, as `Recommender.recommend` would.

    Known users with history get `score_users` with their seen items removed; unknown users and
    users without history get `cold_start_scores`. Sessions are grouped by query (all in one
    group for a model that ignores queries), so a day costs one scoring call per distinct query
    (chunked to bound memory), not one per session.
    """

    CHUNK = 2048  # users scored at once: 2,048 x 4,000 items of float32 is 32 MB

    def __init__(self, model: Recommender, user_ids: Sequence[str], item_ids: Sequence[str]) -> None:
        self.model = model
        position = {item: j for j, item in enumerate(item_ids)}
        self.to_data = np.array([position.get(item, -1) for item in model.item_ids], dtype=np.int64)
        model_pos = np.array([model._user_pos.get(u, -1) for u in user_ids], dtype=np.int64)
        history = np.diff(model.seen.indptr) > 0
        # Data user index -> model row, -1 when the model must fall back to its cold start.
        self.row = np.where(model_pos >= 0, np.where(history[np.maximum(model_pos, 0)], model_pos, -1), -1)

    def __call__(self, users: np.ndarray, queries: Sequence[str | None], k: int) -> np.ndarray:
        out = np.full((len(users), k), -1, dtype=np.int64)
        groups: dict[str | None, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query if self.model.supports_query else None, []).append(i)
        for query, members in groups.items():
            index = np.array(members, dtype=np.int64)
            rows = self.row[users[index]]
            cold = index[rows < 0]
            if len(cold):
                scores = self.model.cold_start_scores(query)[None, :]
                out[cold] = self._best(scores, k)[0]
            # A model ignoring queries gives a user the same list in every session: score each user once.
            warm = index[rows >= 0]
            distinct, inverse = np.unique(rows[rows >= 0], return_inverse=True)
            best = np.empty((len(distinct), k), dtype=np.int64)
            for start in range(0, len(distinct), self.CHUNK):
                chunk = distinct[start : start + self.CHUNK]
                scores = self.model.score_users(chunk, query).copy()
                seen = self.model.seen[chunk]
                scores[seen.nonzero()] = -np.inf
                best[start : start + self.CHUNK] = self._best(scores, k)
            out[warm] = best[inverse]
        return out

    def _best(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Top-k data item indices per row, -1 where fewer than k items have a finite score."""
        best = _top_k(scores, k)
        lists = np.full((len(scores), k), -1, dtype=np.int64)
        finite = np.isfinite(np.take_along_axis(scores, best, axis=1))
        lists[:, : best.shape[1]] = np.where(finite, self.to_data[best], -1)
        return lists


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """`recommenders.algorithms.base.top_k` (best first, ties to the lower index), faster on many rows.

    top_k settles ties at the k-th score with a cumulative sum over the whole matrix; here
    only the rows that have such a tie (more than k scores at or above the k-th) go through
    it, the others are argpartition's k cells ordered by (-score, index): the same answer.
    """
    n_rows, n_items = scores.shape
    if k >= n_items or n_rows == 0:
        return top_k(scores, k)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    tied = (scores >= part_scores.min(axis=1, keepdims=True)).sum(axis=1) > k
    order = np.lexsort((part, -part_scores), axis=1)
    best = np.take_along_axis(part, order, axis=1).astype(np.int64)
    if tied.any():
        best[tied] = top_k(scores[tied], k)
    return best
