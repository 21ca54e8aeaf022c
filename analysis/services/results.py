"""An experiment's results, computed from its rollups only (never from raw events).

``experiment_results(experiment)`` reads the experiment's ArmRollup rows (one per arm: users and
the per-user sums, sums of squares and cross products), its DailyRollup rows (arms x days) and its
RollupState: a handful of rows however much traffic there was, so the answer takes milliseconds
for 10 M events as for 10 k. The numbers are as of the last fold (``as_of``); pass
``fold_first=True`` to fold pending events first.

Units are exposed users throughout (the unit of randomisation); users with no event count as
zeros. Metrics and the engine's test for each treatment arm against the control:

    conversion_rate   purchasers / users            proportion_test (absolute and relative), Bayesian
    add_to_cart_rate  users adding / users          proportion_test
    ctr               clicks / impressions          ratio_test, users as units (delta method)
    revenue_per_user  revenue / users               mean_test (Welch)
    clicks_per_user   clicks / users                mean_test (Welch)

Tests: every metric of a comparison is tested by the experiment's ``analysis_method`` (chosen when
it is designed, never switched by Stop): the always-valid sequential test (``sequential``, the
default) or the fixed-horizon test (``fixed_horizon``), on the absolute difference and on the
relative lift; each metric entry names its ``test`` and its ``role`` (primary, secondary,
guardrail or other: all five metrics are computed, the chosen ones are shown). Multiple testing:
the relative-lift p-values of all arms x metrics form one Holm family (``multiple_testing``; each
metric carries its ``p_value_adjusted``); exploratory, not a verdict.

Verdicts (``engine.verdicts``): on the primary metric's relative lift, by the analysis method,
Bonferroni across treatment arms. Each comparison carries ``verdict``, ``verdict_label``,
``verdict_basis``, ``verdict_p_value``, ``verdict_effect`` and ``verdict_ci_low``/``verdict_ci_high``:
the same test's interval, so p < alpha exactly when the interval excludes 0. Under
``fixed_horizon`` the verdict is "not enough data" until each arm has its planned users, unless a
product manager recorded an early read (``override``). The always-valid test of control against a
treatment is tightest at `n_star` users of those two arms: their planned users when the experiment
has planning fields (``services.plans.experiment_plan``, ``planning.planned_arm_users``), else the
engine's default; `n_star_source` says which ("plan" or "default"). Guardrail metrics get
``guardrails: [{metric, status, ...}]`` (ok, breached or inconclusive: a one-sided always-valid
test against the experiment's ``guardrail_tolerance``). Warnings are objects ``{code, message}``:
srm, stopped_early, before_plan, underpowered, same_variant, guardrail_breached,
unattributed_events.

Verdict values: "treatment wins" / "control wins" (significant, by the effect's sign; every metric
here is higher-is-better), "no significant difference", "not enough data" (the engine refused:
n < 2, no variance, no events; or a fixed-horizon experiment before its plan's sample size).

Bandit experiments (``design == "bandit"``): arms' weights change per period, so pooling an arm's users
is biased and the arms' sizes do not follow ``Arm.weight``. The ``bandit`` block
(``analysis.services.bandit_results.bandit_results``) compares arms within cohorts of first exposure;
the verdict of each treatment is the batched z test's (Holm across treatments, basis
``bandit_cohorts``; that test has no interval, so ``verdict_ci_*`` are null and the cohorts'
period-weighted lift interval is shown as description) and the SRM check is the one against the
weights served in each period. The pooled per-metric comparisons stay in ``comparisons`` as
description only.

Traffic: the rollups keep live and simulated users apart (``ArmRollup.simulated``); results are
over live users, simulated users, or both (``traffic="all"``, the rows added up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date
from functools import partial
from types import SimpleNamespace
from typing import Any, NamedTuple

from django.db.models import Sum

from analysis.models import ArmRollup, DailyRollup, RollupState
from analysis.presentation import Badge, badges
from analysis.services.bandit_results import bandit_results
from analysis.services.cuped import covariate_samples
from analysis.services.rollups import fold
from engine.planning import InterleavingPlan, Plan, planned_arm_users
from engine.stats import (
    CovariateSample,
    Proportion,
    RatioSample,
    SampleMean,
    SequentialResult,
    StatisticError,
    TestResult,
    adjust_pvalues,
    bayesian_test,
    cuped_adjust,
    mean_test,
    sequential_test,
    srm_test,
)
from engine.stats.sequential import DEFAULT_N_STAR
from engine.verdicts import (
    LABELS,
    NOT_ENOUGH_DATA,
    TESTS,
    Difference,
    Statistic,
    Verdict,
    decide,
    fixed_horizon_test,
    guardrail,
    relative_interval,
    verdict_of,
)
from experiments.models import Arm, Experiment, VerdictOverride
from experiments.services.bandit_schedule import is_bandit
from experiments.services.plans import experiment_plan
from serving.services.interleaving import teams

SRM_ALPHA = 0.001
TRAFFIC = ("all", "live", "simulated")
_DAILY_SUMS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue")
_ARM_SUMS = ("exposed_users", "active_users", *_DAILY_SUMS, "impressions_sq", "clicks_sq", "clicks_x_impressions",
             "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip
METRICS = ("conversion_rate", "add_to_cart_rate", "ctr", "revenue_per_user", "clicks_per_user")
UNDERPOWERED_DAYS = 90  # a plan needing more days than this gets the `underpowered` warning
_FINISHED = (Experiment.Status.STOPPED, Experiment.Status.CONCLUDED, Experiment.Status.ARCHIVED)

NStar = tuple[float, str]  # (N*, where it comes from: "plan" or "default")
NO_PLAN: NStar = (DEFAULT_N_STAR, "default")  # the engine's default N*


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _statistic(metric: str, row: ArmRollup) -> Statistic:
    """The engine's sufficient statistic of `metric` for one arm (raises StatisticError when n = 0)."""
    n = int(row.exposed_users)
    if metric == "conversion_rate":
        return Proportion(n, int(row.purchasers))
    if metric == "add_to_cart_rate":
        return Proportion(n, int(row.adders))
    if metric == "ctr":
        return RatioSample(n, float(row.clicks), float(row.impressions), float(row.clicks_sq),
                           float(row.impressions_sq), float(row.clicks_x_impressions))  # fmt: skip
    if metric == "revenue_per_user":
        return SampleMean(n, float(row.revenue), float(row.revenue_sq))
    return SampleMean(n, float(row.clicks), float(row.clicks_sq))


def _attempt(compute: Callable[[], Any]) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return asdict(compute()), None
    except StatisticError as error:
        return None, str(error)


def _arm_summary(arm: Arm, row: ArmRollup) -> dict[str, Any]:
    users = int(row.exposed_users)
    return {
        "name": arm.name,
        "is_control": arm.is_control,
        "weight": arm.weight,
        "users": users,
        "active_users": int(row.active_users),
        "impressions": int(row.impressions),
        "clicks": int(row.clicks),
        "ctr": _ratio(row.clicks, row.impressions),
        "add_to_carts": int(row.add_to_carts),
        "add_to_cart_rate": _ratio(row.adders, users),
        "purchases": int(row.purchases),
        "purchasers": int(row.purchasers),
        "conversion_rate": _ratio(row.purchasers, users),
        "revenue": float(row.revenue),
        "revenue_per_user": _ratio(float(row.revenue), users),
        "clicks_per_user": _ratio(row.clicks, users),
    }


def _traffic_filter(traffic: str) -> dict[str, bool]:
    """The rollup rows of `traffic` (one of TRAFFIC) as a queryset filter."""
    if traffic not in TRAFFIC:
        raise ValueError(f"traffic must be one of {', '.join(TRAFFIC)}, got {traffic!r}")
    return {} if traffic == "all" else {"simulated": traffic == "simulated"}


def _arm_rows(experiment: Experiment, arms: list[Arm], traffic: str) -> dict[int, ArmRollup]:
    """One ArmRollup per arm over the chosen traffic: the live and simulated rows added field by field
    (every field is a sum over the arm's users, and a user is live or simulated, never both)."""
    rows = {arm.pk: ArmRollup(experiment=experiment, arm=arm) for arm in arms}
    for row in ArmRollup.objects.filter(experiment=experiment, **_traffic_filter(traffic)):
        total = rows[row.arm_id]
        for name in _ARM_SUMS:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return rows


def _daily(experiment: Experiment, arms: list[Arm], traffic: str) -> dict[str, list[dict[str, Any]]]:
    names = {arm.pk: arm.name for arm in arms}
    series: dict[str, list[dict[str, Any]]] = {arm.name: [] for arm in arms}
    cumulative: dict[str, int] = dict.fromkeys(series, 0)
    days = (
        DailyRollup.objects.filter(experiment=experiment, **_traffic_filter(traffic))
        .values("arm_id", "day")
        .annotate(**{name: Sum(name) for name in ("new_users", *_DAILY_SUMS)})
        .order_by("arm_id", "day")
    )
    for day in days:
        row = SimpleNamespace(**day)
        name = names[row.arm_id]
        cumulative[name] += row.new_users
        series[name].append({
            "day": row.day.isoformat(), "new_users": row.new_users, "users": cumulative[name],
            "impressions": row.impressions, "clicks": row.clicks, "ctr": _ratio(row.clicks, row.impressions),
            "add_to_carts": row.add_to_carts, "purchases": row.purchases, "revenue": float(row.revenue),
        })  # fmt: skip
    return series


_STAT_SUMS = ("new_users", "impressions", "clicks", "add_to_carts", "purchases", "revenue", "impressions_sq",
              "clicks_sq", "clicks_x_impressions", "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip


_NOT_GIVEN: Any = object()


def sequential_n_stars(experiment: Experiment, arms: list[Arm], plan: Any = _NOT_GIVEN) -> dict[int, NStar]:
    """(N*, source) of each treatment arm's always-valid test against the control, by the arm's pk.

    N* is the total users of the two arms at which the test is tightest: with source "plan", their
    users when the experiment's own plan is met (`planned_arm_users` for the arms' weights), when its
    planning fields give a plan; else, source "default", the engine's DEFAULT_N_STAR (also when the
    plan can never be met: an arm with weight 0). {} without a control. The test is valid for any N*;
    N* only moves where it has the most power. `plan`: the experiment's plan when the caller has it.
    """
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    treatments = [arm for arm in arms if arm.pk != control.pk]
    users = _planned_users(experiment_plan(experiment) if plan is _NOT_GIVEN else plan, arms) if treatments else None
    if users is None:
        return dict.fromkeys((arm.pk for arm in treatments), NO_PLAN)
    return {arm.pk: (float(users[control.pk] + users[arm.pk]), "plan") for arm in treatments}


def cumulative_statistics(
    experiment: Experiment, arms: list[Arm], traffic: str, metric: str
) -> list[tuple[date, dict[int, Statistic | None]]]:
    """Each arm's sufficient statistic of `metric` as of the end of each day with rollups, by the arm's pk:
    the arm's DailyRollup increments (of `traffic`) summed up to that day, None while the engine cannot
    form it (no users yet). Days in order; the lift history's looks are the tests on these."""
    rows = (
        DailyRollup.objects.filter(experiment=experiment, **_traffic_filter(traffic))
        .values("day", "arm_id")
        .annotate(**{name: Sum(name) for name in _STAT_SUMS})
        .order_by("day", "arm_id")
    )
    totals = {arm.pk: dict.fromkeys(_STAT_SUMS, 0) for arm in arms}
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["day"], []).append(row)
    looks: list[tuple[date, dict[int, Statistic | None]]] = []
    for day, day_rows in by_day.items():
        for row in day_rows:
            for name in _STAT_SUMS:
                totals[row["arm_id"]][name] += row[name] or 0
        statistics: dict[int, Statistic | None] = {}
        for pk, t in totals.items():
            as_of = ArmRollup(exposed_users=t["new_users"], **{k: v for k, v in t.items() if k != "new_users"})
            try:
                statistics[pk] = _statistic(metric, as_of)
            except StatisticError:
                statistics[pk] = None
        looks.append((day, statistics))
    return looks


def _lift_history(
    experiment: Experiment, arms: list[Arm], traffic: str, n_stars: Mapping[int, NStar]
) -> dict[str, list[dict[str, Any]]]:
    """Each treatment's relative lift on the primary metric as of the end of each day, with the interval
    of the verdict's own test (the analysis method at alpha / treatments, tightest at the arm's N*), so
    the band's last point is the verdict's interval; on the arms' cumulative sufficient statistics
    (`cumulative_statistics`). Days on which the engine cannot test yet (n < 2, no variance, no
    success in an arm) are left out."""
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    history: dict[str, list[dict[str, Any]]] = {arm.name: [] for arm in arms if arm.pk != control.pk}
    treatments = len(history)
    for day, statistics in cumulative_statistics(experiment, arms, traffic, experiment.primary_metric):
        for arm in arms:
            control_statistic, arm_statistic = statistics[control.pk], statistics[arm.pk]
            if arm.pk == control.pk or control_statistic is None or arm_statistic is None:
                continue
            try:
                look = relative_interval(control_statistic, arm_statistic, method=experiment.analysis_method,
                                         alpha=experiment.alpha / treatments, n_star=n_stars[arm.pk][0])  # fmt: skip
            except StatisticError:
                continue
            history[arm.name].append({"day": day.isoformat(), "effect": look.effect, "ci_low": look.ci_low,
                                      "ci_high": look.ci_high, "p_value": min(1.0, look.p_value * treatments),
                                      "test": look.test})  # fmt: skip
    return history


def _role(experiment: Experiment, metric: str) -> str:
    if metric == experiment.primary_metric:
        return "primary"
    if metric in (experiment.guardrail_metrics or []):
        return "guardrail"
    if metric in (experiment.secondary_metrics or []):
        return "secondary"
    return "other"


def chosen_metrics(experiment: Experiment) -> list[str]:
    """The metrics the experiment reports: the primary, then the secondary and guardrail metrics chosen."""
    chosen = [experiment.primary_metric]
    for metric in [*(experiment.secondary_metrics or []), *(experiment.guardrail_metrics or [])]:
        if metric in METRICS and metric not in chosen:
            chosen.append(metric)
    return chosen


def _method_test(
    experiment: Experiment, c: Statistic, t: Statistic, difference: Difference, n_star: float
) -> SequentialResult | TestResult:
    """`difference` ("absolute" or "relative") of one metric by the experiment's analysis method at alpha."""
    if experiment.analysis_method == "sequential":
        return sequential_test(c, t, alpha=experiment.alpha, difference=difference, n_star=n_star)
    return fixed_horizon_test(c, t, alpha=experiment.alpha, difference=difference)


def _compare(
    experiment: Experiment,
    control: ArmRollup,
    treatment: ArmRollup,
    covariates: Mapping[str, Mapping[int, CovariateSample]] | None = None,
    n_star: NStar = NO_PLAN,
) -> dict[str, Any]:
    """The treatment against the control on every metric by the experiment's analysis method (each entry
    names its `test` and `role`), the Bayesian chance to win on the primary metric and the always-valid
    test on the primary metric (`sequential`, tightest at `n_star`: its N* and source are in the dict as
    `n_star` and `n_star_source`)."""
    alpha = experiment.alpha
    metrics: dict[str, Any] = {}
    for metric in METRICS:
        entry: dict[str, Any] = {"primary": metric == experiment.primary_metric, "role": _role(experiment, metric),
                                 "test": experiment.analysis_method}  # fmt: skip
        try:
            c, t = _statistic(metric, control), _statistic(metric, treatment)
        except StatisticError as error:
            entry.update(absolute=None, relative=None, error=str(error), bayesian=None, bayesian_error=str(error))
        else:
            entry["absolute"], entry["error"] = _attempt(partial(_method_test, experiment, c, t, "absolute", n_star[0]))
            entry["relative"], relative_error = _attempt(
                partial(relative_interval, c, t, method=experiment.analysis_method, alpha=alpha, n_star=n_star[0])
            )
            entry["error"] = entry["error"] or relative_error
            entry["bayesian"], entry["bayesian_error"] = _bayesian(metric, c, t)
        entry["p_value_adjusted"] = None
        by_arm = (covariates or {}).get(metric, {})
        if control.arm_id in by_arm and treatment.arm_id in by_arm:
            entry["cuped"], entry["cuped_error"] = _cuped(by_arm[control.arm_id], by_arm[treatment.arm_id], alpha)
        metrics[metric] = entry
    primary_entry = metrics[experiment.primary_metric]
    comparison: dict[str, Any] = {
        "metrics": metrics,
        "bayesian": primary_entry["bayesian"] and {"metric": experiment.primary_metric, **primary_entry["bayesian"]},
        "bayesian_error": primary_entry["bayesian_error"],
    }
    try:
        primary = (_statistic(experiment.primary_metric, control), _statistic(experiment.primary_metric, treatment))
        comparison["sequential"], comparison["sequential_error"] = _attempt(
            lambda: relative_interval(*primary, method="sequential", alpha=alpha, n_star=n_star[0])
        )
        if comparison["sequential"] is not None:
            comparison["sequential"].update(n_star=n_star[0], n_star_source=n_star[1])
    except StatisticError as error:
        comparison["sequential"], comparison["sequential_error"] = None, str(error)
    return comparison


def _bayesian(metric: str, control: Statistic, treatment: Statistic) -> tuple[dict[str, Any] | None, str | None]:
    """The Bayesian comparison of one metric (chance to win, expected losses, lift credible interval):
    the exact Beta-Binomial for rates of users, a normal posterior on the delta-method relative lift for
    ratio metrics (CTR) and means (``engine.stats.bayesian_test``)."""
    result, error = _attempt(lambda: bayesian_test(control, treatment))
    return (result and {"metric": metric, **result}), error


def _cuped(
    control: CovariateSample, treatment: CovariateSample, alpha: float
) -> tuple[dict[str, Any] | None, str | None]:
    """The CUPED-adjusted Welch test, with theta and the variance reduction it achieved."""
    try:
        adjusted = cuped_adjust(control, treatment)
        test = mean_test(adjusted.control_adjusted, adjusted.treatment_adjusted, alpha=alpha)
    except StatisticError as error:
        return None, str(error)
    return {**asdict(test), "theta": adjusted.theta, "variance_reduction": adjusted.variance_reduction,
            "correlation": adjusted.correlation}, None  # fmt: skip


def _as_of(state: RollupState | None) -> dict[str, Any]:
    """How far the rollups have folded (the results are as of then)."""
    return {
        "event_watermark": state.event_watermark if state else 0,
        "folded_at": state.folded_at.isoformat() if state and state.folded_at else None,
        "folded_events": state.folded_events if state else 0,
        "unattributed_events": state.unattributed_events if state else 0,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: replace them with null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def experiment_results(experiment: Experiment, *, fold_first: bool = False, traffic: str = "all") -> dict[str, Any]:
    """The experiment's JSON-ready results from its rollups (see the module docstring for the shape).

    `traffic`: "live" (users served for real), "simulated" (users of simulation runs) or "all".
    Raises ValueError for anything else.
    """
    _traffic_filter(traffic)
    if fold_first:
        fold(experiment.pk)
    if experiment.design == Experiment.Design.INTERLEAVING:
        return _interleaving_results(experiment, traffic)
    arms = list(experiment.arms.order_by("position", "pk"))
    row_of = _arm_rows(experiment, arms, traffic)
    state = RollupState.objects.filter(pk=experiment.pk).first()
    control = next((arm for arm in arms if arm.is_control), None)
    warnings: list[dict[str, str]] = []

    bandit = bandit_results(experiment, arms, traffic, SRM_ALPHA) if is_bandit(experiment) else None
    srm: dict[str, Any] | None
    if bandit is not None:
        # Against the weights served in each period, not the arms' configured weights.
        srm, srm_error = bandit["srm"], bandit["error"]
    else:
        srm, srm_error = _attempt(
            lambda: srm_test([int(row_of[a.pk].exposed_users) for a in arms], [a.weight for a in arms], alpha=SRM_ALPHA)
        )
    if srm is None:
        srm = {"error": srm_error, "mismatch": False}
    elif srm["mismatch"]:
        warnings.append(_warning("srm", f"sample ratio mismatch (p = {srm['p_value']:.2g} < {SRM_ALPHA}): the arms' "
                                 "sizes do not match their weights, so assignment or logging is broken and the "
                                 "comparisons cannot be trusted"))  # fmt: skip

    comparisons: list[dict[str, Any]] = []
    treatments = [arm for arm in arms if control is not None and arm.pk != control.pk]
    if control is None:
        warnings.append(_warning("no_control", "the experiment has no control arm: nothing to compare against"))
    covariates = covariate_samples(experiment, traffic) if treatments else {}
    plan = experiment_plan(experiment)  # one read of the planning fields and arms for all that follows
    n_stars = sequential_n_stars(experiment, arms, plan)
    horizon = _horizon(experiment, plan, arms, row_of)
    override = _override(experiment)
    for arm in treatments:
        comparison = _compare(experiment, row_of[control.pk], row_of[arm.pk], covariates,  # type: ignore[union-attr]
                              n_stars[arm.pk])  # fmt: skip
        comparisons.append({"arm": arm.name, "control": control.name, **comparison})  # type: ignore[union-attr]
        try:
            c_stat = _statistic(experiment.primary_metric, row_of[control.pk])  # type: ignore[union-attr]
            t_stat = _statistic(experiment.primary_metric, row_of[arm.pk])
        except StatisticError as error:
            verdict = Verdict(NOT_ENOUGH_DATA, experiment.analysis_method, None, None, None, None, experiment.alpha,
                              len(treatments), str(error))  # fmt: skip
        else:
            reached, note, _ = horizon.get(arm.pk, _Horizon(False, "", False))
            verdict = decide(c_stat, t_stat, method=experiment.analysis_method, alpha=experiment.alpha,
                             treatments=len(treatments), n_star=n_stars[arm.pk][0],
                             horizon_reached=reached or override is not None, horizon_note=note)  # fmt: skip
        comparisons[-1].update(_verdict_fields(verdict))
        comparisons[-1]["override"] = override if experiment.analysis_method == "fixed_horizon" else None
        comparisons[-1]["guardrails"] = _guardrails(experiment, row_of[control.pk], row_of[arm.pk],  # type: ignore[union-attr]
                                                    n_stars[arm.pk][0])  # fmt: skip

    # Holm over every arm x metric (the analysis method's relative-lift p-values): exploratory.
    family = [
        (i, metric) for i, comp in enumerate(comparisons) for metric in METRICS if comp["metrics"][metric]["relative"]
    ]
    multiple_testing: dict[str, Any] = {"method": "holm", "alpha": experiment.alpha, "tests": []}
    if family:
        adjusted = adjust_pvalues(
            [comparisons[i]["metrics"][m]["relative"]["p_value"] for i, m in family], "holm", experiment.alpha
        )
        for (i, metric), p, q, rejected in zip(
            family, adjusted.p_values, adjusted.adjusted, adjusted.rejected, strict=True
        ):
            comparisons[i]["metrics"][metric]["p_value_adjusted"] = q
            multiple_testing["tests"].append({
                "arm": comparisons[i]["arm"], "metric": metric, "primary": metric == experiment.primary_metric,
                "p_value": p, "p_value_adjusted": q, "rejected": rejected,
            })  # fmt: skip
    if bandit is not None:
        _bandit_verdicts(comparisons, bandit, experiment.alpha)
    warnings.extend(_design_warnings(experiment, plan, arms, horizon, comparisons, state))

    return _finite({
        **_header(experiment, traffic, state),
        "arms": [_arm_summary(arm, row_of[arm.pk]) for arm in arms],
        "chosen_metrics": chosen_metrics(experiment),
        "daily": _daily(experiment, arms, traffic),
        "lift_history": _lift_history(experiment, arms, traffic, n_stars),
        "comparisons": comparisons,
        "multiple_testing": multiple_testing,
        "srm": srm,
        "warnings": warnings,
        "bandit": bandit,
    })  # fmt: skip


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """A verdict as the comparison's `verdict_*` keys (the API contract)."""
    return {
        "verdict": verdict.verdict,
        "verdict_label": verdict.label,
        "verdict_basis": verdict.basis,
        "verdict_test": TESTS.get(verdict.basis, verdict.basis),
        "verdict_p_value": verdict.p_value,
        "verdict_effect": verdict.effect,
        "verdict_ci_low": verdict.ci_low,
        "verdict_ci_high": verdict.ci_high,
        "verdict_alpha": verdict.alpha,
        "verdict_adjustment": "bonferroni" if verdict.treatments > 1 else "none",
        "verdict_treatments": verdict.treatments,
        "verdict_reason": verdict.reason,
    }


class _Horizon(NamedTuple):
    """Whether a treatment's fixed-horizon test may be read, why not, and whether its arms are short of a plan."""

    reached: bool
    note: str
    behind_plan: bool


def _planned_users(plan: Any, arms: list[Arm]) -> dict[int, int] | None:
    """Each arm's users when the A/B `plan` is met, or None without one (or when it can never be met)."""
    if not isinstance(plan, Plan):
        return None
    try:
        return {arm.pk: n for arm, n in zip(arms, planned_arm_users(plan, [arm.weight for arm in arms]), strict=True)}
    except StatisticError:
        return None


def _horizon(
    experiment: Experiment, plan: Any, arms: list[Arm], row_of: Mapping[int, ArmRollup]
) -> dict[int, _Horizon]:
    """Per treatment arm: whether the fixed-horizon test may be read (both arms at their planned users),
    and if not, why. An imported experiment's log is complete: its horizon is the data."""
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    treatments = [arm for arm in arms if arm.pk != control.pk]
    if experiment.source == Experiment.Source.IMPORTED:
        return dict.fromkeys((arm.pk for arm in treatments), _Horizon(True, "", False))
    planned = _planned_users(plan, arms)
    if planned is None:
        note = ("the fixed-horizon test is read at the plan's sample size, and this experiment has no plan "
                "(set its baseline rate and minimum detectable effect)")  # fmt: skip
        return dict.fromkeys((arm.pk for arm in treatments), _Horizon(False, note, False))
    out = {}
    for arm in treatments:
        have = min(int(row_of[control.pk].exposed_users), int(row_of[arm.pk].exposed_users))
        need = min(planned[control.pk], planned[arm.pk])
        reached = all(int(row_of[a.pk].exposed_users) >= planned[a.pk] for a in (control, arm))
        note = "" if reached else f"{have:,} of the {need:,} users per arm the plan needs"
        out[arm.pk] = _Horizon(reached, note, not reached)
    return out


def _override(experiment: Experiment) -> dict[str, Any] | None:
    """The product manager's early read of a fixed-horizon verdict, if one was recorded."""
    found = VerdictOverride.objects.filter(experiment=experiment).select_related("user").first()
    if found is None:
        return None
    return {"by": found.user.username, "reason": found.reason, "at": found.at.isoformat()}


def _guardrails(
    experiment: Experiment, control: ArmRollup, treatment: ArmRollup, n_star: float
) -> list[dict[str, Any]]:
    out = []
    for metric in experiment.guardrail_metrics or []:
        try:
            c, t = _statistic(metric, control), _statistic(metric, treatment)
        except StatisticError as error:
            out.append({"metric": metric, "status": "inconclusive", "tolerance": experiment.guardrail_tolerance,
                        "effect": None, "ci_low": None, "ci_high": None, "reason": str(error)})  # fmt: skip
            continue
        out.append(asdict(guardrail(metric, c, t, alpha=experiment.alpha, tolerance=experiment.guardrail_tolerance,
                                    n_star=n_star)))  # fmt: skip
    return out


def _design_warnings(
    experiment: Experiment,
    plan: Any,
    arms: list[Arm],
    horizon: Mapping[int, _Horizon],
    comparisons: list[dict[str, Any]],
    state: RollupState | None,
) -> list[dict[str, str]]:
    """The warnings about the design and the data (codes in the module docstring), in that order."""
    out = []
    behind = [h.note for h in horizon.values() if h.behind_plan]
    if behind and experiment.status in _FINISHED and experiment.source == Experiment.Source.PLATFORM:
        if experiment.analysis_method == "sequential":
            consequence = "the always-valid verdict stays valid, but the experiment has less power than planned"
        else:
            consequence = "the fixed-horizon verdict needs the plan's sample size (or a recorded early read)"
        out.append(_warning("stopped_early", f"stopped before the plan's sample size ({behind[0]}): {consequence}"))
    elif behind and experiment.status in (Experiment.Status.RUNNING, Experiment.Status.PAUSED):
        out.append(_warning("before_plan", f"the plan's sample size is not reached yet ({behind[0]})"))
    if isinstance(plan, Plan) and plan.days is not None and plan.days > UNDERPOWERED_DAYS:
        out.append(_warning("underpowered", f"the plan needs {plan.days:,} days at {plan.daily_users:,} users a day "
                            f"(more than {UNDERPOWERED_DAYS}): detect a larger effect, send more traffic or "
                            "accept a longer test"))  # fmt: skip
    versions: dict[int, list[str]] = {}
    for arm in arms:
        if arm.variant_id is not None:
            versions.setdefault(arm.variant_id, []).append(arm.name)
    for names in versions.values():
        if len(names) > 1:
            out.append(_warning("same_variant", f"arms {' and '.join(names)} serve the same variant version: an "
                                "A/A test, fine when intended (it checks the set-up, not a change)"))  # fmt: skip
    breached = [f"{g['metric']} ({comp['arm']})" for comp in comparisons for g in comp.get("guardrails", [])
                if g["status"] == "breached"]  # fmt: skip
    if breached:
        out.append(_warning("guardrail_breached", f"guardrail breached: {', '.join(breached)} harmed beyond the "
                            f"tolerance of {experiment.guardrail_tolerance:.1%}"))  # fmt: skip
    if state and state.unattributed_events:
        out.append(_warning("unattributed_events", f"{state.unattributed_events:,} events of users without an "
                            "exposure were not counted"))  # fmt: skip
    return out


def _header(experiment: Experiment, traffic: str, state: RollupState | None) -> dict[str, Any]:
    """The keys every design's results start with: which experiment, its state and the data's age."""
    return {
        "experiment": experiment.key,
        "design": experiment.design,
        "status": experiment.status,
        "source": experiment.source,
        "primary_metric": experiment.primary_metric,
        "secondary_metrics": list(experiment.secondary_metrics or []),
        "guardrail_metrics": list(experiment.guardrail_metrics or []),
        "guardrail_tolerance": experiment.guardrail_tolerance,
        "analysis_method": experiment.analysis_method,
        "alpha": experiment.alpha,
        "traffic": traffic,
        "as_of": _as_of(state),
    }


def _interleaving_results(experiment: Experiment, traffic: str) -> dict[str, Any]:
    """An interleaving experiment's results: the A/B keys with nothing A/B-only in them (no per-arm user
    metrics, comparisons or SRM check: every exposed user sees both arms) and the `interleaving` block
    (analysis.services.interleaving_results)."""
    from analysis.services.interleaving_results import interleaving_block

    block = interleaving_block(experiment, _traffic_filter(traffic))
    state = RollupState.objects.filter(pk=experiment.pk).first()
    # Every exposed user sees both arms; the A/B fold counts them all under the control (their exposure's arm).
    exposed = ArmRollup.objects.filter(experiment=experiment, **_traffic_filter(traffic)).aggregate(
        users=Sum("exposed_users")
    )["users"]
    warnings = []
    if block["uncredited_clicks"]:
        warnings.append(_warning("uncredited_clicks", f"{block['uncredited_clicks']:,} clicks named an item their "
                                 "request did not show and were not credited"))  # fmt: skip
    arms = [
        {"name": arm.name, "is_control": arm.is_control, "weight": arm.weight, "team": team,
         "sessions_won": block[f"wins_{team.lower()}"], "clicks_credited": block[f"clicks_{team.lower()}"]}
        for team, arm in zip(("A", "B"), teams(list(experiment.arms.all())), strict=True)
    ]  # fmt: skip
    return _finite({
        **_header(experiment, traffic, state),
        "exposed_users": int(exposed or 0),
        "arms": arms,
        "daily": {},
        "lift_history": {},
        "comparisons": [],
        "multiple_testing": {"method": "holm", "alpha": experiment.alpha, "tests": []},
        "srm": {"error": "not applicable: every exposed user of an interleaving experiment sees both arms",
                "mismatch": False},
        "warnings": warnings,
        "interleaving": block,
    })  # fmt: skip


def _bandit_verdicts(comparisons: list[dict[str, Any]], bandit: dict[str, Any], alpha: float) -> None:
    """Replace each treatment's verdict by the cohort analysis's: the pooled tests are biased when the
    weights change (see ``engine.bandits.analysis``). The batched test has no interval, so the
    verdict's interval is null; the cohorts' period-weighted lift and its Wald interval are description."""
    by_arm = {comp["arm"]: comp for comp in bandit["comparisons"]}
    for comp in comparisons:
        cohort = by_arm.get(comp["arm"])
        comp.update(verdict_basis="bandit_cohorts", verdict_test=TESTS["bandit_cohorts"], verdict_ci_low=None,
                    verdict_ci_high=None, verdict_adjustment="holm", override=None)  # fmt: skip
        if cohort is None:
            reason = bandit.get("error") or "no cohort with users in both arms yet"
            comp.update(verdict=NOT_ENOUGH_DATA, verdict_label=LABELS[NOT_ENOUGH_DATA], verdict_p_value=None,
                        verdict_effect=None, verdict_reason=reason)  # fmt: skip
            continue
        cohort["verdict"] = verdict_of(cohort["effect"], cohort["p_value_adjusted"], alpha)
        comp.update(verdict=cohort["verdict"], verdict_label=LABELS[cohort["verdict"]],
                    verdict_p_value=cohort["p_value_adjusted"], verdict_effect=cohort["lift"],
                    verdict_reason="")  # fmt: skip


def experiment_badges(experiment: Experiment, results: dict[str, Any] | None = None) -> list[Badge]:
    """The verdict badges of `experiment` exactly as the results page shows them (none for a draft), for
    the lists that show many experiments (home, experiment list). Pass `results` when already computed."""
    if experiment.status == Experiment.Status.DRAFT and results is None:
        return []
    results = results if results is not None else experiment_results(experiment)
    plan = experiment_plan(experiment) if results.get("interleaving") else None  # sessions: interleaving only
    return badges(results, plan.sessions if isinstance(plan, InterleavingPlan) else None)
