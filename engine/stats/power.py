"""Sample size and power for comparing two proportions (two-sided, equal arms).

Effect size is Cohen's h on the arcsine-square-root scale, where the variance of a proportion is
~1/(4n) whatever the rate (Cohen 1988, ch. 6):

    h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c)),   p_t = p_c (1 + mde_relative)
    power(n) = Phi(|h| sqrt(n/2) - z_{1-alpha/2}) + Phi(-|h| sqrt(n/2) - z_{1-alpha/2})

n (per arm) solves power(n) = target; without the negligible second term it is
n = 2 ((z_{1-alpha/2} + z_power) / h)^2. This is statsmodels' ``NormalIndPower`` with
``proportion_effectsize``; the issue's reference (10% -> 11%, 80% power) is ~14,745 per arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, special

from ._validation import check_alpha, check_finite, check_int, check_probability
from .errors import InvalidParameterError

__all__ = ["PowerResult", "SampleSizeResult", "power_proportions", "sample_size_proportions"]


@dataclass(frozen=True, slots=True)
class SampleSizeResult:
    n_per_arm: int
    n_per_arm_exact: float
    baseline: float
    treatment_rate: float
    mde_relative: float
    alpha: float
    power: float
    effect_size_h: float


@dataclass(frozen=True, slots=True)
class PowerResult:
    power: float
    n_per_arm: int
    baseline: float
    treatment_rate: float
    mde_relative: float
    alpha: float
    effect_size_h: float


def _effect_size(baseline: float, mde_relative: float) -> tuple[float, float, float]:
    baseline = check_probability(baseline, "baseline")
    try:
        mde = check_finite(mde_relative, "mde_relative")
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from exc
    if mde == 0.0:
        raise InvalidParameterError("mde_relative must be non-zero: a zero effect cannot be detected")
    treatment = baseline * (1.0 + mde)
    if not (0.0 < treatment < 1.0):
        raise InvalidParameterError(
            f"baseline {baseline} with relative MDE {mde} gives a treatment rate {treatment}, outside (0, 1)"
        )
    h = 2.0 * math.asin(math.sqrt(treatment)) - 2.0 * math.asin(math.sqrt(baseline))
    return baseline, treatment, abs(h)


def _power(h: float, n: float, alpha: float) -> float:
    crit = special.ndtri(1.0 - alpha / 2.0)
    shift = h * math.sqrt(n / 2.0)
    return float(special.ndtr(shift - crit) + special.ndtr(-shift - crit))


def power_proportions(baseline: float, mde_relative: float, n_per_arm: int, alpha: float = 0.05) -> PowerResult:
    """Power of the two-sided test at ``n_per_arm`` users per arm (formula in the module docstring)."""
    alpha = check_alpha(alpha)
    n = check_int(n_per_arm, "n_per_arm", minimum=1)
    baseline, treatment, h = _effect_size(baseline, mde_relative)
    return PowerResult(
        power=_power(h, n, alpha),
        n_per_arm=n,
        baseline=baseline,
        treatment_rate=treatment,
        mde_relative=float(mde_relative),
        alpha=alpha,
        effect_size_h=h,
    )


def sample_size_proportions(
    baseline: float, mde_relative: float, alpha: float = 0.05, power: float = 0.8
) -> SampleSizeResult:
    """Users per arm needed to detect a relative lift ``mde_relative`` with the given power."""
    alpha = check_alpha(alpha)
    power = check_alpha(power, "power")
    if power <= alpha / 2.0:
        raise InvalidParameterError(f"power ({power}) must exceed alpha/2 ({alpha / 2}); any n achieves less")
    baseline, treatment, h = _effect_size(baseline, mde_relative)
    approx = 2.0 * ((special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power)) / h) ** 2
    # The closed form ignores the far tail; solve the exact equation (as statsmodels does) around it.
    # power(n) increases with n (from alpha at n = 0), so halving lo until power(lo) < target brackets the root.
    lo, hi = max(approx * 0.5, 1e-9), approx * 2.0
    while _power(h, lo, alpha) > power:
        lo /= 2.0
    exact = float(optimize.brentq(lambda n: _power(h, n, alpha) - power, lo, hi, xtol=1e-10, rtol=1e-14))
    return SampleSizeResult(
        n_per_arm=math.ceil(exact),
        n_per_arm_exact=exact,
        baseline=baseline,
        treatment_rate=treatment,
        mde_relative=float(mde_relative),
        alpha=alpha,
        power=power,
        effect_size_h=h,
    )
