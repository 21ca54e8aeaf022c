"""Predicted online CTR of a candidate variant from an experiment's logged impressions (off-policy).

Log sources (one experiment's events):

* platform traffic: the impressions of exposed requests served with an exploration share
  (``ServedRequest.exploration_share`` > 0), whose propensities are the mixture policy's
  position-wise marginals (serving.services.exploration). Requests without exploration log
  the arm's probability instead, which is not a position-wise propensity: they are left out and
  counted. Clicks are matched to impressions by (request id, item).
* an imported log (``import_events``): every impression with a propensity in (0, 1]; a request is
  (user, timestamp) and clicks are matched by (user, item, position, timestamp). Its items must be
  in the candidate's data set: a catalogue the candidate never saw (e.g. the Open Bandit Dataset's
  ZOZOTOWN items against an Online Retail model) is refused with the reason, since the candidate
  can never show those items and the logs say nothing about its choices.

The candidate is deterministic: its training run's frozen model ranks each logged request's user
(and query) with ``BatchScorer``, exactly as serving would, and pi(item, position | request) = 1
when it ranks that item at that position. A simulated run's requests (``SimulationRun``) store
their users as "sim<run>:<shopper>"; an in-process run's arms ranked the shopper, so the candidate
ranks the shopper too, while a run sent over HTTP (``--http``) was served under the prefixed id
(the models' cold-start lists), so the candidate is given that same id. The intervals resample
users (every impression of one user together: the user's arm and tastes are shared), the unit the
experiment randomises. ``engine.offpolicy.evaluate_ranking_target`` then
gives IPS, SNIPS and DR (position-wise, independent-item assumption) with BCa bootstrap intervals
(users resampled), the effective sample size and the coverage warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.utils import timezone

from core import jobs
from engine.offpolicy import (
    EstimatorConfig,
    OffPolicyError,
    PositionWiseEvaluation,
    SlateLog,
    evaluate_ranking_target,
)
from engine.offpolicy import (
    OffPolicyEstimate as CoreEstimate,
)
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from recommenders.models import Item, TrainingRun, Variant
from recommenders.serving import model_for_run
from serving.models import Event, ServedRequest
from simulation.models import SimulationRun

DEFAULT_BOOTSTRAP = 1000
INTERVAL_NAMES = {"percentile": "percentile", "bca": "bias-corrected and accelerated (BCa)"}
SETTINGS = {"seed", "n_bootstrap", "clip"}


class OffPolicyRefused(Exception):
    """This variant cannot be estimated from this experiment's logs; the message says why."""


@dataclass
class ImpressionLog:
    """One log source's usable impressions, row-aligned, with request grouping and what was left out."""

    request: list[str] = field(default_factory=list)
    user: list[str] = field(default_factory=list)
    scored_user: list[str] = field(default_factory=list)  # the id the candidate ranks for (see the docstring)
    query: list[str] = field(default_factory=list)
    item: list[str] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    propensity: list[float] = field(default_factory=list)
    click: list[bool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explored_requests: int = 0
    # Share of the candidate's placements (request, position) whose item has zero logging propensity there
    # (outside that request's pool C); None when not computed (imported logs: their pools are unknown).
    zero_propensity_share: float | None = None

    @property
    def n(self) -> int:
        return len(self.item)


# ---- queueing ------------------------------------------------------------------------------


def create_estimate(
    variant: Variant, experiment: Experiment, settings: dict[str, Any] | None = None, requested_by: User | None = None
) -> OffPolicyEstimate:
    """Check the request and create a queued estimate (``offpolicy.tasks.queue_estimate`` also queues its task)."""
    settings = dict(settings or {})
    run = check_estimate(variant, experiment, settings)
    return OffPolicyEstimate.objects.create(
        variant=variant, training_run=run, experiment=experiment, config=settings, requested_by=requested_by,
        message="waiting for a worker",
    )  # fmt: skip


def check_estimate(variant: Variant, experiment: Experiment, settings: dict[str, Any]) -> TrainingRun:
    """The candidate's training run; OffPolicyRefused unless the settings, the run and the log can work."""
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise OffPolicyRefused(f"unknown setting {unknown[0]!r}; use {', '.join(sorted(SETTINGS))}")
    try:
        _estimator_config(settings)
    except OffPolicyError as error:
        raise OffPolicyRefused(str(error)) from None
    run = variant.latest_successful_run()
    if run is None:
        raise OffPolicyRefused(f"{variant.label} has no successful training run: train it first")
    impressions = Event.objects.filter(experiment=experiment, type=Event.Type.IMPRESSION)
    if experiment.source == Experiment.Source.PLATFORM:
        exploring = ServedRequest.objects.filter(experiment=experiment, exposed=True, exploration_share__gt=0)
        if not exploring.exists():
            raise OffPolicyRefused(
                f"{experiment.key} logged no request with an exploration share: its impressions carry the arm's "
                "probability, not the position-wise propensities off-policy estimates need; run an experiment "
                "with exploration_percent > 0 (or import a log with propensities)"
            )
        return run
    usable = impressions.filter(propensity__gt=0, propensity__lte=1)
    if not usable.exists():
        raise OffPolicyRefused(
            f"{experiment.key} has no imported impression with a propensity in (0, 1]: without the logging "
            "policy's propensities the logs cannot be reweighted"
        )
    logged = set(usable.values_list("item_id", flat=True).distinct())
    known = Item.objects.filter(dataset_id=variant.dataset_id, external_id__in=logged).count()
    if known == 0:
        raise OffPolicyRefused(
            f"none of the {len(logged):,} items in {experiment.key}'s log is in data set {variant.dataset.name!r}, "
            f"which {variant.label} was trained on: it can never show them, so these logs say nothing about its "
            "choices (an imported log from another catalogue cannot evaluate this variant)"
        )
    return run


def _estimator_config(settings: dict[str, Any]) -> EstimatorConfig:
    return EstimatorConfig(
        n_bootstrap=int(settings.get("n_bootstrap", DEFAULT_BOOTSTRAP)),
        seed=int(settings.get("seed", 0)),
        clip=None if settings.get("clip") is None else float(settings["clip"]),
        # BCa rather than percentile: on the simulator (bench/offpolicy_validity.py, development seeds) the
        # percentile intervals of the arms' estimates missed the truth on the side the skew of a few large
        # weights predicts; BCa corrects that skew (see engine.offpolicy.estimators.bca_quantiles).
        interval="bca",
    )


# ---- the task body ---------------------------------------------------------------------------


def run_estimate(estimate_id: int) -> None:
    """Claim a queued estimate, compute it and store the result (idempotent: only a queued one is claimed).

    A refusal (OffPolicyRefused, OffPolicyError) fails the estimate with its reason; any other error
    fails it with the traceback; a database error puts it back in the queue for the task's retry.
    """
    if not jobs.claim(OffPolicyEstimate, estimate_id, "loading the logged impressions"):
        return
    estimate = OffPolicyEstimate.objects.select_related("experiment", "variant", "training_run").get(pk=estimate_id)
    rows = OffPolicyEstimate.objects.filter(pk=estimate_id)

    def report(progress: int, message: str) -> None:
        rows.update(progress=progress, message=message[:300])

    try:
        with jobs.heartbeat(OffPolicyEstimate, estimate_id):
            evaluation, log = compute_estimate(estimate, report)
    except OperationalError:
        jobs.requeue(OffPolicyEstimate, estimate_id)
        raise
    except (OffPolicyRefused, OffPolicyError) as error:
        rows.update(status="failed", finished_at=timezone.now(), message=f"refused: {error}"[:300],
                    error=str(error))  # fmt: skip
        return
    except Exception as error:
        jobs.fail(OffPolicyEstimate, estimate_id, error)
        return
    rows.update(
        status="succeeded", finished_at=timezone.now(), progress=100,
        message=f"estimated from {log.n:,} impressions of {len(set(log.request)):,} requests",
        n=log.n, requests=len(set(log.request)), effective_sample_size=evaluation.ips.effective_sample_size,
        result=result_of(evaluation, log), warnings=warnings_of(evaluation, log), method=method_of(evaluation),
    )  # fmt: skip


def compute_estimate(
    estimate: OffPolicyEstimate, report: Callable[[int, str], None] = lambda p, m: None
) -> tuple[PositionWiseEvaluation, ImpressionLog]:
    """Load the experiment's log, rank every logged request with the candidate and evaluate it."""
    check_estimate(estimate.variant, estimate.experiment, estimate.config)
    log = load_log(estimate.experiment)
    if log.n < 2:
        raise OffPolicyRefused(f"{estimate.experiment.key} has {log.n} usable impression(s): at least 2 are needed")
    report(20, f"ranking {len(set(log.request)):,} logged requests with {estimate.variant.label}")
    pool_runs = []
    if estimate.experiment.source == Experiment.Source.PLATFORM:
        pool_runs = [arm.training_run for arm in estimate.experiment.arms.select_related("training_run")
                     .order_by("position") if arm.training_run is not None]  # fmt: skip
    slate, target = candidate_placements(estimate.training_run, log, pool_runs)
    report(60, f"estimating from {log.n:,} impressions")
    evaluation = evaluate_ranking_target(slate, target, _estimator_config(estimate.config))
    report(95, "storing the result")
    return evaluation, log


def load_log(experiment: Experiment) -> ImpressionLog:
    """The experiment's usable impressions (see the module docstring), ordered by request and position."""
    log = ImpressionLog()
    events = Event._meta.db_table
    with connection.cursor() as cursor:
        if experiment.source == Experiment.Source.PLATFORM:
            served = ServedRequest._meta.db_table
            cursor.execute(
                # The clicks as one distinct set joined once (a hash join): a correlated EXISTS per impression
                # scanned the experiment's clicks for every impression (25+ minutes on a 75,000-impression run).
                f"SELECT e.request_id::text, e.user_id, s.query, e.item_id, e.position, e.propensity, "
                f"c.request_id IS NOT NULL, s.simulation_id "
                f"FROM {events} e JOIN {served} s ON s.request_id = e.request_id "
                f"LEFT JOIN (SELECT DISTINCT request_id, item_id FROM {events} WHERE experiment_id = %s "
                f"AND type = 'click' AND request_id IS NOT NULL) c "
                f"ON c.request_id = e.request_id AND c.item_id = e.item_id "
                f"WHERE e.experiment_id = %s AND e.type = 'impression' AND s.exposed AND s.exploration_share > 0 "
                f"AND e.propensity > 0 AND e.propensity <= 1 ORDER BY e.request_id, e.position",
                [experiment.pk, experiment.pk],
            )
            # In-process simulated runs served the shopper behind "sim<run>:"; --http runs the prefixed id.
            in_process = {
                run.pk: run.user_prefix
                for run in SimulationRun.objects.filter(experiment=experiment)
                if "http" not in (run.config or {})
            }
            _extend(log, cursor.fetchall(), in_process)
            log.explored_requests = ServedRequest.objects.filter(
                experiment=experiment, exposed=True, exploration_share__gt=0, explored=True
            ).count()
            left_out = Event.objects.filter(experiment=experiment, type=Event.Type.IMPRESSION).count() - log.n
            if left_out:
                log.notes.append(
                    f"{left_out:,} impression(s) of requests served without exploration were left out: their "
                    "propensity is the arm's probability, not a position-wise one"
                )
        else:
            cursor.execute(
                f"SELECT e.user_id || '@' || e.timestamp::text, e.user_id, '', e.item_id, e.position, e.propensity, "
                f"c.user_id IS NOT NULL, NULL "
                f"FROM {events} e LEFT JOIN (SELECT DISTINCT user_id, item_id, position, timestamp FROM {events} "
                f"WHERE experiment_id = %s AND type = 'click' AND position >= 1) c "
                f"ON c.user_id = e.user_id AND c.item_id = e.item_id AND c.position = e.position "
                f"AND c.timestamp = e.timestamp "
                f"WHERE e.experiment_id = %s AND e.type = 'impression' AND e.position >= 1 "
                f"AND e.propensity > 0 AND e.propensity <= 1 ORDER BY e.user_id, e.timestamp, e.position",
                [experiment.pk, experiment.pk],
            )
            _extend(log, cursor.fetchall())
            left_out = Event.objects.filter(experiment=experiment, type=Event.Type.IMPRESSION).count() - log.n
            if left_out:
                log.notes.append(
                    f"{left_out:,} impression(s) without a position or a propensity in (0, 1] were left out "
                    "(missing or zero propensities cannot be inverse-weighted)"
                )
    return log


def _extend(log: ImpressionLog, rows: list[tuple[Any, ...]], in_process: dict[int, str] | None = None) -> None:
    prefixes = in_process or {}
    for request, user, query, item, position, propensity, click, simulation in rows:
        prefix = prefixes.get(simulation) if simulation is not None else None
        log.request.append(request)
        log.user.append(user)
        # "sim<run>:<id>" or, for a replicated shopper, "sim<run>.<replica>:<id>": the id follows the first ":".
        log.scored_user.append(user.partition(":")[2] if prefix else user)
        log.query.append(query or "")
        log.item.append(item)
        log.position.append(int(position))
        log.propensity.append(float(propensity))
        log.click.append(bool(click))


def candidate_placements(
    run: TrainingRun, log: ImpressionLog, pool_runs: Sequence[TrainingRun] = ()
) -> tuple[SlateLog, np.ndarray]:
    """The log as a SlateLog over the union of logged and candidate items, and the item the candidate
    places at each logged impression's (request, position), -1 when its list is shorter there.

    ``pool_runs``: the exploring experiment's arms' training runs. Each logged request's pool C is then
    rebuilt (the union of the arms' top k for its user and query, as serving built it) and
    ``log.zero_propensity_share`` set to the share of the candidate's placements, over every logged
    request and position, whose item is outside C: the logging policy could never show it there
    (propensity 0), so IPS counts no click for it. This costs one scoring pass per arm."""
    from simulation.services.runs import BatchScorer  # heavy module: only the task needs it

    model = model_for_run(run)
    vocabulary = list(dict.fromkeys([*model.item_ids, *log.item]))
    index = {item: j for j, item in enumerate(vocabulary)}
    unknown_items = len({item for item in log.item if item not in set(model.item_ids)})
    if unknown_items:
        log.notes.append(
            f"{unknown_items:,} logged item(s) are not in the candidate's catalogue: it never shows them (weight 0)"
        )
    users = list(dict.fromkeys(log.scored_user))
    user_index = {user: u for u, user in enumerate(users)}
    requests = list(dict.fromkeys(log.request))
    request_index = {request: r for r, request in enumerate(requests)}
    first_row: dict[str, int] = {}
    for row, request in enumerate(log.request):
        first_row.setdefault(request, row)
    k = max(log.position)
    request_users = np.array([user_index[log.scored_user[first_row[r]]] for r in requests], dtype=np.int64)
    queries = [log.query[first_row[r]] or None for r in requests]
    lists = BatchScorer(model, users, vocabulary)(request_users, queries, k)
    if pool_runs:
        pools = np.concatenate(
            [BatchScorer(model_for_run(r), users, vocabulary)(request_users, queries, k) for r in pool_runs], axis=1
        )
        placed = lists >= 0
        inside = (lists[:, :, None] == pools[:, None, :]).any(axis=2)
        share = float((placed & ~inside).sum() / max(int(placed.sum()), 1))
        log.zero_propensity_share = share
        if share > 0:
            log.notes.append(
                f"{share:.1%} of the candidate's placements (request, position) show an item outside that "
                "request's exploration pool (the arms' top items), where the logging propensity is 0: IPS counts "
                "no clicks there, SNIPS assumes they click like the covered ones, DR sees them only through its "
                "reward model"
            )
    rows = np.array([request_index[r] for r in log.request], dtype=np.int64)
    positions = np.array(log.position, dtype=np.int64) - 1
    stored_users = {user: u for u, user in enumerate(dict.fromkeys(log.user))}
    slate = SlateLog(
        items=np.array([index[item] for item in log.item], dtype=np.int64), positions=positions,
        rewards=np.array(log.click, dtype=np.float64), propensities=np.array(log.propensity),
        n_items=len(vocabulary), n_positions=k,
        clusters=np.array([stored_users[user] for user in log.user], dtype=np.int64),  # resample users
    )  # fmt: skip
    return slate, lists[rows, positions]


# ---- what is stored --------------------------------------------------------------------------


def _summary(estimate: CoreEstimate) -> dict[str, Any]:
    return {
        "estimate": estimate.estimate, "ci_lower": estimate.ci_lower, "ci_upper": estimate.ci_upper,
        "standard_error": estimate.standard_error, "effective_sample_size": estimate.effective_sample_size,
        "max_weight": estimate.max_weight, "n_clipped": estimate.n_clipped,
    }  # fmt: skip


def result_of(evaluation: PositionWiseEvaluation, log: ImpressionLog) -> dict[str, Any]:
    """The JSON stored on the estimate: the three estimators, per-position IPS and the log's facts."""
    return {
        "IPS": _summary(evaluation.ips),
        "SNIPS": _summary(evaluation.snips),
        "DR": _summary(evaluation.dr),
        "per_position": [None if p is None else p.estimate for p in evaluation.per_position],
        "unlogged_target_mass": evaluation.unlogged_target_mass,
        "confidence": evaluation.ips.confidence,
        "n_bootstrap": evaluation.ips.n_bootstrap,
        "logged_ctr": sum(log.click) / log.n,
        "explored_requests": log.explored_requests,
        "zero_propensity_share": log.zero_propensity_share,
        "reward_model": evaluation.dr.method,
    }


def warnings_of(evaluation: PositionWiseEvaluation, log: ImpressionLog) -> list[str]:
    found = [*log.notes, *evaluation.warnings]
    for estimate in (evaluation.ips, evaluation.snips, evaluation.dr):
        found.extend(estimate.warnings)
    return list(dict.fromkeys(found))


def method_of(evaluation: PositionWiseEvaluation) -> str:
    users = evaluation.ips.n_clusters
    unit = f"resampling users ({users:,}: a user's impressions together)" if users else "over impressions"
    return (
        f"Position-wise slate IPS, SNIPS and DR. {evaluation.method}. DR reward model: "
        f"{evaluation.dr.method.split('reward model: ', 1)[-1]}. Intervals: {evaluation.ips.confidence:.0%} "
        f"{INTERVAL_NAMES[evaluation.ips.interval]} bootstrap {unit}, {evaluation.ips.n_bootstrap:,} resamples."
    )
