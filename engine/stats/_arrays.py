"""Vectorised core shared by the fixed-horizon and the sequential tests.

Every two-arm comparison reduces to per-arm (mean, per-unit variance, n). From those we form the
effect and the variance of its estimator, for many comparisons at once (numpy arrays), so the
simulator and the benchmark run hundreds of thousands of tests per second and the scalar API is
just the same code on arrays of length one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .errors import DegenerateDataError, InvalidDataError
from .statistics import Proportion, RatioSample, SampleMean

__all__ = ["Difference", "EffectMoments", "FloatArray", "as_float_array", "effect_moments", "moments_of"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Difference = Literal["absolute", "relative", "log"]
DIFFERENCES: tuple[str, ...] = ("absolute", "relative", "log")


def as_float_array(values: npt.ArrayLike, name: str) -> FloatArray:
    """Convert to a 1-D float64 array and reject NaN/inf up front."""
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise InvalidDataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidDataError(f"{name} contains NaN or infinite values (first at index {_first(~np.isfinite(arr))})")
    return arr


def _first(mask: BoolArray) -> int:
    return int(np.flatnonzero(mask)[0])


def moments_of(stat: Proportion | SampleMean | RatioSample) -> tuple[float, float, int]:
    """(mean, per-unit variance, n) of one arm's sufficient statistic."""
    return stat.mean, stat.variance, stat.n


@dataclass(frozen=True, slots=True)
class EffectMoments:
    """Effect estimates, their variances and Welch-Satterthwaite degrees of freedom (arrays)."""

    effect: FloatArray
    variance: FloatArray
    dof: FloatArray
    n_total: FloatArray


def effect_moments(
    mean_c: FloatArray,
    var_c: FloatArray,
    n_c: FloatArray,
    mean_t: FloatArray,
    var_t: FloatArray,
    n_t: FloatArray,
    difference: str,
) -> EffectMoments:
    """Effect and its estimator variance for control c and treatment t.

    absolute:  d = m_t - m_c,            Var(d) = v_t / n_t + v_c / n_c        (unpooled)
    relative:  d = m_t / m_c - 1,        Var(d) = v_t / (m_c^2 n_t) + m_t^2 v_c / (m_c^4 n_c)
               (delta method on the ratio of two independent means; GrowthBook gbstats
               ``frequentist/tests.py`` TTest.variance)
    log:       d = log(m_t / m_c),       Var(d) = v_t / (m_t^2 n_t) + v_c / (m_c^2 n_c)
               (delta method on the log of each mean). Its interval, mapped by exp(.) - 1, is an
               interval for the relative lift; unlike the relative form, its variance does not shrink
               when the treatment's mean is low by chance, so its two tails err alike (see
               ``engine.verdicts``).
    dof (Welch-Satterthwaite, on the unscaled variances, as gbstats does):
               (v_t/n_t + v_c/n_c)^2 / ((v_t/n_t)^2 / (n_t - 1) + (v_c/n_c)^2 / (n_c - 1))

    Raises ``DegenerateDataError`` (never returns NaN) when n < 2, both variances are zero, the
    control mean is zero for a relative difference, or a mean is not positive for a log ratio.
    """
    shape = mean_c.shape
    for name, arr in (("var_c", var_c), ("n_c", n_c), ("mean_t", mean_t), ("var_t", var_t), ("n_t", n_t)):
        if arr.shape != shape:
            raise InvalidDataError(f"{name} has shape {arr.shape}, expected {shape} like mean_c")
    small = (n_c < 2) | (n_t < 2)
    if np.any(small):
        raise DegenerateDataError(
            f"each arm needs n >= 2 to estimate a variance (comparison {_first(small)} has "
            f"n_control = {n_c[_first(small)]:g}, n_treatment = {n_t[_first(small)]:g})"
        )
    if np.any(var_c < 0) or np.any(var_t < 0):
        raise InvalidDataError("per-unit variances must be >= 0")
    vm_c = var_c / n_c
    vm_t = var_t / n_t
    both_zero = (vm_c + vm_t) <= 0.0
    if np.any(both_zero):
        i = _first(both_zero)
        raise DegenerateDataError(
            f"both arms have zero variance (comparison {i}: control mean {mean_c[i]:g}, treatment mean "
            f"{mean_t[i]:g}), e.g. all or no successes in both; no standard error, hence no test"
        )
    if difference == "absolute":
        effect = mean_t - mean_c
        variance = vm_t + vm_c
    elif difference == "log":
        nonpositive = (mean_c <= 0.0) | (mean_t <= 0.0)
        if np.any(nonpositive):
            i = _first(nonpositive)
            raise DegenerateDataError(
                f"a log ratio needs a positive mean in both arms (comparison {i} has control mean {mean_c[i]:g}, "
                f"treatment mean {mean_t[i]:g}): no successes yet in one arm"
            )
        effect = np.log(mean_t / mean_c)
        variance = vm_t / (mean_t * mean_t) + vm_c / (mean_c * mean_c)
    else:
        zero = mean_c == 0.0
        if np.any(zero):
            raise DegenerateDataError(
                f"relative difference needs a non-zero control mean (comparison {_first(zero)} has mean 0); "
                "use difference='absolute'"
            )
        effect = mean_t / mean_c - 1.0
        mc2 = mean_c * mean_c
        variance = vm_t / mc2 + (mean_t * mean_t) * vm_c / (mc2 * mc2)
    # Same Welch-Satterthwaite formula written with weights w = vm / (vm_c + vm_t) in [0, 1], so
    # squaring cannot overflow (variances ~1e200) or underflow (n ~ 1e9): dof = 1 / sum(w^2 / (n - 1)).
    total = vm_c + vm_t
    w_c, w_t = vm_c / total, vm_t / total
    dof = 1.0 / (w_t * w_t / (n_t - 1.0) + w_c * w_c / (n_c - 1.0))
    bad = ~(np.isfinite(effect) & np.isfinite(variance) & np.isfinite(dof)) | (variance <= 0.0)
    if np.any(bad):
        i = _first(bad)
        raise DegenerateDataError(
            f"comparison {i} yields a non-finite or zero variance (means {mean_c[i]:g} vs {mean_t[i]:g}); "
            "the inputs are too extreme for a normal approximation"
        )
    return EffectMoments(effect=effect, variance=variance, dof=dof, n_total=n_c + n_t)


def scalar_effect_moments(
    control: Proportion | SampleMean | RatioSample,
    treatment: Proportion | SampleMean | RatioSample,
    difference: Difference,
) -> tuple[EffectMoments, float, float, int, int]:
    """One comparison as length-1 `EffectMoments`, plus (control mean, treatment mean, n_c, n_t).

    The scalar tests run the vectorised code on this, so both paths give identical numbers.
    """
    if type(control) is not type(treatment):
        raise InvalidDataError(
            f"control and treatment must be the same kind of statistic, got {type(control).__name__} "
            f"and {type(treatment).__name__}"
        )
    mc, vc, nc = moments_of(control)
    mt, vt, nt = moments_of(treatment)
    moments = effect_moments(
        np.array([mc]), np.array([vc]), np.array([float(nc)]),
        np.array([mt]), np.array([vt]), np.array([float(nt)]),
        difference=difference,
    )  # fmt: skip
    return moments, mc, mt, nc, nt


def proportion_moments(
    n_c: npt.ArrayLike, successes_c: npt.ArrayLike, n_t: npt.ArrayLike, successes_t: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validate arrays of counts and return (mean_c, var_c, n_c, mean_t, var_t, n_t) with var = p(1-p)."""
    arrays = []
    for label, n_raw, s_raw in (("control", n_c, successes_c), ("treatment", n_t, successes_t)):
        n = as_float_array(n_raw, f"n_{label}")
        s = as_float_array(s_raw, f"successes_{label}")
        if n.shape != s.shape:
            raise InvalidDataError(f"n_{label} and successes_{label} differ in shape: {n.shape} vs {s.shape}")
        if np.any(n <= 0):
            raise InvalidDataError(f"n_{label} must be > 0 (index {_first(n <= 0)} is {n[_first(n <= 0)]:g})")
        bad = (s < 0) | (s > n)
        if np.any(bad):
            raise InvalidDataError(f"successes_{label} must lie in [0, n] (index {_first(bad)} violates it)")
        p = s / n
        arrays.extend([p, p * (1.0 - p), n])
    return arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], arrays[5]
