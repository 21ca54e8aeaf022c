"""The verdict of a treatment against the control: one test, its p-value and its interval (Django-free).

A verdict names the test behind it (``basis``), and the interval beside it is that test's, on the
relative-lift scale the pages show (treatment / control - 1). So p < alpha exactly when the interval
excludes 0, exactly when the verdict is "treatment wins" or "control wins" (every metric here is
higher-is-better).

The scale of the test: the log of the ratio of the arms' means, d = log(m_t / m_c), with the
delta-method variance v_t / (m_t^2 n_t) + v_c / (m_c^2 n_c); its estimate and interval are mapped to
the relative lift by exp(.) - 1, a monotone map, so the interval excludes 0 exactly when the log
interval does. Testing the relative lift t / c - 1 directly (as gbstats does) makes the errors
lopsided: its delta-method variance shrinks when the treatment's rate is low by chance, so an A/A
test on the simulator (``bench/aa_simulator.py``, 2,200 seeds, daily always-valid looks) declared the
control the winner 104 times and the treatment once (4.8 % in all), and far more readily at the
|z| of 3-4 where the always-valid boundary lies. The log ratio's variance grows instead as a mean
falls, and its two tails err alike.

Methods, chosen when the experiment is designed and never switched by the lifecycle (switching to the
fixed-horizon test because the experiment stopped would be optional stopping: stop when its p-value
dips and the guarantee is gone):

- ``sequential``: the always-valid mSPRT test on the relative lift (``engine.stats.sequential``).
  Its confidence sequence holds at every look, so the verdict may be read at any time, before and
  after Stop, whatever the sample size.
- ``fixed_horizon``: the fixed-horizon test on the relative lift (the engine's t test with Welch's
  degrees of freedom, as gbstats: on proportions, on ratio metrics by the delta method, on means),
  read only once the plan's sample size is reached or after a product manager recorded an early read
  with a reason. Before that the verdict is "not enough data" with no p-value and no interval.

Several treatments: Bonferroni across the k treatment arms, applied to the p-value (min(1, k p)) and
to the interval (level 1 - alpha / k) alike, so the two still agree. Holm's step-down p-values are
uniformly smaller but have no matching intervals, so they are kept for the exploratory table of all
metrics, not for verdicts.

Guardrails: a guardrail metric is breached when a one-sided always-valid test finds it harmed beyond
the tolerance t (a relative drop, default 0): the upper bound of the always-valid confidence sequence
at level 1 - 2 alpha lies below -t. It is ok when the lower bound of that same sequence lies above -t
(harm beyond t is excluded), inconclusive otherwise. Guardrails always use the always-valid test,
whatever the experiment's method: they are watched continuously (pages and alerts), and a peeked-at
fixed-horizon test would raise false alarms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from engine.stats import (
    DEFAULT_N_STAR,
    Proportion,
    RatioSample,
    SampleMean,
    SequentialResult,
    StatisticError,
    TestResult,
    mean_test,
    proportion_test,
    ratio_test,
    sequential_test,
)

Statistic = Proportion | RatioSample | SampleMean
Difference = Literal["absolute", "relative", "log"]
Method = Literal["sequential", "fixed_horizon"]
METHODS: tuple[str, ...] = ("sequential", "fixed_horizon")

TREATMENT_WINS, CONTROL_WINS = "treatment wins", "control wins"
NO_DIFFERENCE, NOT_ENOUGH_DATA = "no significant difference", "not enough data"
# The one set of labels every page shows (the API keeps the verdict values above), and their CSS kinds.
LABELS = {TREATMENT_WINS: "Winning", CONTROL_WINS: "Losing", NO_DIFFERENCE: "No significant difference",
          NOT_ENOUGH_DATA: "Needs more data"}  # fmt: skip
KINDS = {TREATMENT_WINS: "winning", CONTROL_WINS: "losing", NO_DIFFERENCE: "inconclusive",
         NOT_ENOUGH_DATA: "needs-data"}  # fmt: skip
TESTS = {
    "sequential": "always-valid sequential test",
    "fixed_horizon": "fixed-horizon test",
    "bandit_cohorts": "batched test within cohorts of first exposure",
}

GuardrailStatus = Literal["ok", "breached", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Interval:
    """A relative-lift estimate with its interval and two-sided p-value, from one named test."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "sequential" or "fixed_horizon"
    level: float  # the interval's confidence level, e.g. 0.95


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # TREATMENT_WINS, CONTROL_WINS, NO_DIFFERENCE or NOT_ENOUGH_DATA
    basis: str  # the test: "sequential", "fixed_horizon" (or "bandit_cohorts", set by the bandit analysis)
    p_value: float | None  # adjusted for the treatments (Bonferroni); None without a test
    ci_low: float | None  # the same test's interval on the relative lift, at level 1 - alpha / treatments
    ci_high: float | None
    effect: float | None  # the relative lift
    alpha: float
    treatments: int  # Bonferroni's k
    reason: str  # why there is no test yet ("" when there is one)

    @property
    def label(self) -> str:
        return LABELS[self.verdict]

    @property
    def kind(self) -> str:
        return KINDS[self.verdict]

    @property
    def significant(self) -> bool:
        return self.verdict in (TREATMENT_WINS, CONTROL_WINS)


@dataclass(frozen=True, slots=True)
class Guardrail:
    metric: str
    status: GuardrailStatus
    tolerance: float
    effect: float | None
    ci_low: float | None  # the always-valid sequence at level 1 - 2 alpha (one-sided alpha each way)
    ci_high: float | None
    reason: str


def relative_interval(
    control: Statistic, treatment: Statistic, *, method: str, alpha: float, n_star: float = DEFAULT_N_STAR
) -> Interval:
    """The relative lift with the interval and p-value of `method`'s test at level 1 - alpha, tested on
    the log ratio of the means and mapped back by exp(.) - 1 (module docstring).

    Raises StatisticError when the data cannot be tested (no users, no variance, a mean of 0 in an arm).
    """
    result: SequentialResult | TestResult
    if method == "sequential":
        result = sequential_test(control, treatment, alpha=alpha, difference="log", n_star=n_star)
    elif method == "fixed_horizon":
        result = fixed_horizon_test(control, treatment, alpha=alpha, difference="log")
    else:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return Interval(math.expm1(result.effect), math.expm1(result.ci_low), math.expm1(result.ci_high),
                    result.p_value, method, 1 - alpha)  # fmt: skip


def fixed_horizon_test(
    control: Statistic, treatment: Statistic, *, alpha: float, difference: Difference = "relative"
) -> TestResult:
    """The fixed-horizon test for the statistics' kind (``engine.stats.frequentist``): proportions,
    ratio metrics by the delta method (users as units), means; t with Welch's degrees of freedom."""
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        return proportion_test(control, treatment, alpha=alpha, difference=difference)
    if isinstance(control, RatioSample) and isinstance(treatment, RatioSample):
        return ratio_test(control, treatment, alpha=alpha, difference=difference)
    if isinstance(control, SampleMean) and isinstance(treatment, SampleMean):
        return mean_test(control, treatment, alpha=alpha, difference=difference)
    raise TypeError(f"cannot compare {type(control).__name__} with {type(treatment).__name__}")


def decide(
    control: Statistic,
    treatment: Statistic,
    *,
    method: str,
    alpha: float,
    treatments: int = 1,
    n_star: float = DEFAULT_N_STAR,
    horizon_reached: bool = True,
    horizon_note: str = "",
) -> Verdict:
    """The verdict of `treatment` against `control` under `method` (module docstring).

    `treatments`: how many treatment arms share the control (Bonferroni's k). `horizon_reached`
    matters for the fixed-horizon method only: False gives "not enough data" with `horizon_note`
    as the reason.
    """
    if treatments < 1:
        raise ValueError(f"treatments must be at least 1, got {treatments}")
    if method == "fixed_horizon" and not horizon_reached:
        return Verdict(NOT_ENOUGH_DATA, method, None, None, None, None, alpha, treatments,
                       horizon_note or "the plan's sample size is not reached yet")  # fmt: skip
    try:
        test = relative_interval(control, treatment, method=method, alpha=alpha / treatments, n_star=n_star)
    except StatisticError as error:
        return Verdict(NOT_ENOUGH_DATA, method, None, None, None, None, alpha, treatments, str(error))
    p_value = min(1.0, test.p_value * treatments)
    return Verdict(
        verdict_of(test.effect, p_value, alpha),
        method,
        p_value,
        test.ci_low,
        test.ci_high,
        test.effect,
        alpha,
        treatments,
        "",
    )


def verdict_of(effect: float, p_value: float, alpha: float) -> str:
    """The verdict of a (possibly adjusted) p-value: a winner by the effect's sign when p < alpha."""
    if p_value >= alpha:
        return NO_DIFFERENCE
    return TREATMENT_WINS if effect > 0 else CONTROL_WINS


def guardrail(
    metric: str,
    control: Statistic,
    treatment: Statistic,
    *,
    alpha: float,
    tolerance: float = 0.0,
    n_star: float = DEFAULT_N_STAR,
) -> Guardrail:
    """The guardrail status of `metric` (module docstring); inconclusive when it cannot be tested yet."""
    if tolerance < 0:
        raise ValueError(f"the guardrail tolerance is a relative drop, at least 0, got {tolerance}")
    try:
        test = relative_interval(control, treatment, method="sequential", alpha=min(2 * alpha, 0.5), n_star=n_star)
    except StatisticError as error:
        return Guardrail(metric, "inconclusive", tolerance, None, None, None, str(error))
    limit = f"-{tolerance:.1%}" if tolerance else "0"
    status: GuardrailStatus
    if test.ci_high < -tolerance:
        status = "breached"
        reason = f"harmed beyond the tolerance: the always-valid upper bound {test.ci_high:+.2%} is below {limit}"
    elif test.ci_low > -tolerance:
        status = "ok"
        reason = f"no harm beyond the tolerance: the always-valid lower bound {test.ci_low:+.2%} is above {limit}"
    else:
        status = "inconclusive"
        reason = f"the always-valid interval [{test.ci_low:+.2%}, {test.ci_high:+.2%}] contains {limit}"
    return Guardrail(metric, status, tolerance, test.effect, test.ci_low, test.ci_high, reason)
