"""Fixed-horizon frequentist two-arm tests: proportions, means (Welch) and ratios (delta method).

Test statistic and interval, for an effect estimate d with estimated variance V (see
``_arrays.effect_moments`` for d and V under absolute / relative differences):

    T = d / sqrt(V),   p = 2 P(T_nu > |T|),   CI = d -/+ q_{1 - alpha/2} sqrt(V)

with nu the Welch-Satterthwaite degrees of freedom and T_nu Student's t (GrowthBook gbstats
0.8.0 ``TwoSidedTTest``; Welch 1947). ``distribution="normal"`` uses the standard normal instead,
which is the Wald test of statsmodels ``test_proportions_2indep(method="wald")``. The two differ by
~1e-5 relative at 10,000 units per arm; the default follows GrowthBook so results match its engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from ._arrays import (
    DIFFERENCES,
    BoolArray,
    Difference,
    EffectMoments,
    FloatArray,
    as_float_array,
    effect_moments,
    proportion_moments,
    scalar_effect_moments,
)
from ._validation import check_alpha, check_choice
from .errors import InvalidDataError
from .statistics import Proportion, RatioSample, SampleMean

__all__ = [
    "ArrayTestResult",
    "FrequentistConfig",
    "TestResult",
    "compare_arrays",
    "mean_test",
    "proportion_test",
    "proportion_test_arrays",
    "ratio_test",
]

Distribution = Literal["t", "normal"]
DISTRIBUTIONS: tuple[str, ...] = ("t", "normal")


@dataclass(frozen=True, slots=True)
class FrequentistConfig:
    """Settings of a fixed-horizon test; validated on creation."""

    alpha: float = 0.05
    difference: Difference = "absolute"
    distribution: Distribution = "t"

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_choice(self.difference, DIFFERENCES, "difference")
        check_choice(self.distribution, DISTRIBUTIONS, "distribution")


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of one fixed-horizon comparison; every field is a plain float/bool/str (JSON-safe).

    ``effect`` is treatment - control (absolute) or treatment / control - 1 (relative lift).
    """

    __test__ = False  # stop pytest from collecting this class because its name starts with "Test"

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    std_error: float
    dof: float
    control_mean: float
    treatment_mean: float
    alpha: float
    difference: str
    distribution: str


@dataclass(frozen=True, slots=True)
class ArrayTestResult:
    """Vectorised outcome: one entry per comparison."""

    effect: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    p_value: FloatArray
    significant: BoolArray
    std_error: FloatArray
    dof: FloatArray


def _fixed_horizon(moments: EffectMoments, config: FrequentistConfig) -> ArrayTestResult:
    se = np.sqrt(moments.variance)
    z = moments.effect / se
    if config.distribution == "t":
        # scipy.special.stdtr is the Student t CDF; calling the ufunc directly (not scipy.stats.t)
        # avoids per-call overhead, which is most of the cost at 10^5+ comparisons.
        p_value = 2.0 * special.stdtr(moments.dof, -np.abs(z))
        crit = special.stdtrit(moments.dof, 1.0 - config.alpha / 2.0)
    else:
        p_value = 2.0 * special.ndtr(-np.abs(z))
        crit = np.full_like(se, special.ndtri(1.0 - config.alpha / 2.0))
    p_value = np.clip(p_value, 0.0, 1.0)
    half = crit * se
    return ArrayTestResult(
        effect=moments.effect,
        ci_low=moments.effect - half,
        ci_high=moments.effect + half,
        p_value=p_value,
        significant=p_value < config.alpha,
        std_error=se,
        dof=moments.dof,
    )


def compare_arrays(
    mean_c: npt.ArrayLike,
    var_c: npt.ArrayLike,
    n_c: npt.ArrayLike,
    mean_t: npt.ArrayLike,
    var_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    distribution: Distribution = "t",
) -> ArrayTestResult:
    """Vectorised fixed-horizon test from per-arm means, per-unit variances and sizes.

    Formula: see the module docstring. Inputs broadcast-free: all six arrays have one shape.
    """
    config = FrequentistConfig(alpha=alpha, difference=difference, distribution=distribution)
    moments = effect_moments(
        as_float_array(mean_c, "mean_c"),
        as_float_array(var_c, "var_c"),
        as_float_array(n_c, "n_c"),
        as_float_array(mean_t, "mean_t"),
        as_float_array(var_t, "var_t"),
        as_float_array(n_t, "n_t"),
        difference=config.difference,
    )
    return _fixed_horizon(moments, config)


def proportion_test_arrays(
    n_c: npt.ArrayLike,
    successes_c: npt.ArrayLike,
    n_t: npt.ArrayLike,
    successes_t: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    distribution: Distribution = "t",
) -> ArrayTestResult:
    """Vectorised ``proportion_test``: arrays of counts in, arrays of effects/CIs/p-values out."""
    config = FrequentistConfig(alpha=alpha, difference=difference, distribution=distribution)
    moments = effect_moments(*proportion_moments(n_c, successes_c, n_t, successes_t), difference=config.difference)
    return _fixed_horizon(moments, config)


def _scalar_test(
    control: Proportion | SampleMean | RatioSample,
    treatment: Proportion | SampleMean | RatioSample,
    config: FrequentistConfig,
) -> TestResult:
    moments, mc, mt, _nc, _nt = scalar_effect_moments(control, treatment, config.difference)
    res = _fixed_horizon(moments, config)
    return TestResult(
        effect=float(res.effect[0]),
        ci_low=float(res.ci_low[0]),
        ci_high=float(res.ci_high[0]),
        p_value=float(res.p_value[0]),
        significant=bool(res.significant[0]),
        std_error=float(res.std_error[0]),
        dof=float(res.dof[0]),
        control_mean=mc,
        treatment_mean=mt,
        alpha=config.alpha,
        difference=config.difference,
        distribution=config.distribution,
    )


def proportion_test(
    control: Proportion,
    treatment: Proportion,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    distribution: Distribution = "t",
) -> TestResult:
    """Two-proportion test (CTR, conversion) with unpooled standard error.

    p_i = successes_i / n_i, v_i = p_i (1 - p_i);
    absolute: d = p_t - p_c, Var = v_t/n_t + v_c/n_c;  relative: d = p_t/p_c - 1, delta-method Var.
    T = d / sqrt(Var) against Student t with Welch dof (GrowthBook gbstats 0.8.0), or N(0, 1) with
    ``distribution="normal"`` (Wald test, statsmodels ``test_proportions_2indep(method="wald")``).
    """
    if not (isinstance(control, Proportion) and isinstance(treatment, Proportion)):
        raise InvalidDataError("proportion_test expects two Proportion instances")
    return _scalar_test(control, treatment, FrequentistConfig(alpha, difference, distribution))


def mean_test(
    control: SampleMean,
    treatment: SampleMean,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    distribution: Distribution = "t",
) -> TestResult:
    """Welch's unequal-variance t-test on two means (Welch 1947; scipy ``ttest_ind(equal_var=False)``).

    absolute: d = ybar_t - ybar_c, Var = s_t^2/n_t + s_c^2/n_c, nu = Welch-Satterthwaite;
    relative: d = ybar_t/ybar_c - 1 with the delta-method variance (GrowthBook gbstats).
    """
    if not (isinstance(control, SampleMean) and isinstance(treatment, SampleMean)):
        raise InvalidDataError("mean_test expects two SampleMean instances")
    return _scalar_test(control, treatment, FrequentistConfig(alpha, difference, distribution))


def ratio_test(
    control: RatioSample,
    treatment: RatioSample,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    distribution: Distribution = "t",
) -> TestResult:
    """Test of a ratio metric (e.g. clicks per impression) with users as randomisation units.

    Each arm's R = sum_x / sum_y has delta-method variance var_R / n (see ``RatioSample``; Deng et
    al. 2018), then the same absolute / relative comparison and Welch t as ``mean_test``.
    """
    if not (isinstance(control, RatioSample) and isinstance(treatment, RatioSample)):
        raise InvalidDataError("ratio_test expects two RatioSample instances")
    return _scalar_test(control, treatment, FrequentistConfig(alpha, difference, distribution))
