"""Creating, editing and moving experiments through their lifecycle, with an audit entry per change.

Transitions (anything else is refused):

    draft -> running (start) ; running -> paused (pause) ; paused -> running (resume)
    running | paused -> stopped (stop) ; stopped -> concluded (conclude)
    concluded | draft -> archived (archive)

Only drafts are freely editable. A running or paused experiment accepts new text (name,
hypothesis) and a traffic ramp-up: bucketing is sticky, so a larger traffic share only
adds users and every assigned user keeps the arm they have; a ramp-down would drop
assigned users and is refused. Arms, weights, exploration share, salt, layer and metrics are locked
(the exploration share is part of the logging policy whose propensities the impressions record).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from engine.offpolicy.exploration import MAX_EXPLORATION_PERCENT
from experiments.models import Arm, Decision, Experiment, ExperimentChange, VerdictOverride
from experiments.services import bandit_schedule
from recommenders.models import Variant
from recommenders.services.variants import VariantError, find_variant

BUCKETS = 10_000
METRICS = tuple(Experiment.Metric.values)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # action: (allowed from, to)
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("running", "paused"), "stopped"),
    "conclude": (("stopped",), "concluded"),
    "archive": (("concluded", "draft"), "archived"),
}
TEXT_FIELDS = ("name", "hypothesis")
DRAFT_FIELDS = (
    "name", "hypothesis", "design", "surface", "traffic_percent", "exploration_percent", "layer",
    "layer_share_percent", "primary_metric", "secondary_metrics", "guardrail_metrics", "baseline_rate",
    "minimum_detectable_effect", "expected_daily_users", "alpha", "power", "analysis_method", "guardrail_tolerance",
    "auto_pause", *bandit_schedule.SETTINGS,
)  # fmt: skip


class ExperimentError(Exception):
    """Invalid input; `errors` maps field names to reasons (shown as field errors / 400 answers)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class TransitionError(Exception):
    """The action is not allowed in the experiment's current state (a 409 in the API)."""


@dataclass(frozen=True)
class ArmSpec:
    name: str
    variant: str  # NAME@VERSION (or NAME for the newest version)
    weight: float = 1.0
    is_control: bool = False


@dataclass(frozen=True)
class ExperimentSpec:
    key: str
    name: str
    arms: Sequence[ArmSpec]
    hypothesis: str = ""
    design: str = Experiment.Design.AB
    surface: str = Experiment.Surface.RECOMMENDATIONS
    traffic_percent: float = 100.0
    exploration_percent: float = 0.0
    layer: str = ""
    layer_share_percent: float = 100.0
    primary_metric: str = Experiment.Metric.CTR
    secondary_metrics: Sequence[str] = field(default_factory=list)
    guardrail_metrics: Sequence[str] = field(default_factory=list)
    baseline_rate: float | None = None
    minimum_detectable_effect: float | None = None
    expected_daily_users: int | None = None
    alpha: float = 0.05
    power: float = 0.8
    analysis_method: str = Experiment.AnalysisMethod.SEQUENTIAL
    guardrail_tolerance: float = 0.0
    auto_pause: bool = False
    bandit_min_share: float = 0.05
    bandit_burn_in_trials: int = 1_000
    bandit_burn_in_periods: int = 1
    bandit_update_minutes: int = 1_440


# ---- creating and editing ----------------------------------------------------------


def create_experiment(spec: ExperimentSpec, owner: User) -> Experiment:
    fields = {name: getattr(spec, name) for name in DRAFT_FIELDS}
    errors = _validate_fields(fields)
    errors.update(bandit_schedule.validate_settings(fields, len(spec.arms)))
    if not spec.key or not all(c.isalnum() or c in "-_" for c in spec.key):
        errors["key"] = "use letters, digits, hyphens and underscores only"
    elif Experiment.objects.filter(key=spec.key).exists():
        errors["key"] = f"an experiment with the key {spec.key!r} exists already"
    arms, arm_errors = _resolve_arms(spec.arms)
    errors.update(arm_errors)
    errors.update(design_arm_errors(spec.design, len(spec.arms)))
    errors.update(design_exploration_errors(spec.design, spec.exploration_percent))
    if errors:
        raise ExperimentError(errors)
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                key=spec.key, owner=owner, salt=f"{spec.key}-{secrets.token_hex(4)}", **_clean(fields)
            )
            _replace_arms(experiment, arms)
            _audit(experiment, owner, "create", {}, snapshot(experiment))
    except IntegrityError:
        raise ExperimentError({"key": f"an experiment with the key {spec.key!r} exists already"}) from None
    return experiment


def update_experiment(
    experiment: Experiment, changes: Mapping[str, Any], user: User, arms: Sequence[ArmSpec] | None = None
) -> Experiment:
    """Apply `changes` (and, for drafts, a new set of `arms`) within what the state allows."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        before = snapshot(experiment)
        unknown = sorted(set(changes) - set(DRAFT_FIELDS))
        if unknown:
            raise ExperimentError({unknown[0]: "unknown or read-only field"})
        if experiment.status == Experiment.Status.DRAFT:
            allowed: tuple[str, ...] = DRAFT_FIELDS
        elif experiment.status in (Experiment.Status.RUNNING, Experiment.Status.PAUSED):
            allowed = (*TEXT_FIELDS, "traffic_percent")
        else:
            raise TransitionError(f"{experiment.key} is {experiment.status}: it can no longer be edited.")
        locked = sorted(name for name in changes if name not in allowed and changes[name] != getattr(experiment, name))
        if locked or (arms is not None and experiment.status != Experiment.Status.DRAFT):
            what = ", ".join(locked + (["arms"] if arms is not None and experiment.status != "draft" else []))
            raise TransitionError(f"{experiment.key} is {experiment.status}: {what} can only change in a draft.")
        merged = {**{n: getattr(experiment, n) for n in DRAFT_FIELDS}, **changes}
        errors = _validate_fields(merged)
        errors.update(
            bandit_schedule.validate_settings(merged, len(arms) if arms is not None else experiment.arms.count())
        )
        new_traffic = changes.get("traffic_percent")
        if (
            experiment.status != Experiment.Status.DRAFT
            and new_traffic is not None
            and float(new_traffic) < experiment.traffic_percent
        ):
            errors["traffic_percent"] = (
                f"a running experiment can only ramp up (now {experiment.traffic_percent:g}%): "
                "lowering traffic would drop users already assigned to an arm"
            )
        resolved: list[tuple[ArmSpec, Variant]] = []
        if arms is not None:
            resolved, arm_errors = _resolve_arms(arms)
            errors.update(arm_errors)
        design = changes.get("design", experiment.design)
        errors.update(design_arm_errors(design, len(arms) if arms is not None else experiment.arms.count()))
        errors.update(
            design_exploration_errors(design, changes.get("exploration_percent", experiment.exploration_percent))
        )
        if errors:
            raise ExperimentError(errors)
        for name, value in _clean(changes).items():
            setattr(experiment, name, value)
        experiment.save()
        if arms is not None:
            _replace_arms(experiment, resolved)
        after = snapshot(experiment)
        if after != before:
            _audit(experiment, user, "ramp" if set(changes) == {"traffic_percent"} and experiment.status != "draft"
                   else "edit", before, after)  # fmt: skip
    return experiment


# ---- lifecycle ---------------------------------------------------------------------


def transition(
    experiment: Experiment, action: str, user: User | None, *, reason: Mapping[str, Any] | None = None
) -> Experiment:
    """Perform `action` (start, pause, resume, stop, conclude, archive) or raise TransitionError.

    `reason`, when given, is kept in the audit entry's `after` under "reason" (e.g. the alert behind an
    automatic pause)."""
    if action not in TRANSITIONS:
        raise TransitionError(f"unknown action {action!r}; use {', '.join(TRANSITIONS)}")
    sources, target = TRANSITIONS[action]
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status not in sources:
            raise TransitionError(
                f"cannot {action} {experiment.key}: it is {experiment.status} (allowed from {' or '.join(sources)})"
            )
        before = snapshot(experiment)
        now = timezone.now()
        if action == "start":
            _prepare_start(experiment)
            experiment.started_at = now
        elif action == "stop":
            experiment.stopped_at = now
        elif action == "conclude":
            experiment.concluded_at = now
        experiment.status = target
        experiment.save()
        if action == "start":
            bandit_schedule.start_live_history(experiment)  # period 0 of a bandit's weight history
        after = snapshot(experiment)
        if reason is not None:
            after["reason"] = dict(reason)
        _audit(experiment, user, action, before, after)
    return experiment


def _prepare_start(experiment: Experiment) -> None:
    """Check the arms, freeze each arm's training run, and reserve the layer range."""
    arms = list(experiment.arms.select_related("variant"))
    problems: list[str] = []
    if len(arms) < 2:
        problems.append("an experiment needs at least two arms")
    problems.extend(design_arm_errors(experiment.design, len(arms)).values())
    if sum(1 for arm in arms if arm.is_control) != 1:
        problems.append("exactly one arm must be the control")
    if sum(arm.weight for arm in arms) <= 0:
        problems.append("at least one arm needs a positive weight")
    if experiment.source == Experiment.Source.IMPORTED:
        problems.append("an imported experiment's traffic was served elsewhere; it cannot be started here")
    datasets = {arm.variant.dataset_id for arm in arms if arm.variant}
    if len(datasets) > 1:
        problems.append("all arms must serve the same data set's catalogue")
    for arm in arms:
        if arm.variant is None:
            problems.append(f"arm {arm.name} has no variant")
            continue
        run = arm.variant.latest_successful_run()
        if run is None:
            problems.append(f"arm {arm.name}: {arm.variant.label} has no successful training run")
        else:
            arm.training_run = run
    if problems:
        raise TransitionError(f"cannot start {experiment.key}: " + "; ".join(problems))
    for arm in arms:
        arm.save(update_fields=["training_run"])
    experiment.layer_start, experiment.layer_end = _reserve_layer_range(experiment)


def _reserve_layer_range(experiment: Experiment) -> tuple[int, int]:
    """The first free range [start, end) of the layer big enough for the experiment's share."""
    size = round(BUCKETS * experiment.layer_share_percent / 100)
    if not experiment.layer:
        return 0, size
    # Running and paused experiments of a layer always hold a range (set when they started).
    taken: list[tuple[int, int]] = sorted(
        Experiment.objects.select_for_update()
        .filter(layer=experiment.layer, status__in=(Experiment.Status.RUNNING, Experiment.Status.PAUSED))
        .exclude(pk=experiment.pk)
        .exclude(layer_start=None)
        .exclude(layer_end=None)
        .values_list("layer_start", "layer_end")  # type: ignore[arg-type]
    )
    cursor = 0  # the end of the taken ranges seen so far; a gap before the next one may fit
    for start, end in taken:
        if start - cursor >= size:
            return cursor, cursor + size
        cursor = max(cursor, end)
    if BUCKETS - cursor >= size:
        return cursor, cursor + size
    free = BUCKETS - sum(end - start for start, end in taken)
    raise TransitionError(
        f"cannot start {experiment.key}: layer {experiment.layer!r} has {free / 100:g}% free, "
        f"the experiment reserves {experiment.layer_share_percent:g}%"
    )


# ---- decisions ---------------------------------------------------------------------


def record_decision(
    experiment: Experiment, reviewer: User, outcome: str, rationale: str, winning_arm: str | None = None
) -> Decision:
    """A reviewer's decision on a stopped or concluded experiment, also written to the audit log."""
    errors: dict[str, str] = {}
    if outcome not in Decision.Outcome.values:
        errors["outcome"] = f"use one of {', '.join(Decision.Outcome.values)}"
    if not rationale.strip():
        errors["rationale"] = "say why: the evidence the decision rests on"
    arm = experiment.arms.filter(name=winning_arm).first() if winning_arm else None
    if winning_arm and arm is None:
        errors["winning_arm"] = f"no arm named {winning_arm!r}"
    if errors:
        raise ExperimentError(errors)
    if experiment.status not in (Experiment.Status.STOPPED, Experiment.Status.CONCLUDED):
        raise TransitionError(f"{experiment.key} is {experiment.status}: stop it before deciding.")
    with transaction.atomic():
        decision = Decision.objects.create(
            experiment=experiment, reviewer=reviewer, outcome=outcome, winning_arm=arm, rationale=rationale.strip()
        )
        after = {"outcome": outcome, "winning_arm": winning_arm or None, "rationale": decision.rationale}
        _audit(experiment, reviewer, "decision", {}, after)
    return decision


def record_early_read(experiment: Experiment, user: User, reason: str) -> VerdictOverride:
    """A product manager's decision to read a fixed-horizon verdict before the plan's sample size is
    reached, with the reason; audited, shown beside the verdict in the results and the report."""
    if experiment.analysis_method != Experiment.AnalysisMethod.FIXED_HORIZON:
        raise ExperimentError({"reason": "only a fixed-horizon experiment waits for its plan: this one is sequential, "
                               "its verdict may be read at any time"})  # fmt: skip
    if not reason.strip():
        raise ExperimentError({"reason": "say why the verdict is read before the plan's sample size"})
    if experiment.status == Experiment.Status.DRAFT:
        raise TransitionError(f"{experiment.key} is a draft: it has no results to read yet.")
    with transaction.atomic():
        override, created = VerdictOverride.objects.get_or_create(
            experiment=experiment, defaults={"user": user, "reason": reason.strip()}
        )
        if not created:
            raise TransitionError(f"an early read of {experiment.key} was already recorded by {override.user}")
        _audit(experiment, user, "early_read", {}, {"reason": override.reason})
    return override


# ---- helpers -----------------------------------------------------------------------


def snapshot(experiment: Experiment) -> dict[str, Any]:
    """The audited state: every editable field, the status, and the arms."""
    state: dict[str, Any] = {name: getattr(experiment, name) for name in DRAFT_FIELDS}
    state["status"] = experiment.status
    state["arms"] = [
        {
            "name": a.name,
            "variant": a.variant.label if a.variant else None,
            "weight": a.weight,
            "is_control": a.is_control,
        }
        for a in experiment.arms.select_related("variant").order_by("position")
    ]
    return state


def _audit(
    experiment: Experiment, user: User | None, action: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    ExperimentChange.objects.create(
        experiment=experiment, user=user, action=action,
        before={k: before[k] for k in changed if k in before}, after={k: after[k] for k in changed if k in after},
    )  # fmt: skip


def design_arm_errors(design: str, arm_count: int) -> dict[str, str]:
    """The arm-count rule of a design: an interleaving experiment blends exactly two rankers, the
    control (team A) and one other arm (team B)."""
    if design == Experiment.Design.INTERLEAVING and arm_count != 2:
        return {
            "arms": f"an interleaving experiment has exactly two arms (control = A, the other = B), got {arm_count}"
        }
    return {}


def design_exploration_errors(design: str, exploration_percent: Any) -> dict[str, str]:
    """An interleaving experiment takes no exploration share: its lists are team-draft blends whose
    position-wise propensities the serving log does not record, so explored traffic would be useless
    to the off-policy estimators."""
    if (
        design == Experiment.Design.INTERLEAVING
        and isinstance(exploration_percent, (int, float))
        and exploration_percent > 0
    ):
        return {
            "exploration_percent": "an interleaving experiment takes no exploration share (use an A/B or bandit "
            "experiment to log exploration traffic)"
        }
    return {}


def _validate_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if "name" in fields and not str(fields["name"] or "").strip():
        errors["name"] = "give the experiment a name"
    if "design" in fields and fields["design"] not in Experiment.Design.values:
        errors["design"] = f"use one of {', '.join(Experiment.Design.values)}"
    if fields.get("surface") not in Experiment.Surface.values:
        errors["surface"] = f"use one of {', '.join(Experiment.Surface.values)}"
    _check_range(errors, fields, "traffic_percent", 0, 100, inclusive_low=True)
    _check_range(errors, fields, "exploration_percent", 0, MAX_EXPLORATION_PERCENT, inclusive_low=True)
    _check_range(errors, fields, "layer_share_percent", 0, 100)
    _check_range(errors, fields, "alpha", 0, 0.5)
    _check_range(errors, fields, "power", 0, 1)
    if fields.get("baseline_rate") is not None:
        _check_range(errors, fields, "baseline_rate", 0, 1)
    if fields.get("minimum_detectable_effect") is not None:
        _check_range(errors, fields, "minimum_detectable_effect", 0, 10)
    if fields.get("expected_daily_users") is not None and (
        not isinstance(fields["expected_daily_users"], int) or fields["expected_daily_users"] < 1
    ):
        errors["expected_daily_users"] = "a whole number of users, at least 1"
    if fields.get("primary_metric") not in METRICS:
        errors["primary_metric"] = f"use one of {', '.join(METRICS)}"
    for name in ("secondary_metrics", "guardrail_metrics"):
        values = fields.get(name) or []
        bad = [m for m in values if m not in METRICS] if isinstance(values, (list, tuple)) else [values]
        if bad:
            errors[name] = f"unknown metric(s) {', '.join(map(str, bad))}; use {', '.join(METRICS)}"
    layer = fields.get("layer") or ""
    if layer and not all(c.isalnum() or c in "-_" for c in layer):
        errors["layer"] = "use letters, digits, hyphens and underscores only"
    method = fields.get("analysis_method", Experiment.AnalysisMethod.SEQUENTIAL)
    if method not in Experiment.AnalysisMethod.values:
        errors["analysis_method"] = f"use one of {', '.join(Experiment.AnalysisMethod.values)}"
    elif method == Experiment.AnalysisMethod.FIXED_HORIZON and not (
        fields.get("baseline_rate") and fields.get("minimum_detectable_effect")
    ):
        errors["analysis_method"] = (
            "the fixed-horizon test is read at the plan's sample size: set the baseline rate and the minimum "
            "detectable effect, or choose the sequential method"
        )
    _check_range(errors, fields, "guardrail_tolerance", 0, 1, inclusive_low=True)
    return errors


def _check_range(
    errors: dict[str, str],
    fields: Mapping[str, Any],
    name: str,
    low: float,
    high: float,
    *,
    inclusive_low: bool = False,
) -> None:
    if name not in fields:
        return
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors[name] = f"expected a number, got {value!r}"
    elif not (low <= value <= high if inclusive_low else low < value <= high):
        errors[name] = f"must lie in {'[' if inclusive_low else '('}{low:g}, {high:g}]"


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}


def _resolve_arms(arms: Sequence[ArmSpec]) -> tuple[list[tuple[ArmSpec, Variant]], dict[str, str]]:
    errors: dict[str, str] = {}
    resolved: list[tuple[ArmSpec, Variant]] = []
    if len(arms) < 2:
        errors["arms"] = "give at least two arms (a control and a treatment)"
    if sum(1 for arm in arms if arm.is_control) != 1:
        errors["arms"] = "exactly one arm must be the control"
    if len({arm.name for arm in arms}) != len(arms):
        errors["arms"] = "arm names must be distinct"
    for position, arm in enumerate(arms):
        if not arm.name or not all(c.isalnum() or c in "-_" for c in arm.name):
            errors[f"arms[{position}].name"] = "use letters, digits, hyphens and underscores only"
        if isinstance(arm.weight, bool) or not isinstance(arm.weight, (int, float)) or arm.weight < 0:
            errors[f"arms[{position}].weight"] = "a number of at least 0"
        try:
            resolved.append((arm, find_variant(arm.variant)))
        except VariantError as error:
            errors[f"arms[{position}].variant"] = error.errors["variant"]
    if resolved and len({variant.dataset_id for _, variant in resolved}) > 1:
        errors["arms"] = "all arms must use variants of the same data set"
    return resolved, errors


def _replace_arms(experiment: Experiment, arms: Sequence[tuple[ArmSpec, Variant]]) -> None:
    experiment.arms.all().delete()
    Arm.objects.bulk_create(
        Arm(
            experiment=experiment,
            name=spec.name,
            variant=variant,
            weight=float(spec.weight),
            is_control=spec.is_control,
            position=position,
        )
        for position, (spec, variant) in enumerate(arms)
    )
