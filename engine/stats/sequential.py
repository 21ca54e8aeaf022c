"""Always-valid sequential test: Gaussian-mixture confidence sequence and mSPRT p-value.

For an effect estimate d with estimated variance V after N units in total (both arms), and a
normal mixing distribution theta ~ N(0, tau^2) over the effect, the mixture likelihood ratio of
H1 against H0: theta = 0 is (Johari, Pekelis & Walsh 2017, "Always valid inference", eq. 11)

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2))).

Lambda is a nonnegative (super)martingale under H0, so by Ville's inequality the p-value
p = min(1, 1 / Lambda) satisfies P(exists N: p_N <= alpha) <= alpha: it may be looked at after
every batch of data. Inverting it gives the confidence sequence (Howard et al. 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", normal-mixture boundary; Waudby-Smith et al.
2023, eq. 9, asymptotic version used by GrowthBook and Eppo):

    d -/+ sqrt(V) * sqrt( 2 (1 + r) / r * log( sqrt(1 + r) / alpha ) ),   r = tau^2 / V.

Tuning. We parametrise tau^2 through N*, the total sample size at which the sequence is
tightest (as GrowthBook's ``sequential_tuning_parameter``): with per-unit variance sigma^2 = V N,

    tau^2 = sigma^2 rho^2,   rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / N*,   so r = N rho^2

(Howard et al. 2021, eq. (3.4) and section 3.5, the rho minimising the boundary at N*). Validity
holds for every N* > 0; N* only moves where the test has the most power. GrowthBook's default is
N* = 5,000; ours is N* = 30,000 total units (15,000 per arm), the order of the planned size of our
typical e-commerce test (a 10% relative lift on a 10% conversion rate needs ~14,700 users per arm
for 80% power). The boundary is flat around its optimum (it grows like sqrt(log N)), so a default
off by 3x costs little power; callers that know the planned sample size should pass it as ``n_star``.
The plug-in variance makes the guarantee asymptotic (valid for large N), as in GrowthBook and Eppo;
the A/A calibration bench (bench/aa_calibration.py) checks it empirically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._arrays import (
    DIFFERENCES,
    BoolArray,
    Difference,
    EffectMoments,
    FloatArray,
    effect_moments,
    proportion_moments,
    scalar_effect_moments,
)
from ._validation import check_alpha, check_choice, check_finite
from .errors import InvalidDataError, InvalidParameterError
from .statistics import Proportion, RatioSample, SampleMean

__all__ = [
    "DEFAULT_N_STAR",
    "ArraySequentialResult",
    "SequentialConfig",
    "SequentialResult",
    "sequential_monitor",
    "sequential_proportion_test_arrays",
    "sequential_test",
]

DEFAULT_N_STAR = 30_000.0


@dataclass(frozen=True, slots=True)
class SequentialConfig:
    """Settings of the always-valid test; ``n_star`` is total units (both arms) where it is tightest."""

    alpha: float = 0.05
    difference: Difference = "absolute"
    n_star: float = DEFAULT_N_STAR

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_choice(self.difference, DIFFERENCES, "difference")
        try:
            n_star = check_finite(self.n_star, "n_star")
        except InvalidDataError as exc:
            raise InvalidParameterError(str(exc)) from exc
        if n_star <= 0:
            raise InvalidParameterError(
                f"n_star (sample size where the sequence is tightest) must be > 0, got {n_star}"
            )
        object.__setattr__(self, "n_star", n_star)

    @property
    def rho_squared(self) -> float:
        """rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / N*  (Howard et al. 2021)."""
        log_a = math.log(self.alpha)
        return (-2.0 * log_a + math.log1p(-2.0 * log_a)) / self.n_star


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One look of the sequential test; JSON-safe plain fields.

    ``p_value`` is always valid; ``ci_low``/``ci_high`` is the confidence sequence at this look.
    """

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    std_error: float
    control_mean: float
    treatment_mean: float
    n_total: float
    alpha: float
    difference: str
    n_star: float


@dataclass(frozen=True, slots=True)
class ArraySequentialResult:
    """Vectorised looks: one entry per comparison."""

    effect: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    p_value: FloatArray
    significant: BoolArray
    std_error: FloatArray


def _sequential(moments: EffectMoments, config: SequentialConfig) -> ArraySequentialResult:
    se = np.sqrt(moments.variance)
    r = moments.n_total * config.rho_squared
    log1p_r = np.log1p(r)
    # Half-width of the confidence sequence: sqrt(V) sqrt(2 (1 + r) / r * (log(1 + r) / 2 - log alpha)).
    half = se * np.sqrt(2.0 * (1.0 + r) / r * (0.5 * log1p_r - math.log(config.alpha)))
    z2 = (moments.effect / se) ** 2
    log_lambda = -0.5 * log1p_r + 0.5 * z2 * r / (1.0 + r)
    # exp(-log_lambda) may underflow to 0 for huge z, which is the right answer; never overflows since
    # we clip at log_lambda >= 0 (p <= 1) first.
    p_value = np.exp(-np.maximum(log_lambda, 0.0))
    return ArraySequentialResult(
        effect=moments.effect,
        ci_low=moments.effect - half,
        ci_high=moments.effect + half,
        p_value=p_value,
        significant=p_value < config.alpha,
        std_error=se,
    )


def sequential_proportion_test_arrays(
    n_c: npt.ArrayLike,
    successes_c: npt.ArrayLike,
    n_t: npt.ArrayLike,
    successes_t: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    n_star: float = DEFAULT_N_STAR,
) -> ArraySequentialResult:
    """Vectorised ``sequential_test`` for proportions (formula in the module docstring)."""
    config = SequentialConfig(alpha=alpha, difference=difference, n_star=n_star)
    moments = effect_moments(*proportion_moments(n_c, successes_c, n_t, successes_t), difference=config.difference)
    return _sequential(moments, config)


def sequential_test(
    control: Proportion | SampleMean | RatioSample,
    treatment: Proportion | SampleMean | RatioSample,
    alpha: float = 0.05,
    difference: Difference = "absolute",
    n_star: float = DEFAULT_N_STAR,
) -> SequentialResult:
    """Always-valid test of treatment vs control at the current (cumulative) data.

    Works for proportions, means and ratio metrics (same effect/variance as the fixed-horizon
    tests). Safe to call after every day's data: the p-value and the confidence sequence hold
    uniformly over all looks (see module docstring for the formulas and the choice of ``n_star``).
    """
    config = SequentialConfig(alpha=alpha, difference=difference, n_star=n_star)
    moments, mc, mt, nc, nt = scalar_effect_moments(control, treatment, config.difference)
    res = _sequential(moments, config)
    return SequentialResult(
        effect=float(res.effect[0]),
        ci_low=float(res.ci_low[0]),
        ci_high=float(res.ci_high[0]),
        p_value=float(res.p_value[0]),
        significant=bool(res.significant[0]),
        std_error=float(res.std_error[0]),
        control_mean=mc,
        treatment_mean=mt,
        n_total=float(nc + nt),
        alpha=config.alpha,
        difference=config.difference,
        n_star=config.n_star,
    )


def sequential_monitor(
    looks: Sequence[tuple[Proportion | SampleMean | RatioSample, Proportion | SampleMean | RatioSample]],
    alpha: float = 0.05,
    difference: Difference = "absolute",
    n_star: float = DEFAULT_N_STAR,
) -> list[SequentialResult]:
    """Apply ``sequential_test`` to cumulative looks and carry the running minimum p-value.

    The running minimum min_{k <= j} p_k keeps the always-valid guarantee (the event "some p_k <= alpha"
    is the same), and makes the verdict monotone: once significant, it stays significant.
    """
    results: list[SequentialResult] = []
    running = 1.0
    for control, treatment in looks:
        r = sequential_test(control, treatment, alpha=alpha, difference=difference, n_star=n_star)
        running = min(running, r.p_value)
        results.append(
            SequentialResult(**{**_as_dict(r), "p_value": running, "significant": running < r.alpha})  # type: ignore[arg-type]
        )
    return results


def _as_dict(result: SequentialResult) -> dict[str, object]:
    return {name: getattr(result, name) for name in SequentialResult.__dataclass_fields__}
