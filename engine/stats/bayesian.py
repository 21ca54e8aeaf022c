"""Bayesian two-arm comparison for every metric kind: ``bayesian_test(control, treatment, config)``.

The statistic type chooses the method (``BayesianResult.method``):

* ``Proportion`` (conversion, add-to-cart rate) -> ``"beta_binomial"``: exact Beta-Binomial.
* ``RatioSample`` (CTR = clicks / impressions, users as units) and ``SampleMean`` (revenue per
  user) -> ``"normal_relative"``: normal posterior of the delta-method relative lift.

Every result reports the lift on the relative scale, lift = T / C - 1 (median and equal-tailed
credible interval), the chance to win P(T > C) and the two expected losses
``expected_loss_control`` = E[max(T - C, 0)] (what keeping the control forgoes) and
``expected_loss_treatment`` = E[max(C - T, 0)] (what shipping the treatment risks).

Beta-Binomial (exact, no Monte Carlo)
-------------------------------------
With a Beta(a0, b0) prior, C ~ Beta(a_C, b_C) = Beta(a0 + s_C, b0 + n_C - s_C), T likewise. Losses
are on the absolute scale of the rate (``loss_scale = "absolute"``: 0.001 is 0.1 percentage point).

Each posterior is handled in the logit coordinate y = log(x / (1 - x)), where its density
g(y) = x^a (1 - x)^b / B(a, b) is smooth, unimodal and log-concave for every a, b > 0 (no endpoint
singularity even for a < 1), with mode y* = log(a / b) and log g(y* + d) - log g(y*) =
a d - (a + b) log1p(mu expm1(d)), mu = a / (a + b) (or the mirror form in b, whichever has the smaller
cancelling terms). Its support is cut where log g has dropped 36 nats below the mode (density 2e-16
of the peak; the mass beyond is below 1e-15), and split at the mode into two panels. On each panel
g and x g are sampled at n + 1 Chebyshev-Lobatto points and integrated cumulatively by spectral
(Clenshaw-Curtis) integration, which gives the CDF G(y) and the partial mean M(y) =
integral_{-inf}^y x g at every node; dividing by the computed total replaces B(a, b), whose
log-gamma evaluation loses ~1e-9 relative at a, b ~ 1e8. The degree n (40 to 448) is the smallest
whose last Chebyshev coefficients are below 1e-12 of the peak (the chopping rule of Chebfun:
Aurentz & Trefethen, "Chopping a Chebyshev series", ACM TOMS 2017): 40 for near-normal posteriors,
~80 for Beta(1, b) (no success yet). G, M and g anywhere come from barycentric interpolation
(Berrut & Trefethen, "Barycentric Lagrange interpolation", SIAM Review 2004; Trefethen,
"Approximation Theory and Approximation Practice", 2013, ch. 5 and 19), one matrix product for all
points. Both arms are tabulated in the same array operations.

Chance to win and losses are one outer quadrature over the posterior narrower in logit, weighting
by its density, so the other arm's G and M are smooth on the nodes' scale. For a near-normal outer
posterior (min(a, b) >= 30) it is Gauss-Hermite, 32 nodes y* + sigma z_i at Laplace's scale
sigma = (ab / (a + b))^-1/2 with weights w_i g(y_i) / phi(z_i) (~1e-14 against Evan Miller's sum);
otherwise Gauss-Legendre on both panels, n / 2 + 4 nodes each, more if needed to keep them within
0.75 standard deviations of the inner arm apart (a Beta(1, b) has a 36-unit left panel). With C the
outer variable and normalised weights W_i, x_i = sigmoid(c_i):

    P(T > C)          = sum_i W_i (1 - G_T(c_i))
    E[max(T - C, 0)]  = sum_i W_i (M_T(inf) - M_T(c_i) - x_i (1 - G_T(c_i)))
    E[max(C - T, 0)]  = sum_i W_i (x_i G_T(c_i) - M_T(c_i))

(the inner expectations E[max(T - x, 0)] = M_T(inf) - M_T(x) - x (1 - G_T(x)) need no Beta
function). The weights sum to 1, so P(T > C) + P(C > T) = 1 exactly and the two losses differ by
the difference of the means; identical arms give exactly 1/2, equal losses and a lift median of 0.
Evan Miller ("Formulas for Bayesian A/B testing", 2015) gives P(T > C) in closed form,
sum_{i<a_T} B(a_C + i, b_C + b_T) / ((b_T + i) B(1 + i, b_T) B(a_C, b_C)); with a_T terms (10^8 at
our traffic) it is the test suite's reference for small counts, not our method.

Lift quantiles: W = log(T / C) has, with C the outer variable (the narrower on the log scale) and
z_i = e^w x_i, q_i = logit(z_i),

    F(w)   = P(T <= e^w C) = sum_i W_i G_T(q_i),       F'(w) = sum_i W_i g_T(q_i) / (1 - z_i),
    F''(w) = sum_i W_i g_T(q_i) (a_T - (a_T + b_T - 1) z_i) / (1 - z_i)^2

(d log g / dy = a - (a + b) x; T outer: F(w) = 1 - S(-w) with the same sums in C). The outer nodes
are spaced on the inner arm's log scale here. Where e^w x reaches 1 inside the outer support
(T <= e^w C holds for every T there), G_T(q) -> 1 like (1 - z)^b_T, a kink: the sum is split at that
point, the mass beyond counting in full and the part below taking a Gauss-Legendre rule graded
towards it (v = end - (end - start) tau^3, which turns (end - v)^beta into tau^(3 beta + 2)). The
three quantiles (tail, median, 1 - tail) are found together by Halley steps (cubic: the error
after a step d is ~ d^3 / sd^2; stop once every d < 3e-4 sd), safeguarded by a bracket with
bisection, from the Cornish-Fisher expansion with the exact cumulants of log-Beta variables,
kappa_k(log X) = psi^(k-1)(a) - psi^(k-1)(a + b) (Johnson, Kotz & Balakrishnan, "Continuous
Univariate Distributions", vol. 2, ch. 25), within ~1e-5 sd at large counts: for most inputs the
chance to win, the losses and the one Halley step come from a single interpolation of the inner arm
(at q = y_i for the chance and at the three guesses). Where the kink makes F not smooth, Newton
steps run until below 1e-11 sd. lift = expm1(w).

Accuracy (tests/engine/stats/test_bayesian.py: 30-digit values from mpmath, Evan Miller's
sum, the adaptive-quadrature implementation this replaces, Monte Carlo, properties): the chance to
win to ~1e-13 absolute, the losses to ~1e-13 of the rates, the lift quantiles to ~1e-10 relative on
T / C (the ratio CDF at them within ~1e-12 of its level), for n from 1 to 1e9 and priors with both
parameters >= 0.1 (smaller ones may need more than the largest grid: ``DegenerateDataError``).
``bench/bayesian_speed.py`` times it beside gbstats.

Normal on the relative lift (``RatioSample``, ``SampleMean``)
------------------------------------------------------------
As GrowthBook's ``EffectBayesianABTest`` with its default flat (improper) prior (gbstats 0.8.0,
``bayesian/tests.py``): the posterior of the relative lift is N(d, V) with the delta-method moments
of ``_arrays.effect_moments``,

    d = m_T / m_C - 1,   V = v_T / (m_C^2 n_T) + m_T^2 v_C / (m_C^4 n_C),   s = sqrt(V)
    chance to win  = Phi(d / s)
    CI             = d -/+ Phi^-1((1 + level) / 2) s,   median d
    E[max(D, 0)]   = d Phi(d / s) + s phi(d / s)          (expected_loss_control)
    E[max(-D, 0)]  = -d Phi(-d / s) + s phi(d / s)        (expected_loss_treatment)

(the mean of a normal truncated at 0 times its mass; gbstats' ``get_risk``). Losses are on the
relative scale (``loss_scale = "relative"``: 0.01 is 1 % of the control mean). The control mean
must be positive: against a zero or negative baseline T / C - 1 > 0 does not mean "treatment is
better" (gbstats silently returns P(lift > 0) there), so that raises ``DegenerateDataError``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from scipy import special

from ._arrays import scalar_effect_moments
from ._beta_comparison import chance_and_losses, compare
from ._beta_posterior import BetaPosterior
from ._validation import check_alpha, check_choice, check_finite
from .errors import DegenerateDataError, InvalidDataError, InvalidParameterError
from .statistics import Proportion, RatioSample, SampleMean

__all__ = [
    "BayesianConfig",
    "BayesianResult",
    "bayesian_proportion_test",
    "bayesian_test",
    "beta_prob_greater",
]

Method = Literal["beta_binomial", "normal_relative"]
METHODS: tuple[str, ...] = ("beta_binomial", "normal_relative")
LossScale = Literal["absolute", "relative"]
_LOSS_SCALE: dict[str, LossScale] = {"beta_binomial": "absolute", "normal_relative": "relative"}
_FLOAT_FIELDS = ("chance_to_win", "expected_loss_control", "expected_loss_treatment", "lift_median", "lift_ci_low",
                 "lift_ci_high", "control_mean", "treatment_mean", "effect")  # fmt: skip
_ZETA_ORDERS = np.array([[2.0], [3.0], [4.0]])
_NORMAL = NormalDist()


@functools.lru_cache(maxsize=64)
def _normal_quantile(p: float) -> float:
    return _NORMAL.inv_cdf(p)


@dataclass(frozen=True, slots=True)
class BayesianConfig:
    """Beta(a0, b0) prior of the Beta-Binomial method (default uniform) and the lift's credible level.

    The normal method on the relative lift uses a flat prior (gbstats' default) and ignores ``prior``.
    """

    prior: tuple[float, float] = (1.0, 1.0)
    credible_level: float = 0.95

    def __post_init__(self) -> None:
        if len(self.prior) != 2:
            raise InvalidParameterError(f"prior must be a pair (alpha, beta), got {self.prior!r}")
        try:
            a0, b0 = (check_finite(v, "prior") for v in self.prior)
        except InvalidDataError as exc:
            raise InvalidParameterError(str(exc)) from exc
        if a0 <= 0 or b0 <= 0:
            raise InvalidParameterError(f"prior parameters must be > 0, got {self.prior!r}")
        object.__setattr__(self, "prior", (a0, b0))
        object.__setattr__(self, "credible_level", check_alpha(self.credible_level, "credible_level"))


_DEFAULT_CONFIG = BayesianConfig()


@dataclass(frozen=True, slots=True)
class BayesianResult:
    """One Bayesian comparison; the formulas for each ``method`` are in the module docstring.

    ``lift_*`` are T / C - 1 (relative). ``expected_loss_control`` = E[max(T - C, 0)] and
    ``expected_loss_treatment`` = E[max(C - T, 0)], on the scale named by ``loss_scale``: the rate's
    absolute scale for "beta_binomial", the relative lift's for "normal_relative". ``effect`` is
    treatment_mean - control_mean (posterior means for "beta_binomial", sample means otherwise);
    the posterior Beta parameters are None for "normal_relative".
    """

    method: Method
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
    loss_scale: LossScale
    alpha_control: float | None = None
    beta_control: float | None = None
    alpha_treatment: float | None = None
    beta_treatment: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "method")
        if self.loss_scale != _LOSS_SCALE[self.method]:
            raise InvalidParameterError(f"{self.method} losses are {_LOSS_SCALE[self.method]}, not {self.loss_scale}")
        check_alpha(self.credible_level, "credible_level")
        bad = [name for name in _FLOAT_FIELDS if not math.isfinite(getattr(self, name))]
        if bad:
            raise InvalidDataError(f"{bad[0]} must be finite, got {getattr(self, bad[0])!r}")
        if not 0.0 <= self.chance_to_win <= 1.0:
            raise InvalidDataError(f"chance_to_win must lie in [0, 1], got {self.chance_to_win!r}")
        if self.expected_loss_control < 0.0 or self.expected_loss_treatment < 0.0:
            raise InvalidDataError("expected losses must be >= 0")
        if not self.lift_ci_low <= self.lift_median <= self.lift_ci_high:
            raise InvalidDataError(
                f"lift quantiles out of order: {self.lift_ci_low!r} <= {self.lift_median!r} <= {self.lift_ci_high!r}"
            )
        posterior = (self.alpha_control, self.beta_control, self.alpha_treatment, self.beta_treatment)
        if (self.method == "beta_binomial") != all(v is not None for v in posterior) or (
            self.method == "normal_relative" and any(v is not None for v in posterior)
        ):
            raise InvalidParameterError("the Beta posterior parameters belong to (and only to) beta_binomial")


def bayesian_test(
    control: Proportion | RatioSample | SampleMean,
    treatment: Proportion | RatioSample | SampleMean,
    config: BayesianConfig | None = None,
) -> BayesianResult:
    """Bayesian comparison, treatment against control; the statistic type picks the method.

    Proportion -> exact Beta-Binomial; RatioSample or SampleMean -> normal on the relative lift
    (module docstring). Raises ``InvalidDataError`` for mixed or unsupported types and
    ``DegenerateDataError`` when the data cannot support the method (e.g. a control mean <= 0, or
    n < 2 or zero variance in both arms for the normal method).
    """
    config = config or _DEFAULT_CONFIG
    if type(control) is not type(treatment):
        raise InvalidDataError(
            f"control and treatment must be the same kind of statistic, got {type(control).__name__} "
            f"and {type(treatment).__name__}"
        )
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        return _beta_binomial(control, treatment, config)
    if isinstance(control, (RatioSample, SampleMean)) and isinstance(treatment, (RatioSample, SampleMean)):
        return _normal_relative(control, treatment, config)
    raise InvalidDataError(
        f"bayesian_test compares Proportion, RatioSample or SampleMean statistics, got {type(control).__name__}"
    )


def bayesian_proportion_test(
    control: Proportion,
    treatment: Proportion,
    prior: tuple[float, float] = (1.0, 1.0),
    credible_level: float = 0.95,
) -> BayesianResult:
    """Exact Beta-Binomial test of two proportions (``bayesian_test`` with this prior and level)."""
    if not (isinstance(control, Proportion) and isinstance(treatment, Proportion)):
        raise InvalidDataError("bayesian_proportion_test expects two Proportion instances")
    return _beta_binomial(control, treatment, BayesianConfig(prior=prior, credible_level=credible_level))


def beta_prob_greater(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    """P(T > C) for independent T ~ Beta(a_t, b_t), C ~ Beta(a_c, b_c) (module docstring's quadrature)."""
    values = [check_finite(v, name) for v, name in ((a_t, "a_t"), (b_t, "b_t"), (a_c, "a_c"), (b_c, "b_c"))]
    if min(values) <= 0.0:
        raise InvalidParameterError(f"Beta parameters must be > 0, got {tuple(values)!r}")
    win, _, _ = chance_and_losses(BetaPosterior(values[0], values[1]), BetaPosterior(values[2], values[3]))
    return min(max(win, 0.0), 1.0)


def _quantile_guess(
    a_t: float, b_t: float, a_c: float, b_c: float, probabilities: list[float]
) -> tuple[list[float], float]:
    """Cornish-Fisher quantiles of log(T / C) from the exact cumulants of log-Beta, and its sd.

    kappa_1 = psi(a) - psi(a + b), kappa_k = psi^(k-1)(a) - psi^(k-1)(a + b), with
    psi^(m)(x) = (-1)^(m+1) m! zeta(m + 1, x); the cumulants of log T - log C are
    kappa_k(log T) + (-1)^k kappa_k(log C). Expansion to the fourth cumulant (Abramowitz & Stegun 26.2.49).
    """
    args = np.array([a_t, a_t + b_t, a_c, a_c + b_c])
    psi = special.digamma(args).tolist()
    zeta = special.zeta(_ZETA_ORDERS, args).tolist()
    mean = (psi[0] - psi[1]) - (psi[2] - psi[3])
    t = [row[0] - row[1] for row in zeta]
    c = [row[2] - row[3] for row in zeta]
    variance = t[0] + c[0]
    sd = math.sqrt(variance)
    skew = -2.0 * (t[1] - c[1]) / (variance * sd)
    kurtosis = 6.0 * (t[2] + c[2]) / (variance * variance)
    guesses = []
    for p in probabilities:
        z = _normal_quantile(p)
        z2 = z * z
        correction = (z2 - 1.0) * skew / 6.0 + z * (z2 - 3.0) * kurtosis / 24.0 - z * (2.0 * z2 - 5.0) * skew**2 / 36.0
        guesses.append(mean + sd * (z + correction))
    return guesses, sd


def _beta_binomial(control: Proportion, treatment: Proportion, config: BayesianConfig) -> BayesianResult:
    a0, b0 = config.prior
    a_c, b_c = a0 + control.successes, b0 + (control.n - control.successes)
    a_t, b_t = a0 + treatment.successes, b0 + (treatment.n - treatment.successes)
    posterior_t, posterior_c = BetaPosterior.pair((a_t, b_t), (a_c, b_c))
    tail = 0.5 * (1.0 - config.credible_level)
    probabilities = [tail, 0.5, 1.0 - tail]
    guess, sd = _quantile_guess(a_t, b_t, a_c, b_c, probabilities)
    (win, loss_control, loss_treatment), (low, median, high) = compare(
        posterior_t, posterior_c, probabilities, guess, sd
    )
    if (a_t, b_t) == (a_c, b_c):  # log(T / C) is symmetric about 0: make the quantiles so exactly
        low, median, high = 0.5 * (low - high), 0.0, 0.5 * (high - low)
    low, median, high = math.expm1(low), math.expm1(median), math.expm1(high)
    return BayesianResult(
        method="beta_binomial",
        chance_to_win=min(max(win, 0.0), 1.0),
        # Clamp rounding noise (~1e-17) that can make a vanishing loss slightly negative.
        expected_loss_control=max(loss_control, 0.0),
        expected_loss_treatment=max(loss_treatment, 0.0),
        lift_median=median,
        lift_ci_low=low,
        lift_ci_high=high,
        control_mean=posterior_c.mean,
        treatment_mean=posterior_t.mean,
        effect=posterior_t.mean - posterior_c.mean,
        credible_level=config.credible_level,
        loss_scale="absolute",
        alpha_control=a_c,
        beta_control=b_c,
        alpha_treatment=a_t,
        beta_treatment=b_t,
    )


def _normal_relative(
    control: RatioSample | SampleMean, treatment: RatioSample | SampleMean, config: BayesianConfig
) -> BayesianResult:
    if control.mean <= 0.0:
        raise DegenerateDataError(
            f"the Bayesian lift is relative (T / C - 1) and needs a positive control mean, got {control.mean:g}"
        )
    moments, mean_c, mean_t, _, _ = scalar_effect_moments(control, treatment, "relative")
    lift = float(moments.effect[0])
    sd = math.sqrt(float(moments.variance[0]))
    z = lift / sd
    above = 0.5 * math.erfc(-z / math.sqrt(2.0))  # Phi(z) = P(lift > 0), accurate in both tails
    below = 0.5 * math.erfc(z / math.sqrt(2.0))  # Phi(-z) = P(lift < 0)
    spread = sd * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)  # s phi(z)
    half_width = float(special.ndtri(0.5 + 0.5 * config.credible_level)) * sd
    return BayesianResult(
        method="normal_relative",
        chance_to_win=above,
        expected_loss_control=max(lift * above + spread, 0.0),
        expected_loss_treatment=max(-lift * below + spread, 0.0),
        lift_median=lift,
        lift_ci_low=lift - half_width,
        lift_ci_high=lift + half_width,
        control_mean=mean_c,
        treatment_mean=mean_t,
        effect=mean_t - mean_c,
        credible_level=config.credible_level,
        loss_scale="relative",
    )
