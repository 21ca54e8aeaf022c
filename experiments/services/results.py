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

Multiple testing: the absolute-difference p-values of all arms x metrics form one Holm family
(``multiple_testing``; each metric also carries its ``p_value_adjusted``). The verdict is on the
primary metric only, the pre-registered decision metric, so it is Holm-corrected across the
treatment arms (not across secondary metrics, which do not decide anything). Its basis is the
fixed-horizon test once the experiment has stopped (the horizon is reached), and the always-valid
sequential test while it still runs (peeking at a fixed-horizon p-value inflates false positives).
The sequential test of control against a treatment (its `sequential` dict, and each day's look in
`lift_history`) is tightest at `n_star` users of those two arms: the plan's, i.e. their users when the
experiment's plan is met (``planning.planned_arm_users``), when the experiment has planning fields
(``services.plans.experiment_plan``), else the engine's default; `n_star_source` says which ("plan" or
"default"). It is valid for any N*; N* only moves where it has the most power.

Verdicts: "treatment wins" / "control wins" (significant, by the effect's sign; every metric
here is higher-is-better), "no significant difference", "not enough data" (the engine refused:
n < 2, no variance, no events).

Bandit experiments (``design == "bandit"``): arms' weights change per period, so pooling an arm's users
is biased and the arms' sizes do not follow ``Arm.weight``. The ``bandit`` block
(``experiments.services.bandit.bandit_results``) compares arms within cohorts of first exposure;
the verdict of each treatment is the batched z test's (Holm across treatments, basis
``bandit_cohorts``) and the SRM check is the one against the weights served in each period. The
pooled per-metric comparisons stay in ``comparisons`` as description only.

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
from typing import Any

from django.db.models import Sum

from experiments.models import Arm, ArmRollup, DailyRollup, Experiment, RollupState
from experiments.planning import Plan, planned_arm_users
from experiments.services.bandit import bandit_results, is_bandit
from experiments.services.cuped import covariate_samples
from experiments.services.interleaving import teams
from experiments.services.plans import experiment_plan
from experiments.services.rollups import fold
from experiments.stats import (
    CovariateSample,
    Proportion,
    RatioSample,
    SampleMean,
    StatisticError,
    adjust_pvalues,
    bayesian_proportion_test,
    cuped_adjust,
    mean_test,
    proportion_test,
    ratio_test,
    sequential_test,
    srm_test,
)
from experiments.stats.sequential import DEFAULT_N_STAR

SRM_ALPHA = 0.001
TRAFFIC = ("all", "live", "simulated")
_DAILY_SUMS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue")
_ARM_SUMS = ("exposed_users", "active_users", *_DAILY_SUMS, "impressions_sq", "clicks_sq", "clicks_x_impressions",
             "revenue_sq", "clickers", "adders", "purchasers")  # fmt: skip
METRICS = ("conversion_rate", "add_to_cart_rate", "ctr", "revenue_per_user", "clicks_per_user")
TREATMENT_WINS, CONTROL_WINS = "treatment wins", "control wins"
NO_DIFFERENCE, NOT_ENOUGH_DATA = "no significant difference", "not enough data"
_FINISHED = (Experiment.Status.STOPPED, Experiment.Status.CONCLUDED, Experiment.Status.ARCHIVED)

Statistic = Proportion | RatioSample | SampleMean
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


_TESTS: Mapping[str, Callable[..., Any]] = {
    "conversion_rate": proportion_test,
    "add_to_cart_rate": proportion_test,
    "ctr": ratio_test,
    "revenue_per_user": mean_test,
    "clicks_per_user": mean_test,
}


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


def sequential_n_stars(experiment: Experiment, arms: list[Arm]) -> dict[int, NStar]:
    """(N*, source) of each treatment arm's always-valid test against the control, by the arm's pk.

    N* is the total users of the two arms at which the test is tightest: with source "plan", their
    users when the experiment's own plan is met (`planned_arm_users` for the arms' weights), when its
    planning fields give a plan; else, source "default", the engine's DEFAULT_N_STAR (also when the
    plan can never be met: an arm with weight 0). {} without a control. The test is valid for any N*;
    N* only moves where it has the most power.
    """
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    treatments = [arm for arm in arms if arm.pk != control.pk]
    plan = experiment_plan(experiment) if treatments else None
    if not isinstance(plan, Plan):
        return dict.fromkeys((arm.pk for arm in treatments), NO_PLAN)
    try:
        planned = planned_arm_users(plan, [arm.weight for arm in arms])
    except StatisticError:
        return dict.fromkeys((arm.pk for arm in treatments), NO_PLAN)
    users = {arm.pk: n for arm, n in zip(arms, planned, strict=True)}
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
    """Each treatment's relative lift on the primary metric with its always-valid confidence
    sequence, as of the end of each day: the sequential test on the arms' cumulative sufficient
    statistics (`cumulative_statistics`), tightest at the arm's N* in `n_stars` (`sequential_n_stars`).
    Days on which the engine cannot test yet (n < 2, no variance) are left out."""
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    history: dict[str, list[dict[str, Any]]] = {arm.name: [] for arm in arms if arm.pk != control.pk}
    for day, statistics in cumulative_statistics(experiment, arms, traffic, experiment.primary_metric):
        for arm in arms:
            control_statistic, arm_statistic = statistics[control.pk], statistics[arm.pk]
            if arm.pk == control.pk or control_statistic is None or arm_statistic is None:
                continue
            try:
                look = sequential_test(control_statistic, arm_statistic, alpha=experiment.alpha,
                                       difference="relative", n_star=n_stars[arm.pk][0])  # fmt: skip
            except StatisticError:
                continue
            history[arm.name].append({"day": day.isoformat(), "effect": look.effect, "ci_low": look.ci_low,
                                      "ci_high": look.ci_high, "p_value": look.p_value})  # fmt: skip
    return history


def _compare(
    experiment: Experiment,
    control: ArmRollup,
    treatment: ArmRollup,
    covariates: Mapping[str, Mapping[int, CovariateSample]] | None = None,
    n_star: NStar = NO_PLAN,
) -> dict[str, Any]:
    """The treatment against the control on every metric, the Bayesian test on conversion and the
    always-valid test on the primary metric (`sequential`, tightest at `n_star`: its N* and source are
    in the dict as `n_star` and `n_star_source`)."""
    alpha = experiment.alpha
    metrics: dict[str, Any] = {}
    for metric in METRICS:
        entry: dict[str, Any] = {"primary": metric == experiment.primary_metric}
        try:
            c, t = _statistic(metric, control), _statistic(metric, treatment)
        except StatisticError as error:
            entry.update(absolute=None, relative=None, error=str(error))
        else:
            test = _TESTS[metric]
            entry["absolute"], entry["error"] = _attempt(partial(test, c, t, alpha=alpha))
            entry["relative"], relative_error = _attempt(partial(test, c, t, alpha=alpha, difference="relative"))
            entry["error"] = entry["error"] or relative_error
        entry["p_value_adjusted"] = None
        by_arm = (covariates or {}).get(metric, {})
        if control.arm_id in by_arm and treatment.arm_id in by_arm:
            entry["cuped"], entry["cuped_error"] = _cuped(by_arm[control.arm_id], by_arm[treatment.arm_id], alpha)
        metrics[metric] = entry
    comparison: dict[str, Any] = {"metrics": metrics}
    try:
        c_conv = Proportion(int(control.exposed_users), int(control.purchasers))
        t_conv = Proportion(int(treatment.exposed_users), int(treatment.purchasers))
        comparison["bayesian"], comparison["bayesian_error"] = _attempt(
            lambda: bayesian_proportion_test(c_conv, t_conv)
        )
    except StatisticError as error:
        comparison["bayesian"], comparison["bayesian_error"] = None, str(error)
    try:
        primary = (_statistic(experiment.primary_metric, control), _statistic(experiment.primary_metric, treatment))
        comparison["sequential"], comparison["sequential_error"] = _attempt(
            lambda: sequential_test(*primary, alpha=alpha, n_star=n_star[0])
        )
        if comparison["sequential"] is not None:
            comparison["sequential"]["n_star_source"] = n_star[1]
    except StatisticError as error:
        comparison["sequential"], comparison["sequential_error"] = None, str(error)
    return comparison


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


def _verdict(effect: float, p_value: float, alpha: float) -> str:
    if p_value >= alpha:
        return NO_DIFFERENCE
    return TREATMENT_WINS if effect > 0 else CONTROL_WINS


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
    warnings: list[str] = []

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
        warnings.append(
            f"sample ratio mismatch (p = {srm['p_value']:.2g} < {SRM_ALPHA}): the arms' sizes do not match their "
            "weights, so assignment or logging is broken and the comparisons cannot be trusted"
        )
    if state and state.unattributed_events:
        warnings.append(f"{state.unattributed_events:,} events of users without an exposure were not counted")

    comparisons: list[dict[str, Any]] = []
    treatments = [arm for arm in arms if control is not None and arm.pk != control.pk]
    if control is None:
        warnings.append("the experiment has no control arm: nothing to compare against")
    covariates = covariate_samples(experiment, traffic) if treatments else {}
    n_stars = sequential_n_stars(experiment, arms)
    for arm in treatments:
        comparison = _compare(experiment, row_of[control.pk], row_of[arm.pk], covariates,  # type: ignore[union-attr]
                              n_stars[arm.pk])  # fmt: skip
        comparisons.append({"arm": arm.name, "control": control.name, **comparison})  # type: ignore[union-attr]

    # Holm over every arm x metric (fixed-horizon, absolute difference).
    family = [
        (i, metric) for i, comp in enumerate(comparisons) for metric in METRICS if comp["metrics"][metric]["absolute"]
    ]
    multiple_testing: dict[str, Any] = {"method": "holm", "alpha": experiment.alpha, "tests": []}
    if family:
        adjusted = adjust_pvalues(
            [comparisons[i]["metrics"][m]["absolute"]["p_value"] for i, m in family], "holm", experiment.alpha
        )
        for (i, metric), p, q, rejected in zip(
            family, adjusted.p_values, adjusted.adjusted, adjusted.rejected, strict=True
        ):
            comparisons[i]["metrics"][metric]["p_value_adjusted"] = q
            multiple_testing["tests"].append({
                "arm": comparisons[i]["arm"], "metric": metric, "primary": metric == experiment.primary_metric,
                "p_value": p, "p_value_adjusted": q, "rejected": rejected,
            })  # fmt: skip

    # Verdicts on the primary metric, Holm across treatment arms.
    basis = "fixed_horizon" if experiment.status in _FINISHED else "sequential"
    decisive = []
    for comp in comparisons:
        result = (
            comp["metrics"][experiment.primary_metric]["absolute"] if basis == "fixed_horizon" else comp["sequential"]
        )
        comp["verdict_basis"] = basis
        comp["verdict"], comp["verdict_p_value"] = NOT_ENOUGH_DATA, None
        if result is not None:
            decisive.append((comp, result))
    if decisive:
        primary_adjusted = adjust_pvalues([r["p_value"] for _, r in decisive], "holm", experiment.alpha).adjusted
        for (comp, result), p_value in zip(decisive, primary_adjusted, strict=True):
            comp["verdict_p_value"] = p_value
            comp["verdict"] = _verdict(result["effect"], p_value, experiment.alpha)
    if bandit is not None:
        _bandit_verdicts(comparisons, bandit, experiment.alpha)

    return _finite({
        **_header(experiment, traffic, state),
        "arms": [_arm_summary(arm, row_of[arm.pk]) for arm in arms],
        "daily": _daily(experiment, arms, traffic),
        "lift_history": _lift_history(experiment, arms, traffic, n_stars),
        "comparisons": comparisons,
        "multiple_testing": multiple_testing,
        "srm": srm,
        "warnings": warnings,
        "bandit": bandit,
    })  # fmt: skip


def _header(experiment: Experiment, traffic: str, state: RollupState | None) -> dict[str, Any]:
    """The keys every design's results start with: which experiment, its state and the data's age."""
    return {
        "experiment": experiment.key,
        "design": experiment.design,
        "status": experiment.status,
        "source": experiment.source,
        "primary_metric": experiment.primary_metric,
        "alpha": experiment.alpha,
        "traffic": traffic,
        "as_of": _as_of(state),
    }


def _interleaving_results(experiment: Experiment, traffic: str) -> dict[str, Any]:
    """An interleaving experiment's results: the A/B keys with nothing A/B-only in them (no per-arm user
    metrics, comparisons or SRM check: every exposed user sees both arms) and the `interleaving` block
    (experiments.services.interleaving_results)."""
    from experiments.services.interleaving_results import interleaving_block

    block = interleaving_block(experiment, _traffic_filter(traffic))
    state = RollupState.objects.filter(pk=experiment.pk).first()
    # Every exposed user sees both arms; the A/B fold counts them all under the control (their exposure's arm).
    exposed = ArmRollup.objects.filter(experiment=experiment, **_traffic_filter(traffic)).aggregate(
        users=Sum("exposed_users")
    )["users"]
    warnings = []
    if block["uncredited_clicks"]:
        warnings.append(f"{block['uncredited_clicks']:,} clicks named an item their request did not show and were "
                        "not credited")  # fmt: skip
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
    weights change (see ``experiments.bandits.analysis``)."""
    by_arm = {comp["arm"]: comp for comp in bandit["comparisons"]}
    for comp in comparisons:
        cohort = by_arm.get(comp["arm"])
        comp["verdict_basis"] = "bandit_cohorts"
        if cohort is None:
            comp["verdict"], comp["verdict_p_value"] = NOT_ENOUGH_DATA, None
            continue
        cohort["verdict"] = _verdict(cohort["effect"], cohort["p_value_adjusted"], alpha)
        comp["verdict"], comp["verdict_p_value"] = cohort["verdict"], cohort["p_value_adjusted"]
