"""Each treatment against the control: every metric's tests, the verdict, the guardrails, the lift over
time and the Holm table.

Tests: every metric of a comparison is tested by the experiment's ``analysis_method`` (chosen when it is
designed, never switched by Stop): the always-valid sequential test (``sequential``, the default) or the
fixed-horizon test (``fixed_horizon``), on the absolute difference and on the relative lift; each metric
names its ``test`` and its ``role`` (primary, secondary, guardrail or other: all five metrics are
computed, the chosen ones are shown). The primary metric also gets the Bayesian comparison and the
always-valid test tightest at the plan's users (``horizon.sequential_n_stars``); a metric with CUPED
covariates also gets the CUPED-adjusted Welch test.

Verdicts (``engine.verdicts``): on the primary metric's relative lift, by the analysis method, Bonferroni
across treatment arms; the interval beside the verdict is the same test's, so p < alpha exactly when it
excludes 0. Under ``fixed_horizon`` the verdict waits for the plan (``horizon``). A bandit's verdicts are
its cohort analysis's (``bandit_verdict``).

Multiple testing: the relative-lift p-values of all arms x metrics form one Holm family
(``multiple_testing``; each metric carries its ``p_value_adjusted``); exploratory, not a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace

from analysis.models import ArmRollup
from analysis.results_types import (
    BanditAnalysis,
    BayesianLift,
    Comparison,
    CupedTest,
    LiftLook,
    MetricResult,
    MultipleTest,
    MultipleTesting,
    Override,
    SequentialLift,
)
from analysis.services.arm_metrics import METRICS, cumulative_statistics, statistic
from analysis.services.horizon import NO_PLAN, NOT_REACHED, Horizon, NStar
from engine.stats import (
    CovariateSample,
    SequentialResult,
    StatisticError,
    TestResult,
    adjust_pvalues,
    bayesian_test,
    cuped_adjust,
    mean_test,
    sequential_test,
)
from engine.verdicts import (
    LABELS,
    NOT_ENOUGH_DATA,
    TESTS,
    Difference,
    Guardrail,
    Interval,
    Statistic,
    Verdict,
    decide,
    fixed_horizon_test,
    guardrail,
    relative_interval,
)
from experiments.models import Arm, Experiment

Covariates = Mapping[str, Mapping[int, CovariateSample]]


def role(experiment: Experiment, metric: str) -> str:
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


def _bayesian(metric: str, control: Statistic, treatment: Statistic) -> tuple[BayesianLift | None, str | None]:
    """The Bayesian comparison of one metric (chance to win, expected losses, lift credible interval):
    the exact Beta-Binomial for rates of users, a normal posterior on the delta-method relative lift for
    ratio metrics (CTR) and means (``engine.stats.bayesian_test``)."""
    try:
        result = bayesian_test(control, treatment)
    except StatisticError as error:
        return None, str(error)
    return BayesianLift(metric, **{field.name: getattr(result, field.name) for field in fields(result)}), None


def _cuped(control: CovariateSample, treatment: CovariateSample, alpha: float) -> tuple[CupedTest | None, str | None]:
    """The CUPED-adjusted Welch test, with theta and the variance reduction it achieved."""
    try:
        adjusted = cuped_adjust(control, treatment)
        test = mean_test(adjusted.control_adjusted, adjusted.treatment_adjusted, alpha=alpha)
    except StatisticError as error:
        return None, str(error)
    values = {field.name: getattr(test, field.name) for field in fields(test)}
    return CupedTest(**values, theta=adjusted.theta, variance_reduction=adjusted.variance_reduction,
                     correlation=adjusted.correlation), None  # fmt: skip


def _metric(
    experiment: Experiment,
    metric: str,
    control: ArmRollup,
    treatment: ArmRollup,
    covariates: Covariates,
    n_star: float,
) -> MetricResult:
    """The treatment against the control on `metric` by the experiment's analysis method (module docstring)."""
    primary, test = metric == experiment.primary_metric, experiment.analysis_method
    by_arm = covariates.get(metric, {})
    cuped, cuped_error = None, None
    if control.arm_id in by_arm and treatment.arm_id in by_arm:
        cuped, cuped_error = _cuped(by_arm[control.arm_id], by_arm[treatment.arm_id], experiment.alpha)
    try:
        c, t = statistic(metric, control), statistic(metric, treatment)
    except StatisticError as refused:
        return MetricResult(primary, role(experiment, metric), test, absolute=None, relative=None,
                            error=str(refused), bayesian=None, bayesian_error=str(refused), cuped=cuped,
                            cuped_error=cuped_error)  # fmt: skip
    absolute: SequentialResult | TestResult | None = None
    relative: Interval | None = None
    error: str | None = None
    try:
        absolute = _method_test(experiment, c, t, "absolute", n_star)
    except StatisticError as refused:
        error = str(refused)
    try:
        relative = relative_interval(c, t, method=test, alpha=experiment.alpha, n_star=n_star)
    except StatisticError as refused:
        error = error or str(refused)
    bayesian, bayesian_error = _bayesian(metric, c, t)
    return MetricResult(primary, role(experiment, metric), test, absolute=absolute, relative=relative,
                        error=error, bayesian=bayesian, bayesian_error=bayesian_error, cuped=cuped,
                        cuped_error=cuped_error)  # fmt: skip


def _sequential(experiment: Experiment, control: ArmRollup, treatment: ArmRollup,
                n_star: NStar) -> tuple[SequentialLift | None, str | None]:  # fmt: skip
    """The always-valid test on the primary metric's relative lift, tightest at `n_star`."""
    metric = experiment.primary_metric
    try:
        look = relative_interval(statistic(metric, control), statistic(metric, treatment), method="sequential",
                                 alpha=experiment.alpha, n_star=n_star[0])  # fmt: skip
    except StatisticError as error:
        return None, str(error)
    return SequentialLift(look.effect, look.ci_low, look.ci_high, look.p_value, look.test, look.level, n_star[0],
                          n_star[1]), None  # fmt: skip


def _verdict(
    experiment: Experiment, control: ArmRollup, treatment: ArmRollup, treatments: int, n_star: float, horizon: Horizon
) -> Verdict:
    """The verdict on the primary metric (``engine.verdicts.decide``), "not enough data" when the engine refuses."""
    try:
        c, t = statistic(experiment.primary_metric, control), statistic(experiment.primary_metric, treatment)
    except StatisticError as error:
        return Verdict(NOT_ENOUGH_DATA, experiment.analysis_method, None, None, None, None, experiment.alpha,
                       treatments, str(error))  # fmt: skip
    return decide(c, t, method=experiment.analysis_method, alpha=experiment.alpha, treatments=treatments,
                  n_star=n_star, horizon_reached=horizon.reached, horizon_note=horizon.note)  # fmt: skip


def _guardrails(experiment: Experiment, control: ArmRollup, treatment: ArmRollup,
                n_star: float) -> tuple[Guardrail, ...]:  # fmt: skip
    out = []
    for metric in experiment.guardrail_metrics or []:
        try:
            c, t = statistic(metric, control), statistic(metric, treatment)
        except StatisticError as error:
            out.append(Guardrail(metric, "inconclusive", experiment.guardrail_tolerance, None, None, None, str(error)))
            continue
        out.append(guardrail(metric, c, t, alpha=experiment.alpha, tolerance=experiment.guardrail_tolerance,
                             n_star=n_star))  # fmt: skip
    return tuple(out)


def compare(
    experiment: Experiment,
    arms: tuple[Arm, Arm],
    rows: tuple[ArmRollup, ArmRollup],
    *,
    treatments: int,
    covariates: Covariates | None = None,
    n_star: NStar = NO_PLAN,
    horizon: Horizon = NOT_REACHED,
    override: Override | None = None,
) -> Comparison:
    """The treatment (second of `arms`, `rows`) against the control (first) on every metric, the primary
    metric's Bayesian and always-valid tests, the verdict (Bonferroni over `treatments`; under the
    fixed-horizon method read once `horizon` is reached or `override` was recorded) and the guardrails."""
    control, treatment = rows
    metrics = {metric: _metric(experiment, metric, control, treatment, covariates or {}, n_star[0])
               for metric in METRICS}  # fmt: skip
    primary = metrics[experiment.primary_metric]
    sequential, sequential_error = _sequential(experiment, control, treatment, n_star)
    if override is not None:
        horizon = horizon._replace(reached=True)
    verdict = _verdict(experiment, control, treatment, treatments, n_star[0], horizon)
    return Comparison(
        arm=arms[1].name,
        control=arms[0].name,
        metrics=metrics,
        bayesian=primary.bayesian,
        bayesian_error=primary.bayesian_error,
        sequential=sequential,
        sequential_error=sequential_error,
        verdict=verdict.verdict,
        verdict_label=verdict.label,
        verdict_basis=verdict.basis,
        verdict_test=TESTS.get(verdict.basis, verdict.basis),
        verdict_p_value=verdict.p_value,
        verdict_effect=verdict.effect,
        verdict_ci_low=verdict.ci_low,
        verdict_ci_high=verdict.ci_high,
        verdict_alpha=verdict.alpha,
        verdict_adjustment="bonferroni" if verdict.treatments > 1 else "none",
        verdict_treatments=verdict.treatments,
        verdict_reason=verdict.reason,
        override=override if experiment.analysis_method == "fixed_horizon" else None,
        guardrails=_guardrails(experiment, control, treatment, n_star[0]),
    )


def holm(experiment: Experiment, comparisons: list[Comparison]) -> tuple[list[Comparison], MultipleTesting]:
    """Holm over every arm x metric (the analysis method's relative-lift p-values): the comparisons with each
    metric's `p_value_adjusted`, and the table. Exploratory, never a verdict."""
    family = [(i, metric) for i, comp in enumerate(comparisons) for metric in METRICS
              if comp.metrics[metric].relative is not None]  # fmt: skip
    if not family:
        return comparisons, MultipleTesting("holm", experiment.alpha)
    p_values = []
    for i, metric in family:
        relative = comparisons[i].metrics[metric].relative
        assert relative is not None  # the family holds only the tested metrics
        p_values.append(relative.p_value)
    adjusted = adjust_pvalues(p_values, "holm", experiment.alpha)
    metrics = [dict(comp.metrics) for comp in comparisons]
    tests = []
    for (i, metric), p, q, rejected in zip(family, adjusted.p_values, adjusted.adjusted, adjusted.rejected,
                                           strict=True):  # fmt: skip
        metrics[i][metric] = replace(metrics[i][metric], p_value_adjusted=q)
        tests.append(MultipleTest(comparisons[i].arm, metric, metric == experiment.primary_metric, p, q, rejected))
    adjusted_comparisons = [replace(comp, metrics=by_metric) for comp, by_metric in zip(comparisons, metrics,
                                                                                          strict=True)]  # fmt: skip
    return adjusted_comparisons, MultipleTesting("holm", experiment.alpha, tuple(tests))


def bandit_verdict(comparison: Comparison, bandit: BanditAnalysis) -> Comparison:
    """`comparison` with the cohort analysis's verdict: the pooled tests are biased when the weights change
    (see ``engine.bandits.analysis``). The batched test has no interval, so the verdict's interval is null;
    the cohorts' period-weighted lift and its Wald interval are description."""
    cohort = next((c for c in bandit.comparisons if c.arm == comparison.arm), None)
    comparison = replace(comparison, verdict_basis="bandit_cohorts", verdict_test=TESTS["bandit_cohorts"],
                         verdict_ci_low=None, verdict_ci_high=None, verdict_adjustment="holm",
                         override=None)  # fmt: skip
    if cohort is None:
        reason = bandit.error or "no cohort with users in both arms yet"
        return replace(comparison, verdict=NOT_ENOUGH_DATA, verdict_label=LABELS[NOT_ENOUGH_DATA],
                       verdict_p_value=None, verdict_effect=None, verdict_reason=reason)  # fmt: skip
    return replace(comparison, verdict=cohort.verdict, verdict_label=LABELS[cohort.verdict],
                   verdict_p_value=cohort.p_value_adjusted, verdict_effect=cohort.lift, verdict_reason="")  # fmt: skip


def lift_history(
    experiment: Experiment, arms: list[Arm], traffic: str, n_stars: Mapping[int, NStar]
) -> dict[str, tuple[LiftLook, ...]]:
    """Each treatment's relative lift on the primary metric as of the end of each day, with the interval
    of the verdict's own test (the analysis method at alpha / treatments, tightest at the arm's N*), so
    the band's last point is the verdict's interval; on the arms' cumulative sufficient statistics
    (``arm_metrics.cumulative_statistics``). Days on which the engine cannot test yet (n < 2, no variance,
    no success in an arm) are left out."""
    control = next((arm for arm in arms if arm.is_control), None)
    if control is None:
        return {}
    history: dict[str, list[LiftLook]] = {arm.name: [] for arm in arms if arm.pk != control.pk}
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
            history[arm.name].append(LiftLook(day.isoformat(), look.effect, look.ci_low, look.ci_high,
                                              min(1.0, look.p_value * treatments), look.test))  # fmt: skip
    return {name: tuple(looks) for name, looks in history.items()}
