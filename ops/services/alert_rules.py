"""The alert rules: each looks at one experiment (or the platform) and answers a Finding, None (all is well)
or UNKNOWN (it could not tell: the alert it owns is neither opened nor resolved).

- ``srm``: the results' sample-ratio check has p < analysis' SRM_ALPHA (0.001). Critical.
- ``guardrail``: a guardrail metric of a treatment is breached (the results' guardrail status). Critical.
- ``event_rate``: the last hour received less than half the events of the same hour's average over the
  trailing week (at least MIN_BASELINE_EVENTS of them, so a quiet experiment does not flap). Warning.
- ``no_events``: a running experiment, started at least ABPLATFORM_ALERT_NO_EVENTS_MINUTES ago, received no live
  (non-simulated) event for that many minutes. Critical.
- ``rollup_lag``: its oldest unfolded event waits for more than ROLLUP_LAG_SECONDS (analysis' rollup_lags,
  measured on the database clock). Warning.
- ``job_failed`` (platform-wide): a training run, simulation run or off-policy estimate failed since the
  previous evaluation. Warning.

The results rules (srm, guardrail) apply to every evaluated experiment, imported ones included; the traffic
rules only to running ones.

Cost: event_rate counts an experiment's live events of the trailing week (8 windows in one aggregate over the
(experiment, id) index, filtered on received_at) at every evaluation; an hourly event counter kept by the fold
would make it a few row reads, and is the next step for experiments with millions of events a week.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from analysis.results_types import BanditSrm, ExperimentResults
from analysis.services.results import SRM_ALPHA, experiment_results
from engine.stats import SrmResult
from experiments.models import Experiment
from offpolicy.models import OffPolicyEstimate
from recommenders.models import TrainingRun
from serving.models import Event
from simulation.models import SimulationRun

logger = logging.getLogger(__name__)

SRM = "srm"
GUARDRAIL = "guardrail"
EVENT_RATE = "event_rate"
NO_EVENTS = "no_events"
ROLLUP_LAG = "rollup_lag"
JOB_FAILED = "job_failed"
RULES = (SRM, GUARDRAIL, EVENT_RATE, NO_EVENTS, ROLLUP_LAG, JOB_FAILED)
RESULTS_RULES = (SRM, GUARDRAIL)
TRAFFIC_RULES = (EVENT_RATE, NO_EVENTS, ROLLUP_LAG)
# The rules whose alert may pause an experiment that has auto_pause on.
PAUSING_RULES = (SRM, GUARDRAIL)

ROLLUP_LAG_SECONDS = 300.0
EVENT_RATE_DROP = 0.5  # the last hour below this share of the trailing week's same hour
MIN_BASELINE_EVENTS = 20.0  # events an hour the trailing week must average before a drop counts
TRAILING_DAYS = 7
JOB_FAILED_QUIET = timedelta(hours=24)  # a job_failed alert resolves after this long without a new failure


class Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str  # warning or critical (ops.models.Alert.Severity)
    message: str
    details: dict[str, Any] = field(default_factory=dict)


Outcome = Finding | None | Unknown


def results_findings(experiment: Experiment) -> dict[str, Outcome]:
    """The srm and guardrail outcomes from the experiment's results (UNKNOWN for both when they fail)."""
    try:
        results = experiment_results(experiment)
    except Exception:  # a result that cannot be computed is logged, and leaves its alerts as they are
        logger.exception("alerts: the results of %s could not be computed", experiment.key)
        return dict.fromkeys(RESULTS_RULES, UNKNOWN)
    return {SRM: srm_finding(results), GUARDRAIL: guardrail_finding(results)}


def srm_finding(results: ExperimentResults) -> Finding | None:
    srm = getattr(results, "srm", None)
    if not isinstance(srm, SrmResult | BanditSrm) or not srm.p_value < SRM_ALPHA:
        return None
    observed = srm.observed if isinstance(srm.observed, dict) else list(srm.observed)
    expected = srm.expected if isinstance(srm.expected, dict) else list(srm.expected)
    return Finding(
        SRM, "critical",
        f"{results.experiment}: sample-ratio mismatch (p = {srm.p_value:.2g} < {SRM_ALPHA:g}); "
        "the assignment or the logging is broken, the results cannot be trusted",
        {"p_value": srm.p_value, "observed": observed, "expected": expected},
    )  # fmt: skip


def guardrail_finding(results: ExperimentResults) -> Finding | None:
    breached = [
        {"arm": comparison.arm, "metric": guardrail.metric, "effect": guardrail.effect, "reason": guardrail.reason}
        for comparison in getattr(results, "comparisons", ())
        for guardrail in comparison.guardrails
        if guardrail.status == "breached"
    ]
    if not breached:
        return None
    names = ", ".join(f"{row['metric']} in {row['arm']}" for row in breached)
    return Finding(GUARDRAIL, "critical", f"{results.experiment}: guardrail breached ({names})", {"breached": breached})


def event_rate_finding(experiment: Experiment, now: datetime) -> Finding | None:
    """The last hour's live events against the average of the same hour on each of the trailing 7 days."""
    hour = timedelta(hours=1)
    windows = {"current": Q(received_at__gte=now - hour, received_at__lt=now)}
    for day in range(1, TRAILING_DAYS + 1):
        end = now - timedelta(days=day)
        windows[f"day{day}"] = Q(received_at__gte=end - hour, received_at__lt=end)
    counts = Event.objects.filter(
        experiment=experiment, simulation__isnull=True,
        received_at__gte=now - timedelta(days=TRAILING_DAYS) - hour, received_at__lt=now,
    ).aggregate(**{name: Count("id", filter=window) for name, window in windows.items()})  # fmt: skip
    baseline = sum(counts[f"day{day}"] for day in range(1, TRAILING_DAYS + 1)) / TRAILING_DAYS
    current = counts["current"]
    if baseline < MIN_BASELINE_EVENTS or current >= EVENT_RATE_DROP * baseline:
        return None
    return Finding(
        EVENT_RATE, "warning",
        f"{experiment.key}: {current} events in the last hour, against {baseline:.0f} on average at this hour "
        f"over the trailing week (a drop of {1 - current / baseline:.0%})",
        {"last_hour": current, "trailing_week_average": baseline},
    )  # fmt: skip


def no_events_finding(experiment: Experiment, now: datetime) -> Finding | None:
    minutes = settings.ALERT_NO_EVENTS_MINUTES
    quiet_since = now - timedelta(minutes=minutes)
    if experiment.started_at is None or experiment.started_at > quiet_since:
        return None
    last = (
        Event.objects.filter(experiment=experiment, simulation__isnull=True)
        .order_by("-id")
        .values_list("received_at", flat=True)
        .first()
    )
    if last is not None and last >= quiet_since:
        return None
    when = "ever" if last is None else f"since {last.isoformat(timespec='seconds')}"
    return Finding(
        NO_EVENTS, "critical", f"{experiment.key}: no events received {when} (more than {minutes} minutes)",
        {"last_event_at": None if last is None else last.isoformat(), "minutes": minutes},
    )  # fmt: skip


def rollup_lag_finding(experiment: Experiment, lags: dict[str, float]) -> Finding | None:
    lag = lags.get(experiment.key, 0.0)
    if lag <= ROLLUP_LAG_SECONDS:
        return None
    return Finding(
        ROLLUP_LAG, "warning",
        f"{experiment.key}: the rollups are {lag:.0f} s behind (more than {ROLLUP_LAG_SECONDS:.0f} s); "
        "is the beat or the fold task failing?",
        {"lag_seconds": lag},
    )  # fmt: skip


def failed_jobs(since: datetime, now: datetime) -> list[dict[str, Any]]:
    """The training runs, simulation runs and off-policy estimates that failed in (since, now]."""
    window = {"status": "failed", "finished_at__gt": since, "finished_at__lte": now}
    rows: list[dict[str, Any]] = []
    for kind, model in (("training", TrainingRun), ("simulation", SimulationRun), ("estimate", OffPolicyEstimate)):
        for pk, finished_at, error in model.objects.filter(**window).values_list("pk", "finished_at", "error"):
            failed_at = finished_at.isoformat() if finished_at else now.isoformat()
            rows.append({"kind": kind, "id": pk, "failed_at": failed_at, "error": error[:300]})
    return sorted(rows, key=lambda row: (row["failed_at"], row["kind"], row["id"]))


def job_failed_finding(jobs: list[dict[str, Any]]) -> Finding | None:
    if not jobs:
        return None
    names = ", ".join(f"{job['kind']} {job['id']}" for job in jobs[:5]) + (" ..." if len(jobs) > 5 else "")
    return Finding(JOB_FAILED, "warning", f"{len(jobs)} background job(s) failed: {names}", {"jobs": jobs})
