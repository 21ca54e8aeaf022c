"""An experiment's results as typed, frozen dataclasses, and the one function that serialises them (Django-free).

``analysis.services.results.experiment_results`` builds them; ``presentation`` reads their attributes;
every edge (the API, the JSON and CSV exports, the pages and their charts) shows ``results_data(results)``
or values read from the same objects, so every surface carries the same numbers.

Two designs, one header: ``ABResults`` (A/B and bandit experiments: per-arm metrics, each treatment
against the control) and ``InterleavingResults`` (one blended list per request: the ``interleaving``
block instead of per-arm users). Both start with ``ExperimentResults``' fields. Field names are the JSON
keys; the engine's own result dataclasses (``TestResult``, ``SequentialResult``, ``Interval``,
``Guardrail``, ``SrmResult``) are embedded as they are.

``results_data`` is ``dataclasses.asdict`` with three conversions for JSON: tuples become lists, a
float that is not finite becomes null (JSON has neither NaN nor infinity), and a metric without CUPED
covariates has no ``cuped`` / ``cuped_error`` keys at all (CUPED is tried only when the experiment's
data set has a pre-period for both arms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from engine.stats import SequentialResult, SrmResult, TestResult
from engine.verdicts import Guardrail, Interval

Team = Literal["A", "B"]


@dataclass(frozen=True, slots=True)
class ResultWarning:
    """A warning about the design or the data; `code` is one of the codes the results' docstring lists."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class AsOf:
    """How far the rollups have folded: the results are as of then."""

    event_watermark: int
    folded_at: str | None  # ISO 8601
    folded_events: int
    unattributed_events: int


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm's users and metrics over the chosen traffic (rates are None without a denominator)."""

    name: str
    is_control: bool
    weight: float
    users: int
    active_users: int
    impressions: int
    clicks: int
    ctr: float | None
    add_to_carts: int
    add_to_cart_rate: float | None
    purchases: int
    purchasers: int
    conversion_rate: float | None
    revenue: float
    revenue_per_user: float | None
    clicks_per_user: float | None

    def metric(self, name: str) -> float | None:
        """The arm's value of metric `name` (one of the results' METRICS)."""
        values = {"conversion_rate": self.conversion_rate, "add_to_cart_rate": self.add_to_cart_rate,
                  "ctr": self.ctr, "revenue_per_user": self.revenue_per_user,
                  "clicks_per_user": self.clicks_per_user}  # fmt: skip
        return values[name]


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One arm's day: its newly exposed users, cumulative users and that day's events."""

    day: str  # ISO date
    new_users: int
    users: int
    impressions: int
    clicks: int
    ctr: float | None
    add_to_carts: int
    purchases: int
    revenue: float


@dataclass(frozen=True, slots=True)
class LiftLook:
    """A treatment's relative lift on the primary metric as of the end of `day`, with the verdict test's
    interval (at alpha / treatments) and its Bonferroni-adjusted p-value."""

    day: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str


@dataclass(frozen=True, slots=True)
class BayesianLift:
    """The Bayesian comparison of one metric (``engine.stats.BayesianResult``) and the metric's name."""

    metric: str
    method: Literal["beta_binomial", "normal_relative"]
    chance_to_win: float
    expected_loss_control: float
    expected_loss_treatment: float
    lift_median: float
    lift_ci_low: float
    lift_ci_high: float
    control_mean: float
    treatment_mean: float
    effect: float
    credible_level: float
    loss_scale: Literal["absolute", "relative"]
    alpha_control: float | None = None
    beta_control: float | None = None
    alpha_treatment: float | None = None
    beta_treatment: float | None = None


@dataclass(frozen=True, slots=True)
class CupedTest(TestResult):
    """The CUPED-adjusted Welch test (``engine.stats.TestResult``), with theta and the variance reduction."""

    theta: float
    variance_reduction: float
    correlation: float


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A treatment against the control on one metric, by the experiment's analysis method (`test`): the
    absolute difference, the relative lift (``engine.verdicts.Interval``), the Bayesian comparison, the
    Holm-adjusted p-value over every arm x metric and, when the data set has a pre-period, CUPED.
    `error` / `bayesian_error` / `cuped_error` say why the engine refused a test."""

    primary: bool
    role: str  # primary, secondary, guardrail or other
    test: str  # the analysis method: sequential or fixed_horizon
    absolute: SequentialResult | TestResult | None
    relative: Interval | None
    error: str | None
    bayesian: BayesianLift | None
    bayesian_error: str | None
    p_value_adjusted: float | None = None
    cuped: CupedTest | None = None  # both None: CUPED not tried (no covariates), and the keys are left out
    cuped_error: str | None = None


@dataclass(frozen=True, slots=True)
class SequentialLift:
    """The always-valid test of the primary metric's relative lift (``engine.verdicts.Interval``), tightest at
    `n_star` users of the two arms; `n_star_source` says where N* comes from ("plan" or "default")."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    level: float
    n_star: float
    n_star_source: str


@dataclass(frozen=True, slots=True)
class Override:
    """A product manager's early read of a fixed-horizon verdict, before the plan's sample size."""

    by: str
    reason: str
    at: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class Comparison:
    """One treatment against the control: every metric, the primary metric's Bayesian and always-valid tests,
    the verdict (``engine.verdicts``: its value, label, the test behind it and that test's own p-value and
    interval on the relative lift, adjusted for the treatments) and the guardrails."""

    arm: str
    control: str
    metrics: Mapping[str, MetricResult]
    bayesian: BayesianLift | None
    bayesian_error: str | None
    sequential: SequentialLift | None
    sequential_error: str | None
    verdict: str  # treatment wins, control wins, no significant difference, not enough data
    verdict_label: str
    verdict_basis: str  # sequential, fixed_horizon or bandit_cohorts
    verdict_test: str  # the basis in words
    verdict_p_value: float | None
    verdict_effect: float | None
    verdict_ci_low: float | None
    verdict_ci_high: float | None
    verdict_alpha: float
    verdict_adjustment: str  # none, bonferroni or holm
    verdict_treatments: int
    verdict_reason: str  # why there is no test yet ("" when there is one)
    override: Override | None
    guardrails: tuple[Guardrail, ...]


@dataclass(frozen=True, slots=True)
class MultipleTest:
    """One arm x metric of the Holm family (exploratory, never a verdict)."""

    arm: str
    metric: str
    primary: bool
    p_value: float
    p_value_adjusted: float
    rejected: bool


@dataclass(frozen=True, slots=True)
class MultipleTesting:
    method: str
    alpha: float
    tests: tuple[MultipleTest, ...] = ()


@dataclass(frozen=True, slots=True)
class SrmUnavailable:
    """No sample-ratio check: why (the engine's refusal, or a design it does not apply to)."""

    error: str | None
    mismatch: bool = False


@dataclass(frozen=True, slots=True)
class BanditCohort:
    """The users first exposed in one period of one weight history, per arm (position order)."""

    source: str
    period: int
    starts_at: str
    served_weights: tuple[float, ...]
    users: tuple[int, ...]
    successes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BanditComparison:
    """A treatment against the control within cohorts of first exposure (``engine.bandits.analysis``): the
    period-weighted difference with its Wald interval, the batched z test (Holm across treatments:
    `p_value_adjusted` is what the verdict rests on) and the relative lift (None without control successes)."""

    arm: str
    control: str
    arm_rate: float
    control_rate: float
    effect: float
    std_error: float
    ci_low: float
    ci_high: float
    wald_p_value: float
    batched_z: float
    batched_p_value: float
    batched_periods: int
    p_value_adjusted: float
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    confidence: float
    users: int
    periods_used: int
    periods_skipped: int
    verdict: str


@dataclass(frozen=True, slots=True)
class BanditSrm:
    """The SRM check against the weights served in each period, pooled and period by period."""

    p_value: float
    chi2: float
    mismatch: bool
    pooled_mismatch: bool
    alpha: float
    period_alpha: float
    observed: Mapping[str, int]
    expected: Mapping[str, float]
    periods_alarming: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PooledArm:
    """An arm's users and successes over all periods: the naive pooling, shown for its bias only."""

    arm: str
    users: int
    successes: int


@dataclass(frozen=True, slots=True)
class BanditAnalysis:
    """A bandit experiment's weights and its cohort analysis (``analysis.services.bandit_results``).
    `histories` are the weight histories as the experiment page's chart reads them
    (``experiments.services.bandit_schedule.history_dict``); `error` says why there is no analysis yet."""

    metric: str
    success: str
    settings: Mapping[str, float]
    current_weights: Mapping[str, float]
    current_source: str | None
    histories: tuple[Mapping[str, Any], ...]
    cohorts: tuple[BanditCohort, ...]
    comparisons: tuple[BanditComparison, ...] = ()
    srm: BanditSrm | None = None
    pooled: tuple[PooledArm, ...] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InterleavingSequential:
    """The always-valid sign test (``engine.interleaving.sequential_sign_test``) with its confidence sequences."""

    p_value: float
    significant: bool
    preferred: Team | None
    share_a_sequence: tuple[float, float] | None
    delta_sequence: tuple[float, float] | None
    n_star: float | None
    n_star_source: str
    concentration: float
    test: str


@dataclass(frozen=True, slots=True)
class InterleavingLook:
    """Both tests on the cumulative sessions as of the end of `day` (the preference chart)."""

    day: str
    sessions: int
    wins_a: int
    wins_b: int
    ties: int
    clicks_a: int
    clicks_b: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    sequential_p_value: float
    cs_low: float
    cs_high: float


@dataclass(frozen=True, slots=True)
class InterleavingAnalysis:
    """An interleaving experiment's sessions, wins, credited clicks, both tests and the verdict
    (``analysis.services.interleaving_results``); the test fields are None before the first session."""

    method: str
    explanation: str
    team_a: str
    team_b: str
    sessions: int
    wins_a: int
    wins_b: int
    ties: int
    clicks_a: int
    clicks_b: int
    sequential: InterleavingSequential | None
    share_a: float | None
    share_a_interval: tuple[float, float] | None
    delta: float | None
    delta_interval: tuple[float, float] | None
    p_value: float | None
    confidence: float | None
    significant: bool | None
    preferred: Team | None
    test: str | None
    alpha: float
    preferred_arm: str | None
    verdict: str
    verdict_basis: str
    verdict_p_value: float | None
    verdict_ci_low: float | None
    verdict_ci_high: float | None
    uncredited_clicks: int
    history: tuple[InterleavingLook, ...]


@dataclass(frozen=True, slots=True)
class InterleavingArm:
    """An arm of an interleaving experiment: its team, the sessions it won and the clicks credited to it."""

    name: str
    is_control: bool
    weight: float
    team: Team
    sessions_won: int
    clicks_credited: int


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    """What every design's results start with: which experiment, its state and settings, and the data's age."""

    experiment: str
    design: str  # ab, bandit or interleaving
    status: str
    source: str
    primary_metric: str
    secondary_metrics: tuple[str, ...]
    guardrail_metrics: tuple[str, ...]
    guardrail_tolerance: float
    analysis_method: str
    alpha: float
    traffic: str  # all, live or simulated
    as_of: AsOf


@dataclass(frozen=True, slots=True)
class ABResults(ExperimentResults):
    """An A/B or bandit experiment's results: per-arm metrics, each treatment against the control, the Holm
    table of every arm x metric, the SRM check, the warnings and, for a bandit, its cohort analysis."""

    arms: tuple[ArmResult, ...]
    chosen_metrics: tuple[str, ...]
    daily: Mapping[str, tuple[DailyRow, ...]]
    lift_history: Mapping[str, tuple[LiftLook, ...]]
    comparisons: tuple[Comparison, ...]
    multiple_testing: MultipleTesting
    srm: SrmResult | BanditSrm | SrmUnavailable
    warnings: tuple[ResultWarning, ...]
    bandit: BanditAnalysis | None


@dataclass(frozen=True, slots=True)
class InterleavingResults(ExperimentResults):
    """An interleaving experiment's results: the A/B keys with nothing A/B-only in them (every exposed user
    sees both arms: no per-arm users, comparisons or SRM check) and the `interleaving` block."""

    exposed_users: int
    arms: tuple[InterleavingArm, ...]
    daily: Mapping[str, tuple[DailyRow, ...]]
    lift_history: Mapping[str, tuple[LiftLook, ...]]
    comparisons: tuple[Comparison, ...]
    multiple_testing: MultipleTesting
    srm: SrmUnavailable
    warnings: tuple[ResultWarning, ...]
    interleaving: InterleavingAnalysis


# The keys a MetricResult leaves out when CUPED was not tried (both None).
ABSENT_WHEN_NULL = ("cuped", "cuped_error")


def _fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """asdict's dict factory: a metric without CUPED has no cuped keys (module docstring)."""
    out = dict(pairs)
    if all(name in out and out[name] is None for name in ABSENT_WHEN_NULL):
        for name in ABSENT_WHEN_NULL:
            del out[name]
    return out


def json_ready(value: Any) -> Any:
    """`value` with lists for tuples and null for a float that is not finite, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def results_data(results: ExperimentResults) -> dict[str, Any]:
    """The results as JSON-ready plain data: what the API answers, the JSON export holds and the pages read."""
    data: dict[str, Any] = json_ready(asdict(results, dict_factory=_fields))
    return data
