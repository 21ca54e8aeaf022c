"""CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013).

For metric y and pre-period covariate x (e.g. the same metric in the weeks before assignment),

    theta = S_xy / S_xx  pooled within arms  (sum over arms of centred co-moments / centred x moments)
    y_adj = y - theta (x - xbar_all),   xbar_all the mean of x over both arms
    mean_adj = ybar_arm - theta (xbar_arm - xbar_all)
    s_adj^2 = s_y^2 - 2 theta s_xy + theta^2 s_x^2      (per arm, Bessel-corrected)

Because x is measured before randomisation, E[xbar_t - xbar_c] = 0 and the adjusted difference is
unbiased; its variance shrinks by about rho^2 (the squared correlation of x and y). Pooling theta
within arms keeps the treatment effect on y out of the slope. The adjusted arms are returned as
``SampleMean`` so they feed straight into ``mean_test`` (or ``sequential_test``); that treats theta and
xbar_all as known, the standard large-sample approximation (their estimation error is O(1/n)).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DegenerateDataError, InvalidDataError
from .statistics import CovariateSample, SampleMean

__all__ = ["CupedResult", "cuped_adjust"]


@dataclass(frozen=True, slots=True)
class CupedResult:
    """Adjusted arms plus diagnostics; ``variance_reduction`` is for the difference in means."""

    theta: float
    control_adjusted: SampleMean
    treatment_adjusted: SampleMean
    control_variance: float
    treatment_variance: float
    control_variance_adjusted: float
    treatment_variance_adjusted: float
    variance_reduction: float
    correlation: float


def cuped_adjust(control: CovariateSample, treatment: CovariateSample) -> CupedResult:
    """CUPED-adjust both arms with a pooled theta (formulas in the module docstring)."""
    if not (isinstance(control, CovariateSample) and isinstance(treatment, CovariateSample)):
        raise InvalidDataError("cuped_adjust expects two CovariateSample instances")
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise DegenerateDataError(f"CUPED needs n >= 2 per arm to estimate variances; {label} has n = {arm.n}")
    syy_c, sxx_c, sxy_c = control.centred()
    syy_t, sxx_t, sxy_t = treatment.centred()
    sxx = sxx_c + sxx_t
    if sxx <= 0.0:
        raise DegenerateDataError("the covariate x is constant within both arms, so it carries no information")
    theta = (sxy_c + sxy_t) / sxx
    syy = syy_c + syy_t
    correlation = (sxy_c + sxy_t) / (sxx * syy) ** 0.5 if syy > 0 else 0.0
    x_all = (control.sum_x + treatment.sum_x) / (control.n + treatment.n)

    def adjust(arm: CovariateSample, syy_a: float, sxx_a: float, sxy_a: float) -> tuple[SampleMean, float, float]:
        dof = arm.n - 1
        var_y = syy_a / dof
        # Clamp at 0: a PSD quadratic form whose rounding can dip below zero when x predicts y exactly.
        var_adj = max((syy_a - 2.0 * theta * sxy_a + theta * theta * sxx_a) / dof, 0.0)
        mean_adj = arm.mean_y - theta * (arm.mean_x - x_all)
        return SampleMean.from_moments(arm.n, mean_adj, var_adj), var_y, var_adj

    c_adj, var_c, var_c_adj = adjust(control, syy_c, sxx_c, sxy_c)
    t_adj, var_t, var_t_adj = adjust(treatment, syy_t, sxx_t, sxy_t)
    before = var_c / control.n + var_t / treatment.n
    after = var_c_adj / control.n + var_t_adj / treatment.n
    reduction = 1.0 - after / before if before > 0 else 0.0
    return CupedResult(
        theta=theta,
        control_adjusted=c_adj,
        treatment_adjusted=t_adj,
        control_variance=var_c,
        treatment_variance=var_t,
        control_variance_adjusted=var_c_adj,
        treatment_variance_adjusted=var_t_adj,
        variance_reduction=reduction,
        correlation=correlation,
    )
