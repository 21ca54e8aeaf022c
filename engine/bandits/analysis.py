"""Results of a bandit experiment: comparisons and the SRM check under weights that change per period.

Why the naive analysis is wrong. Pooling all users of an arm compares arms whose users come from
different periods in different proportions: if the bandit sends most new users to arm B in a
period when everyone converts less (a weekend, a sale ending), B looks worse even when it is as
good as A (Simpson's paradox). The tests build exactly that case.

The unit of analysis is the cohort: the users whose first exposure fell in period t (the interval
between two weight updates). The bandit gives each new user the weights in force at their first
exposure and never moves them afterwards (see ``thompson.py``), so within a cohort assignment is
an ordinary randomised experiment with known probabilities w_t, and the cohorts are strata.

Period-weighted (post-stratified) difference of arm T against control C, over the periods in
which both arms got users (Imbens & Rubin 2015, "Causal Inference", ch. 9, stratified randomised
experiments)::

    N_t      = users of cohort t over all arms,     N = sum_t N_t,     v_t = N_t / N
    p_{a,t}  = s_{a,t} / n_{a,t}
    rate_a   = sum_t v_t p_{a,t}                    (arm a's rate standardised to the cohort mix)
    effect   = rate_T - rate_C = sum_t v_t (p_{T,t} - p_{C,t})
    Var      = sum_t v_t^2 (p_{T,t}(1 - p_{T,t}) / n_{T,t} + p_{C,t}(1 - p_{C,t}) / n_{C,t})
    CI       = effect +- z_{1-alpha/2} sqrt(Var),   p = 2 (1 - Phi(|effect| / sqrt(Var)))

Given each period's weights, every p_{a,t} is unbiased for cohort t's rate under arm a, so the
effect is unbiased for the average effect over the cohorts however the weights were chosen from
earlier periods (each term is conditionally unbiased given the past: a martingale argument).
Relative lift = rate_T / rate_C - 1 with a delta-method interval (the two rates use disjoint
users, so they are independent): Var(lift) ~ Var_T / rate_C^2 + rate_T^2 Var_C / rate_C^4.
The Wald statistic effect / sqrt(Var) need not be N(0, 1) on adaptively collected data: when the
arms are equal the allocation never settles, so the variance is itself random and the martingale
central limit theorem does not apply (Zhang, Janson & Murphy 2020, "Inference for batched
bandits", NeurIPS; Hadad et al. 2021, PNAS 118:e2014602118). The test of "no difference" therefore
uses their batched statistic (BOLS), which is N(0, 1) under the null whatever the allocation::

    z_t = (p_{T,t} - p_{C,t}) / sqrt(pbar_t (1 - pbar_t) (1 / n_{T,t} + 1 / n_{C,t}))
    pbar_t = (s_{T,t} + s_{C,t}) / (n_{T,t} + n_{C,t})
    Z   = sum_t z_t / sqrt(m),   batched p = 2 (1 - Phi(|Z|))     (m periods with a defined z_t)

z_t uses the period's pooled rate (the score test of equal rates), not each arm's own: with the
unpooled variance, a floor cell of a few hundred users at a 3-8 % rate gives z_t heavier tails
(a low count also shrinks its own variance estimate), and the sum over periods inherits it: 7.2 %
false positives at alpha 0.05 in the adaptive A/A test, against 5 % with the pooled variance.

(each z_t is standard normal given the past, as the period's weights are fixed before its users
arrive, so their sum over m periods is N(0, m)). It needs each period's cells large enough for the
normal approximation (the minimum share sees to that). ``p_value`` (the Wald one, consistent with
the interval) is kept for reference; ``batched_p_value`` is the one to decide on.
``bench/bandit_regret.py`` measures both false-positive rates under A/A with bandit allocation.

SRM under changing weights. Expected users of arm a = sum_t N_t w_{t,a}: the weights actually
served in each period (``served_weights`` of its allocation), not the latest ones. The pooled
check reuses ``engine.stats.srm_test`` (Pearson chi-square), which accepts any positive
expected weights and scales them to the observed total, so passing the expected counts is exact.
Mismatches of opposite sign in different periods can cancel in the pooled check, so each period is
also tested on its own at a Bonferroni-corrected level alpha / (periods tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from engine.stats import SrmResult, srm_test

from ._checks import check_count
from .errors import DegenerateBanditDataError, InvalidBanditConfigError, InvalidBanditDataError
from .thompson import WeightUpdate, allocation_for, served_weights

__all__ = [
    "ArmComparison",
    "BanditSrmResult",
    "PeriodData",
    "bandit_srm",
    "cohort_data",
    "pooled_counts",
    "stratified_comparison",
]

# Served weights come from 1/10,000 bucket bounds or from floats summed by the caller; a sum off by
# more than this is a bug upstream (a wrong row), not rounding.
_WEIGHT_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class PeriodData:
    """One cohort: the ``weights`` served to new users in ``period``, and per arm the ``users``
    first exposed in it and how many of them converted (``successes``: purchased, or clicked at
    least once for a user-level CTR)."""

    period: int
    weights: tuple[float, ...]
    users: tuple[int, ...]
    successes: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.period, bool) or not isinstance(self.period, int | np.integer) or self.period < 0:
            raise InvalidBanditDataError(f"PeriodData.period must be an integer >= 0, got {self.period!r}")
        p = int(self.period)
        if not (len(self.weights) == len(self.users) == len(self.successes)):
            raise InvalidBanditDataError(
                f"period {p}: {len(self.weights)} weights, {len(self.users)} user counts and "
                f"{len(self.successes)} success counts; one of each per arm"
            )
        if len(self.weights) < 2:
            raise InvalidBanditDataError(f"period {p}: at least 2 arms needed, got {len(self.weights)}")
        weights = []
        for w in self.weights:
            if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
                raise InvalidBanditDataError(f"period {p}: weights must be numbers, got {w!r}")
            if not (math.isfinite(float(w)) and 0.0 <= float(w) <= 1.0):
                raise InvalidBanditDataError(f"period {p}: weights must be in [0, 1], got {list(self.weights)!r}")
            weights.append(float(w))
        if abs(math.fsum(weights) - 1.0) > _WEIGHT_SUM_TOLERANCE:
            raise InvalidBanditDataError(
                f"period {p}: served weights must sum to 1 (shares of new users), got {math.fsum(weights)!r}"
            )
        users = tuple(check_count(u, f"period {p}: users[{i}]") for i, u in enumerate(self.users))
        successes = tuple(check_count(s, f"period {p}: successes[{i}]") for i, s in enumerate(self.successes))
        for i, (n, s) in enumerate(zip(users, successes, strict=True)):
            if s > n:
                raise InvalidBanditDataError(f"period {p}: arm {i} has {s} successes but only {n} users")
            if n > 0 and weights[i] == 0.0:
                raise InvalidBanditDataError(
                    f"period {p}: arm {i} got {n} new users but was served with weight 0 "
                    "(wrong weights row, or users moved between arms)"
                )
        object.__setattr__(self, "period", p)
        object.__setattr__(self, "weights", tuple(weights))
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "successes", successes)

    @property
    def total_users(self) -> int:
        return sum(self.users)


def cohort_data(update: WeightUpdate, users: Sequence[int], successes: Sequence[int]) -> PeriodData:
    """The cohort of ``update.period``: its new users and successes per arm, with the shares the
    bucketing really served for those weights (``served_weights``), as the analysis needs them."""
    if not isinstance(update, WeightUpdate):
        raise InvalidBanditDataError(f"update must be a WeightUpdate, got {update!r}")
    served = served_weights(allocation_for(update.weights))
    return PeriodData(period=update.period, weights=served, users=tuple(users), successes=tuple(successes))


def _check_periods(periods: Sequence[PeriodData]) -> tuple[PeriodData, ...]:
    if isinstance(periods, str | bytes) or not isinstance(periods, Sequence):
        raise InvalidBanditDataError(f"periods must be a sequence of PeriodData, got {periods!r}")
    result = tuple(periods)
    if not result:
        raise InvalidBanditDataError("no periods given")
    for i, period in enumerate(result):
        if not isinstance(period, PeriodData):
            raise InvalidBanditDataError(f"periods[{i}] must be PeriodData, got {period!r}")
        if len(period.weights) != len(result[0].weights):
            raise InvalidBanditDataError(
                f"period {period.period} has {len(period.weights)} arms, period {result[0].period} has "
                f"{len(result[0].weights)}"
            )
    seen = [p.period for p in result]
    if len(set(seen)) != len(seen):
        raise InvalidBanditDataError(f"each period must appear once, got {seen!r}")
    return result


@dataclass(frozen=True, slots=True)
class ArmComparison:
    """Arm ``arm`` against ``control``: period-weighted rates, difference and relative lift with CIs.

    ``periods_used`` lists the cohorts in which both arms had users (the others carry no
    within-period comparison and are left out, which ``periods_skipped`` reports).
    ``batched_z`` / ``batched_p_value``: the batched test (module docstring), the one to decide on;
    ``batched_periods`` how many periods had a defined z_t (cells not all 0 or all 1).
    """

    arm: int
    control: int
    control_rate: float
    arm_rate: float
    effect: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    batched_z: float
    batched_p_value: float
    batched_periods: int
    lift: float
    lift_ci_low: float
    lift_ci_high: float
    confidence: float
    users: int
    periods_used: tuple[int, ...]
    periods_skipped: tuple[int, ...]


def stratified_comparison(
    periods: Sequence[PeriodData], control: int = 0, confidence: float = 0.95
) -> tuple[ArmComparison, ...]:
    """Every other arm against ``control`` by the period-weighted difference (module docstring)."""
    data = _check_periods(periods)
    arms = len(data[0].weights)
    if isinstance(control, bool) or not isinstance(control, int) or not 0 <= control < arms:
        raise InvalidBanditConfigError(f"control must be an arm index in [0, {arms}), got {control!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, float | int) or not 0.0 < confidence < 1.0:
        raise InvalidBanditConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    z = float(special.ndtri(0.5 + confidence / 2.0))
    results = []
    for arm in range(arms):
        if arm == control:
            continue
        used = [p for p in data if p.users[arm] > 0 and p.users[control] > 0]
        if not used:
            raise DegenerateBanditDataError(f"no period in which both arm {arm} and control arm {control} got users")
        sizes = np.array([p.total_users for p in used], dtype=np.float64)
        v = sizes / sizes.sum()
        n_t = np.array([p.users[arm] for p in used], dtype=np.float64)
        n_c = np.array([p.users[control] for p in used], dtype=np.float64)
        p_t = np.array([p.successes[arm] for p in used], dtype=np.float64) / n_t
        p_c = np.array([p.successes[control] for p in used], dtype=np.float64) / n_c
        rate_t, rate_c = float(v @ p_t), float(v @ p_c)
        var_t = float(np.sum(v**2 * p_t * (1.0 - p_t) / n_t))
        var_c = float(np.sum(v**2 * p_c * (1.0 - p_c) / n_c))
        se = math.sqrt(var_t + var_c)
        effect = rate_t - rate_c
        if se == 0.0:
            # Every cell is all-0 or all-1: no sampling variability to test against.
            raise DegenerateBanditDataError(
                f"arm {arm} vs {control}: every period's rates are 0 or 1 in both arms; no variance to test"
            )
        p_value = float(special.erfc(abs(effect) / se / math.sqrt(2.0)))
        pooled = (p_t * n_t + p_c * n_c) / (n_t + n_c)
        period_se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_t + 1.0 / n_c))
        defined = period_se > 0.0  # se > 0 overall implies at least one period has a defined z_t
        batched_z = float(np.sum((p_t - p_c)[defined] / period_se[defined]) / math.sqrt(int(defined.sum())))
        batched_p = float(special.erfc(abs(batched_z) / math.sqrt(2.0)))
        if rate_c > 0.0:
            lift = rate_t / rate_c - 1.0
            lift_se = math.sqrt(var_t / rate_c**2 + rate_t**2 * var_c / rate_c**4)
            lift_low, lift_high = lift - z * lift_se, lift + z * lift_se
        else:
            lift = lift_low = lift_high = math.nan  # undefined without control conversions; the effect still is
        results.append(
            ArmComparison(
                arm=arm,
                control=control,
                control_rate=rate_c,
                arm_rate=rate_t,
                effect=effect,
                std_error=se,
                ci_low=effect - z * se,
                ci_high=effect + z * se,
                p_value=min(p_value, 1.0),
                batched_z=batched_z,
                batched_p_value=min(batched_p, 1.0),
                batched_periods=int(defined.sum()),
                lift=lift,
                lift_ci_low=lift_low,
                lift_ci_high=lift_high,
                confidence=float(confidence),
                users=int(sum(p.users[arm] + p.users[control] for p in used)),
                periods_used=tuple(p.period for p in used),
                periods_skipped=tuple(p.period for p in data if p not in used),
            )
        )
    return tuple(results)


def pooled_counts(periods: Sequence[PeriodData]) -> tuple[tuple[int, int], ...]:
    """(users, successes) per arm summed over periods: the NAIVE pooling, for showing its bias only."""
    data = _check_periods(periods)
    arms = len(data[0].weights)
    return tuple((sum(p.users[a] for p in data), sum(p.successes[a] for p in data)) for a in range(arms))


@dataclass(frozen=True, slots=True)
class BanditSrmResult:
    """``pooled``: chi-square of arm totals against sum_t N_t w_{t,a}; ``expected`` those counts.

    ``per_period``: each period's own check (None where it had no users); ``period_alpha`` the
    Bonferroni level alpha / (periods tested) they are judged at. ``mismatch`` is True when the
    pooled check or any period's check alarms.
    """

    pooled: SrmResult
    expected: tuple[float, ...]
    per_period: tuple[SrmResult | None, ...]
    period_alpha: float
    mismatch: bool


def bandit_srm(periods: Sequence[PeriodData], alpha: float = 0.001) -> BanditSrmResult:
    """Sample ratio mismatch against the weights actually served in each period (module docstring)."""
    data = _check_periods(periods)
    if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0.0 < alpha < 1.0:
        raise InvalidBanditConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    arms = len(data[0].weights)
    observed = [sum(p.users[a] for p in data) for a in range(arms)]
    if sum(observed) == 0:
        raise DegenerateBanditDataError("no users in any period: nothing to check")
    expected = [math.fsum(p.total_users * p.weights[a] for p in data) for a in range(arms)]
    # srm_test refuses weight 0. An arm never served (weight 0 whenever there was traffic) can only
    # have 0 users (PeriodData checks that), so it carries no information: test the other arms.
    served = [a for a in range(arms) if expected[a] > 0.0]
    if len(served) < 2:
        raise DegenerateBanditDataError("fewer than 2 arms were served with a positive weight")
    pooled = srm_test([observed[a] for a in served], [expected[a] for a in served], alpha=alpha)
    tested = [p for p in data if p.total_users > 0]
    period_alpha = alpha / len(tested)
    per_period: list[SrmResult | None] = []
    for p in data:
        arms_served = [a for a in range(arms) if p.weights[a] > 0.0]
        if p.total_users == 0 or len(arms_served) < 2:
            per_period.append(None)
            continue
        per_period.append(
            srm_test([p.users[a] for a in arms_served], [p.weights[a] for a in arms_served], alpha=period_alpha)
        )
    mismatch = pooled.mismatch or any(r is not None and r.mismatch for r in per_period)
    return BanditSrmResult(
        pooled=pooled,
        expected=tuple(expected),
        per_period=tuple(per_period),
        period_alpha=period_alpha,
        mismatch=mismatch,
    )
