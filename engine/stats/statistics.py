"""Sufficient statistics of one experiment arm; each validates itself on creation.

The app aggregates raw events into these few numbers per arm (in SQL), so every test in this
package works from sums, never from per-user rows. Variances use the n - 1 (Bessel) divisor
except for proportions, whose variance is p(1 - p), the Bernoulli variance used by the Wald test,
statsmodels' ``test_proportions_2indep(method="wald")`` and GrowthBook's ``ProportionStatistic``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_finite, check_int
from .errors import DegenerateDataError, InvalidDataError

__all__ = ["CovariateSample", "Proportion", "RatioSample", "SampleMean"]

# Sums of squares minus squared sums lose ~log10(n * mean^2 / var) digits to cancellation; a
# relative slack of 1e-9 absorbs that rounding while still rejecting genuinely impossible inputs.
_CANCELLATION_SLACK = 1e-9


def _centred_sum(n: int, total_a: float, total_b: float, cross: float) -> float:
    """Return sum((a - mean_a) * (b - mean_b)) = cross - total_a * total_b / n.

    For a == b this is the centred sum of squares, which cannot be negative; a small negative value
    is floating-point cancellation and is clamped to zero, a large one means impossible inputs.
    """
    return cross - total_a * total_b / n


def _centred_squares(n: int, total: float, squares: float, name: str) -> float:
    value = _centred_sum(n, total, total, squares)
    if value < 0.0:
        if value < -_CANCELLATION_SLACK * max(abs(squares), 1.0):
            raise InvalidDataError(
                f"{name}: sum of squares {squares!r} is smaller than sum^2 / n = {total * total / n!r}; "
                "the implied variance would be negative, so these sums cannot come from real data"
            )
        value = 0.0
    return value


@dataclass(frozen=True, slots=True)
class Proportion:
    """A binary metric for one arm: ``successes`` units out of ``n`` converted (or clicked).

    mean p = successes / n;  per-unit variance p (1 - p)  (Bernoulli, no Bessel correction).
    """

    n: int
    successes: int

    def __post_init__(self) -> None:
        n = check_int(self.n, "Proportion.n", minimum=1)
        successes = check_int(self.successes, "Proportion.successes", minimum=0)
        if successes > n:
            raise InvalidDataError(f"Proportion.successes ({successes}) cannot exceed n ({n})")
        # Normalise numpy integers to plain ints so dataclasses.asdict() stays JSON-serialisable.
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "successes", successes)

    @property
    def mean(self) -> float:
        return self.successes / self.n

    @property
    def variance(self) -> float:
        """Per-unit Bernoulli variance p (1 - p)."""
        p = self.mean
        return p * (1.0 - p)


@dataclass(frozen=True, slots=True)
class SampleMean:
    """A continuous per-unit metric for one arm (e.g. revenue per user) as n, sum y, sum y^2.

    mean = sum / n;  variance s^2 = (sum_squares - sum^2 / n) / (n - 1)  (unbiased, needs n >= 2).
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = check_int(self.n, "SampleMean.n", minimum=1)
        total = check_finite(self.sum, "SampleMean.sum")
        squares = check_finite(self.sum_squares, "SampleMean.sum_squares")
        if squares < 0.0:
            raise InvalidDataError(f"SampleMean.sum_squares must be >= 0 (a sum of squares), got {squares!r}")
        _centred_squares(n, total, squares, "SampleMean")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)

    @classmethod
    def from_values(cls, values: Sequence[float] | np.typing.ArrayLike) -> SampleMean:
        """Build from per-unit values (convenience for tests and CUPED)."""
        arr = np.asarray(values, dtype=np.float64)
        return cls(n=int(arr.size), sum=float(arr.sum()), sum_squares=float(np.dot(arr, arr)))

    @classmethod
    def from_moments(cls, n: int, mean: float, variance: float) -> SampleMean:
        """Build from n, mean and the unbiased variance s^2 (inverse of the properties below)."""
        n = check_int(n, "n", minimum=1)
        mean = check_finite(mean, "mean")
        variance = check_finite(variance, "variance")
        if variance < 0.0:
            raise InvalidDataError(f"variance must be >= 0, got {variance!r}")
        return cls(n=n, sum=n * mean, sum_squares=(n - 1) * variance + n * mean * mean)

    @property
    def mean(self) -> float:
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """Unbiased per-unit variance; raises ``DegenerateDataError`` for n < 2."""
        if self.n < 2:
            raise DegenerateDataError("SampleMean needs n >= 2 to estimate a variance, got n = 1")
        return _centred_squares(self.n, self.sum, self.sum_squares, "SampleMean") / (self.n - 1)


@dataclass(frozen=True, slots=True)
class RatioSample:
    """A ratio metric with users as units, e.g. clicks per impression: R = sum_x / sum_y.

    Per unit i we observe a numerator x_i (clicks) and a denominator y_i (impressions). The sums
    give the sample moments (Bessel-corrected) and the delta-method per-unit variance of R:

        var_R = s_x^2 / mu_y^2 - 2 mu_x s_xy / mu_y^3 + mu_x^2 s_y^2 / mu_y^4,   Var(R_hat) = var_R / n

    (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD; the same formula
    as GrowthBook's ``RatioStatistic``.)
    """

    n: int
    sum_x: float
    sum_y: float
    sum_x2: float
    sum_y2: float
    sum_xy: float

    def __post_init__(self) -> None:
        _validate_pair(self, "RatioSample", ("sum_x", "sum_x2", "numerator"), ("sum_y", "sum_y2", "denominator"))

    @classmethod
    def from_values(cls, x: np.typing.ArrayLike, y: np.typing.ArrayLike) -> RatioSample:
        """Build from per-unit numerators ``x`` and denominators ``y``."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if xa.shape != ya.shape or xa.ndim != 1:
            raise InvalidDataError(f"x and y must be 1-D arrays of equal length, got {xa.shape} and {ya.shape}")
        return cls(
            n=int(xa.size),
            sum_x=float(xa.sum()),
            sum_y=float(ya.sum()),
            sum_x2=float(np.dot(xa, xa)),
            sum_y2=float(np.dot(ya, ya)),
            sum_xy=float(np.dot(xa, ya)),
        )

    @property
    def mean(self) -> float:
        """The ratio R = sum_x / sum_y; raises ``DegenerateDataError`` when sum_y == 0."""
        if self.sum_y == 0.0:
            raise DegenerateDataError("RatioSample.sum_y is 0: the ratio sum_x / sum_y is undefined")
        return self.sum_x / self.sum_y

    @property
    def variance(self) -> float:
        """Delta-method per-unit variance of R (see class docstring); needs n >= 2 and sum_y != 0."""
        if self.n < 2:
            raise DegenerateDataError("RatioSample needs n >= 2 to estimate a variance, got n = 1")
        ratio = self.mean
        mu_y = self.sum_y / self.n
        var_x = _centred_squares(self.n, self.sum_x, self.sum_x2, "RatioSample numerator") / (self.n - 1)
        var_y = _centred_squares(self.n, self.sum_y, self.sum_y2, "RatioSample denominator") / (self.n - 1)
        cov = _centred_sum(self.n, self.sum_x, self.sum_y, self.sum_xy) / (self.n - 1)
        # Written with R = mu_x / mu_y: (var_x - 2 R cov + R^2 var_y) / mu_y^2, algebraically equal to
        # the docstring formula but with fewer powers of mu_y, so it neither over- nor underflows.
        value = (var_x - 2.0 * ratio * cov + ratio * ratio * var_y) / (mu_y * mu_y)
        # A PSD quadratic form; a tiny negative is rounding.
        return max(value, 0.0)


@dataclass(frozen=True, slots=True)
class CovariateSample:
    """Metric y and pre-experiment covariate x for one arm, as sums (input of CUPED).

    Moments (Bessel-corrected): s_y^2, s_x^2 and s_xy = (sum_xy - sum_x sum_y / n) / (n - 1).
    """

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float
    sum_x2: float
    sum_xy: float

    def __post_init__(self) -> None:
        _validate_pair(self, "CovariateSample", ("sum_y", "sum_y2", "metric"), ("sum_x", "sum_x2", "covariate"))

    @classmethod
    def from_values(cls, y: np.typing.ArrayLike, x: np.typing.ArrayLike) -> CovariateSample:
        """Build from per-unit metric values ``y`` and pre-period covariate values ``x``."""
        ya = np.asarray(y, dtype=np.float64)
        xa = np.asarray(x, dtype=np.float64)
        if xa.shape != ya.shape or ya.ndim != 1:
            raise InvalidDataError(f"y and x must be 1-D arrays of equal length, got {ya.shape} and {xa.shape}")
        return cls(
            n=int(ya.size),
            sum_y=float(ya.sum()),
            sum_y2=float(np.dot(ya, ya)),
            sum_x=float(xa.sum()),
            sum_x2=float(np.dot(xa, xa)),
            sum_xy=float(np.dot(xa, ya)),
        )

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.n

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n

    def centred(self) -> tuple[float, float, float]:
        """Return the centred sums (S_yy, S_xx, S_xy); divide by n - 1 for the sample moments."""
        syy = _centred_squares(self.n, self.sum_y, self.sum_y2, "CovariateSample metric")
        sxx = _centred_squares(self.n, self.sum_x, self.sum_x2, "CovariateSample covariate")
        sxy = _centred_sum(self.n, self.sum_x, self.sum_y, self.sum_xy)
        return syy, sxx, sxy


def _validate_pair(stat: Any, label: str, first: tuple[str, str, str], second: tuple[str, str, str]) -> None:
    """Check and normalise the sufficient statistics of two per-unit variables a and b.

    `first` and `second` name (sum, sum of squares, description) of each; the cross product is
    `sum_xy`. Sums must be finite, sums of squares >= 0, each variance >= 0 up to rounding, and
    the covariance within Cauchy-Schwarz: |c_ab| <= sqrt(c_aa c_bb) (sums that break it cannot
    come from real data).
    """
    n = check_int(stat.n, f"{label}.n", minimum=1)
    names = (first[0], first[1], second[0], second[1], "sum_xy")
    values = {name: check_finite(getattr(stat, name), f"{label}.{name}") for name in names}
    for name in (first[1], second[1]):
        if values[name] < 0.0:
            raise InvalidDataError(f"{label}.{name} must be >= 0 (a sum of squares), got {values[name]!r}")
    caa = _centred_squares(n, values[first[0]], values[first[1]], f"{label} {first[2]}")
    cbb = _centred_squares(n, values[second[0]], values[second[1]], f"{label} {second[2]}")
    cab = _centred_sum(n, values["sum_x"], values["sum_y"], values["sum_xy"])
    if abs(cab) > (caa * cbb) ** 0.5 + _CANCELLATION_SLACK * max(abs(values["sum_xy"]), 1.0):
        raise InvalidDataError(
            f"{label}: |covariance| of the {first[2]} and the {second[2]} exceeds the product of their "
            "standard deviations (Cauchy-Schwarz), so these sums cannot come from real data"
        )
    object.__setattr__(stat, "n", n)
    for name, value in values.items():
        object.__setattr__(stat, name, value)
