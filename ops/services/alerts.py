"""Alerts: evaluate the rules (ops.services.alert_rules), open one alert per (experiment, rule) while its
condition holds, resolve it when the condition clears, pause an experiment with auto_pause on, and let a
person acknowledge or resolve an alert.

`evaluate()` is idempotent: an evaluation locks the single AlertEvaluation row (two never overlap), and an
alert already open is only refreshed, never opened twice (the partial unique constraints of ops.models.Alert
hold even against another writer). It returns the ids of the alerts it opened; the entry points (ops.tasks,
`manage.py evaluate_alerts`) queue their deliveries after the commit.

Automatic pauses are performed as the experiment's owner (the audit log names a user; a pause on the owner's
own setting is theirs), and the audit entry's `after.reason` names the alert: its id, rule and message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis.services.rollup_lag import rollup_lags
from experiments.models import Experiment
from experiments.services.lifecycle import TransitionError, transition
from ops.models import Alert, AlertEvaluation
from ops.services import alert_rules as rules
from ops.services.alert_rules import UNKNOWN, Finding, Outcome

logger = logging.getLogger(__name__)

FIRST_LOOK_BACK = timedelta(hours=1)  # the failed-job window of the very first evaluation


class AlertStateError(Exception):
    """The alert cannot take this step in its current status (e.g. acknowledging a resolved alert)."""


@dataclass
class EvaluationReport:
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)


def evaluate(*, now: datetime | None = None, experiments: Iterable[Experiment] | None = None) -> EvaluationReport:
    """Run the rules on every running experiment and the platform-wide ones (or, given `experiments`, only
    on those: the results rules, plus the traffic rules on the running ones). `now` moves the clock (tests)."""
    now = now or timezone.now()
    report = EvaluationReport()
    platform_wide = experiments is None
    with transaction.atomic():
        state, _ = AlertEvaluation.objects.select_for_update().get_or_create(pk=1)
        if experiments is None:
            targets = list(Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("owner"))
        else:
            targets = list(experiments)
        lags = rollup_lags() if any(e.status == Experiment.Status.RUNNING for e in targets) else {}
        for experiment in targets:
            outcomes = rules.results_findings(experiment)
            if experiment.status == Experiment.Status.RUNNING:
                outcomes[rules.EVENT_RATE] = rules.event_rate_finding(experiment, now)
                outcomes[rules.NO_EVENTS] = rules.no_events_finding(experiment, now)
                outcomes[rules.ROLLUP_LAG] = rules.rollup_lag_finding(experiment, lags)
            for rule, outcome in outcomes.items():
                _apply(experiment, rule, outcome, now, report)
        if platform_wide:
            _job_failures(state.evaluated_at or now - FIRST_LOOK_BACK, now, report)
            state.evaluated_at = now
            state.save(update_fields=["evaluated_at"])
    return report


def _apply(experiment: Experiment | None, rule: str, outcome: Outcome, now: datetime, report: EvaluationReport) -> None:
    if outcome is UNKNOWN:
        return
    current = Alert.objects.filter(experiment=experiment, rule=rule).exclude(status=Alert.Status.RESOLVED).first()
    if outcome is None:
        if current is not None and rule != rules.JOB_FAILED:
            _resolve(current, now)
            report.resolved.append(current.pk)
        return
    if current is not None:
        current.details = outcome.details
        current.save(update_fields=["details"])
        return
    alert = _open(experiment, outcome, now)
    if alert is None:
        return
    report.opened.append(alert.pk)
    if experiment is not None and rule in rules.PAUSING_RULES and _auto_pause(experiment, alert):
        report.paused.append(experiment.key)


def _open(experiment: Experiment | None, finding: Finding, now: datetime) -> Alert | None:
    """A new open alert, or None when another evaluation opened it first (the unique constraint)."""
    try:
        with transaction.atomic():
            return Alert.objects.create(
                experiment=experiment, rule=finding.rule, severity=finding.severity, message=finding.message[:500],
                details=finding.details, opened_at=now,
            )  # fmt: skip
    except IntegrityError:
        return None


def _resolve(alert: Alert, now: datetime) -> None:
    alert.status = Alert.Status.RESOLVED
    alert.resolved_at = now
    alert.save(update_fields=["status", "resolved_at"])


def _auto_pause(experiment: Experiment, alert: Alert) -> bool:
    """Pause a running experiment that has auto_pause on, as its owner, the audit entry naming the alert."""
    if not experiment.auto_pause or experiment.status != Experiment.Status.RUNNING:
        return False
    reason = {"alert": alert.pk, "rule": alert.rule, "message": alert.message, "by": "auto_pause"}
    try:
        transition(experiment, "pause", experiment.owner, reason=reason)
    except TransitionError:  # paused or stopped by someone in the meantime: nothing to do
        return False
    logger.warning("alerts: paused %s automatically (alert %s, %s)", experiment.key, alert.pk, alert.rule)
    return True


def _job_failures(since: datetime, now: datetime, report: EvaluationReport) -> None:
    """Open (or extend) the platform-wide job_failed alert; resolve it after JOB_FAILED_QUIET without failures."""
    jobs = rules.failed_jobs(since, now)
    current = Alert.objects.filter(experiment=None, rule=rules.JOB_FAILED).exclude(status=Alert.Status.RESOLVED).first()
    if jobs and current is not None:
        known = {(job["kind"], job["id"]) for job in current.details.get("jobs", [])}
        current.details = {
            "jobs": [*current.details.get("jobs", []), *(j for j in jobs if (j["kind"], j["id"]) not in known)]
        }
        current.save(update_fields=["details"])
    elif jobs:
        _apply(None, rules.JOB_FAILED, rules.job_failed_finding(jobs), now, report)
    elif current is not None:
        last = max((job["failed_at"] for job in current.details.get("jobs", [])), default=None)
        if last is None or datetime.fromisoformat(last) < now - rules.JOB_FAILED_QUIET:
            _resolve(current, now)
            report.resolved.append(current.pk)


def acknowledge(alert: Alert, user: User) -> Alert:
    """Someone is on it: an open alert becomes acknowledged (and is not delivered again)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != Alert.Status.OPEN:
            raise AlertStateError(f"alert {alert.pk} is {alert.status}; only an open alert can be acknowledged")
        alert.status = Alert.Status.ACKNOWLEDGED
        alert.acknowledged_by = user
        alert.acknowledged_at = timezone.now()
        alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at"])
    return alert


def resolve(alert: Alert, user: User) -> Alert:
    """Resolve by hand (if the condition still holds, the next evaluation opens a new alert)."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == Alert.Status.RESOLVED:
            raise AlertStateError(f"alert {alert.pk} is already resolved")
        if alert.acknowledged_by is None:
            alert.acknowledged_by = user
            alert.acknowledged_at = timezone.now()
        _resolve(alert, timezone.now())
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return alert
