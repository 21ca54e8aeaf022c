"""Off-policy estimators of a target policy's expected reward (CTR) from logged bandit feedback.

Each logged unit i (an impression) has a reward r_i (click 0/1), the logging policy's probability
p_i of the action it took (its *propensity*), and the target policy's probability pi_i of that same
action in the same context. The importance weight is w_i = pi_i / p_i, optionally clipped at M:
w_i = min(pi_i / p_i, M). With n units:

* IPS (inverse propensity scoring, Horvitz & Thompson 1952; Precup et al. 2000):
      V_IPS = (1/n) sum_i w_i r_i
  unbiased when every action the target can take had p > 0 under the logging policy and w is not
  clipped; its variance grows with the weights.
* SNIPS (self-normalised IPS, Swaminathan & Joachims 2015, "The Self-Normalized Estimator for
  Counterfactual Learning"; a Hajek estimator):
      V_SNIPS = sum_i w_i r_i / sum_i w_i
  biased by O(1/n) but usually far less variable; exact when the target equals the logging policy.
* DR (doubly robust, Dudik, Langford & Li 2011, "Doubly Robust Policy Evaluation and Learning"):
      V_DR = (1/n) sum_i [ q_pi(x_i) + w_i (r_i - q(x_i, a_i)) ]
  where q(x, a) is a reward model and q_pi(x) = sum_a pi(a | x) q(x, a) the model's expected reward
  under the target (the direct-method term). Unbiased if either the propensities or the model are
  right; its variance is that of IPS applied to the model's residuals. The model predictions come
  in as ``RewardPredictions`` (see ``slates.cross_fitted_predictions`` for the one we fit).

Every estimator is a ratio of sums, V = sum_i a_i / sum_i b_i (IPS: a = w r, b = 1; SNIPS: a = w r,
b = w; DR: a = q_pi + w (r - q), b = 1), so one engine serves all three:

* standard error by linearisation (the delta method for a ratio of means):
      se = sd_i(a_i - V b_i) / (mean(b) sqrt(n))
* a percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13): resample the n units with
  replacement B times, recompute V, take the alpha/2 and 1 - alpha/2 quantiles. Seeded; the same
  seed gives the same resamples to every estimator (common random numbers), so their intervals are
  comparable. The reward model is held fixed across resamples (it is cross-fitted, not refitted),
  so the DR interval ignores the model's own estimation noise. ``EstimatorConfig.interval = "bca"``
  reads the replicates at bias-corrected and accelerated levels instead (``bca_quantiles``).
* clustered units (``LoggedFeedback.clusters``): when units are not independent (the k impressions of
  one request, every request of one user: the user's arm, tastes and explored draws are shared), the
  independent resampling unit is the cluster c. Then A_c = sum_{i in c} a_i and B_c = sum_{i in c} b_i,
  V = sum_c A_c / sum_c B_c (the same estimate), the standard error is the cluster-robust linearised
      se = sd_c(A_c - V B_c) / (mean_c(B_c) sqrt(G))          (G clusters)
  and the bootstrap resamples whole clusters (the cluster bootstrap; Cameron, Gelbach & Miller
  2008; Field & Welsh 2007). Treating correlated impressions as independent understates the
  variance, so the intervals undercover.
* the effective sample size (Kish 1965), ESS = (sum_i w_i)^2 / sum_i w_i^2: n when all weights are
  equal (target = logging), small when a few units carry the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from ._arrays import FloatArray, IntArray, as_vector, frozen
from .errors import DegenerateLogError, InvalidConfigError, InvalidLogError, InvalidPolicyError, OffPolicyError

__all__ = [
    "INTERVALS",
    "EstimatorConfig",
    "LoggedFeedback",
    "OffPolicyEstimate",
    "RewardPredictions",
    "bca_quantiles",
    "bootstrap_ratios",
    "cluster_index",
    "doubly_robust",
    "effective_sample_size",
    "importance_weights",
    "ips",
    "point_estimates",
    "snips",
    "summarise_ratio",
]

# Bootstrap resamples are drawn as (chunk, n) index matrices: this bounds one chunk to ~16 MB of int64.
_BOOTSTRAP_CELLS = 2_000_000
INTERVALS = ("percentile", "bca")
_MISSING_PROPENSITY_HINT = (
    "missing propensities cannot be inverse-weighted: drop those rows or log the serving policy's propensities"
)


@dataclass(frozen=True, slots=True)
class EstimatorConfig:
    """Settings shared by the estimators.

    ``confidence``: level of the bootstrap interval. ``n_bootstrap``: resamples (>= 100).
    ``interval``: "percentile" or "bca" (bias-corrected and accelerated; see ``bca_quantiles``).
    ``seed``: bootstrap seed (same seed, same interval). ``clip``: cap M on the importance weights
    (None: no clipping; clipping trades bias for variance). ``min_ess_fraction``: warn when the
    effective sample size is below this share of n.
    """

    confidence: float = 0.95
    n_bootstrap: int = 2000
    seed: int = 0
    clip: float | None = None
    min_ess_fraction: float = 0.05
    interval: str = "percentile"

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise InvalidConfigError(f"interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")
        if not 0.0 < self.confidence < 1.0:
            raise InvalidConfigError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.n_bootstrap < 100:
            raise InvalidConfigError(f"n_bootstrap must be >= 100 for a percentile interval, got {self.n_bootstrap}")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise InvalidConfigError(f"clip must be a finite number > 0 or None, got {self.clip}")
        if not 0.0 <= self.min_ess_fraction <= 1.0:
            raise InvalidConfigError(f"min_ess_fraction must lie in [0, 1], got {self.min_ess_fraction}")


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """Validated logged data: rewards r_i, logging propensities p_i in (0, 1], target probabilities pi_i in [0, 1].

    All three are per logged unit and refer to the action that was actually logged. ``clusters``
    (optional, one integer per unit): units sharing a value are dependent (one request's or one
    user's impressions) and are resampled together; None: every unit is independent.
    """

    rewards: FloatArray
    propensities: FloatArray
    target_probabilities: FloatArray
    clusters: IntArray | None = None

    def __post_init__(self) -> None:
        rewards = as_vector(self.rewards, "rewards")
        propensities = as_vector(self.propensities, "propensities", hint=_MISSING_PROPENSITY_HINT)
        target = as_vector(self.target_probabilities, "target_probabilities")
        if not len(rewards) == len(propensities) == len(target):
            raise InvalidLogError(
                f"length mismatch: {len(rewards)} rewards, {len(propensities)} propensities, "
                f"{len(target)} target probabilities (one of each per logged unit)"
            )
        if len(rewards) < 2:
            raise InvalidLogError(f"need at least 2 logged units for an interval, got {len(rewards)}")
        _check_probabilities(propensities, "propensities", low_open=True, error=InvalidLogError)
        _check_probabilities(target, "target_probabilities", low_open=False, error=InvalidPolicyError)
        object.__setattr__(self, "rewards", frozen(rewards))
        object.__setattr__(self, "propensities", frozen(propensities))
        object.__setattr__(self, "target_probabilities", frozen(target))
        if self.clusters is not None:
            object.__setattr__(self, "clusters", frozen(cluster_index(self.clusters, len(rewards))))

    @property
    def n(self) -> int:
        return len(self.rewards)

    def subset(self, rows: npt.NDArray[np.bool_] | IntArray) -> LoggedFeedback:
        """The same feedback restricted to ``rows`` (a mask or indices), clusters included."""
        clusters = None if self.clusters is None else self.clusters[rows]
        return LoggedFeedback(self.rewards[rows], self.propensities[rows], self.target_probabilities[rows], clusters)


def cluster_index(values: npt.ArrayLike, n: int) -> IntArray:
    """Cluster labels (any hashable numbers) as dense indices 0..G-1, one per unit; checks the length."""
    labels = np.asarray(values)
    if labels.ndim != 1 or len(labels) != n:
        raise InvalidLogError(f"clusters must hold one label per logged unit ({n}), got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise InvalidLogError(f"clusters must be integer labels (e.g. a request or user index), got {labels.dtype}")
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class RewardPredictions:
    """A reward model's outputs for DR, per logged unit: ``logged`` = q(x_i, a_i) and
    ``under_target`` = q_pi(x_i) = sum_a pi(a | x_i) q(x_i, a). ``model`` describes the model (shown in results).
    """

    logged: FloatArray
    under_target: FloatArray
    model: str

    def __post_init__(self) -> None:
        logged = as_vector(self.logged, "reward model predictions (logged actions)")
        under_target = as_vector(self.under_target, "reward model predictions (under the target)")
        if len(logged) != len(under_target):
            raise InvalidLogError(f"{len(logged)} predictions for logged actions but {len(under_target)} under target")
        object.__setattr__(self, "logged", frozen(logged))
        object.__setattr__(self, "under_target", frozen(under_target))


@dataclass(frozen=True, slots=True)
class OffPolicyEstimate:
    """One estimator's answer: the estimate, its bootstrap interval and how well the logs cover the target.

    ``standard_error`` is the linearised (delta-method) one; ``ci_lower``/``ci_upper`` the percentile
    bootstrap interval at ``confidence``; both over ``n_clusters`` clusters when the units were
    clustered (None: over the n units). ``effective_sample_size`` = (sum w)^2 / sum w^2 of the
    (clipped) weights; ``n_clipped`` counts weights that hit ``clip``. ``warnings`` are sentences for
    the page; ``method`` states the estimator and its assumption.
    """

    estimator: str
    estimate: float
    standard_error: float
    ci_lower: float
    ci_upper: float
    confidence: float
    n: int
    effective_sample_size: float
    max_weight: float
    clip: float | None
    n_clipped: int
    n_bootstrap: int
    warnings: tuple[str, ...]
    method: str
    n_clusters: int | None = None
    interval: str = "percentile"


def _check_probabilities(values: FloatArray, name: str, *, low_open: bool, error: type[OffPolicyError]) -> None:
    low_bad = values <= 0 if low_open else values < 0
    bad = low_bad | (values > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        allowed = "(0, 1]" if low_open else "[0, 1]"
        why = " (a logged action cannot have had probability 0 under the policy that chose it)" if low_open else ""
        raise error(
            f"{name} must lie in {allowed}{why}: {int(bad.sum())} value(s) outside, row {first} is {values[first]}"
        )


def importance_weights(feedback: LoggedFeedback, clip: float | None = None) -> FloatArray:
    """w_i = pi_i / p_i, capped at ``clip`` when given."""
    weights = feedback.target_probabilities / feedback.propensities
    return weights if clip is None else np.minimum(weights, clip)


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2; raises when every weight is 0."""
    w = as_vector(weights, "weights")
    if np.any(w < 0):
        raise InvalidLogError("importance weights must be >= 0")
    squares = float(np.dot(w, w))
    if squares == 0.0:
        raise DegenerateLogError(
            "every importance weight is 0: the target gives probability 0 to every logged action, "
            "so these logs say nothing about it"
        )
    return float(w.sum()) ** 2 / squares


def ips(feedback: LoggedFeedback, config: EstimatorConfig | None = None) -> OffPolicyEstimate:
    """Inverse propensity scoring, V = (1/n) sum_i w_i r_i (Horvitz & Thompson 1952)."""
    return _ratio_estimate("IPS", feedback, None, config or EstimatorConfig())


def snips(feedback: LoggedFeedback, config: EstimatorConfig | None = None) -> OffPolicyEstimate:
    """Self-normalised IPS, V = sum_i w_i r_i / sum_i w_i (Swaminathan & Joachims 2015)."""
    return _ratio_estimate("SNIPS", feedback, None, config or EstimatorConfig())


def doubly_robust(
    feedback: LoggedFeedback, predictions: RewardPredictions, config: EstimatorConfig | None = None
) -> OffPolicyEstimate:
    """Doubly robust, V = (1/n) sum_i [q_pi(x_i) + w_i (r_i - q(x_i, a_i))] (Dudik, Langford & Li 2011)."""
    return _ratio_estimate("DR", feedback, predictions, config or EstimatorConfig())


def point_estimates(
    feedback: LoggedFeedback, predictions: RewardPredictions | None = None, clip: float | None = None
) -> dict[str, float]:
    """The IPS and SNIPS (and, given predictions, DR) point estimates alone: no interval, no warnings.

    For callers that resample something the estimators cannot see (e.g. a target policy that is
    itself estimated from logs) and need only the estimate inside their own loop.
    """
    names = ("IPS", "SNIPS") if predictions is None else ("IPS", "SNIPS", "DR")
    out: dict[str, float] = {}
    for name in names:
        numerator, denominator, _ = _terms(name, feedback, predictions, clip)
        out[name] = float(numerator.sum() / denominator.sum())
    return out


_METHODS = {
    "IPS": "inverse propensity scoring: mean of w_i r_i, w_i = pi_i / p_i",
    "SNIPS": "self-normalised IPS: sum w_i r_i / sum w_i (biased by O(1/n), less variable than IPS)",
    "DR": "doubly robust: direct method plus IPS on the residuals; reward model: ",
}


def _terms(
    estimator: str, feedback: LoggedFeedback, predictions: RewardPredictions | None, clip: float | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(a_i, b_i, w_i) of the estimator written as V = sum a_i / sum b_i (see the module docstring)."""
    weights = importance_weights(feedback, clip)
    if estimator == "SNIPS":
        return weights * feedback.rewards, weights, weights
    if estimator == "IPS":
        return weights * feedback.rewards, np.ones(feedback.n), weights
    assert predictions is not None  # DR is only ever asked for with a reward model
    if len(predictions.logged) != feedback.n:
        raise InvalidLogError(f"{len(predictions.logged)} reward predictions for {feedback.n} logged units")
    terms = predictions.under_target + weights * (feedback.rewards - predictions.logged)
    return terms, np.ones(feedback.n), weights


def _ratio_estimate(
    estimator: str, feedback: LoggedFeedback, predictions: RewardPredictions | None, config: EstimatorConfig
) -> OffPolicyEstimate:
    numerator, denominator, weights = _terms(estimator, feedback, predictions, config.clip)
    method = _METHODS[estimator] + (predictions.model if estimator == "DR" and predictions is not None else "")
    raw = feedback.target_probabilities / feedback.propensities
    n_clipped = 0 if config.clip is None else int(np.count_nonzero(raw > config.clip))
    return summarise_ratio(
        estimator, method, numerator, denominator, weights, n_clipped, config, clusters=feedback.clusters
    )


def summarise_ratio(
    estimator: str,
    method: str,
    numerator: FloatArray,
    denominator: FloatArray,
    weights: FloatArray,
    n_clipped: int,
    config: EstimatorConfig,
    *,
    clusters: IntArray | None = None,
) -> OffPolicyEstimate:
    """The estimate V = sum a_i / sum b_i over the n resampling units, its delta-method standard error,
    percentile bootstrap interval and coverage diagnostics from the (clipped) importance ``weights``.

    ``weights`` may have more entries than there are units (one per slot of a ranking, say): the
    effective sample size is then that of the weighted impressions. ``clusters`` (dense indices
    0..G-1, one per unit; see ``cluster_index``): the units are summed per cluster first and the
    clusters are the resampling units (see the module docstring).
    """
    n = len(numerator)
    ess = effective_sample_size(weights)  # raises first when the target never picks a logged action
    estimate = float(numerator.sum() / denominator.sum())
    if clusters is not None:
        numerator = np.bincount(clusters, weights=numerator).astype(np.float64)
        denominator = np.bincount(clusters, weights=denominator).astype(np.float64)
    units = len(numerator)
    if units < 2:
        raise InvalidLogError(f"need at least 2 independent clusters for an interval, got {units}")
    linearised = (numerator - estimate * denominator) / denominator.mean()
    standard_error = float(linearised.std(ddof=1) / math.sqrt(units))
    replicates = bootstrap_ratios(numerator, denominator, config.n_bootstrap, config.seed)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        raise DegenerateLogError(f"no bootstrap resample of the {units} units contained a unit with positive weight")
    alpha = 1.0 - config.confidence
    levels = (alpha / 2, 1 - alpha / 2)
    if config.interval == "bca":
        levels = bca_quantiles(finite, estimate, numerator, denominator, levels)
    lower, upper = (float(q) for q in np.quantile(finite, levels))
    warnings = _coverage_warnings(estimator, len(weights), ess, n_clipped, config, len(replicates) - len(finite))
    return OffPolicyEstimate(
        estimator=estimator,
        estimate=estimate,
        standard_error=standard_error,
        ci_lower=lower,
        ci_upper=upper,
        confidence=config.confidence,
        n=n,
        effective_sample_size=ess,
        max_weight=float(weights.max()),
        clip=config.clip,
        n_clipped=n_clipped,
        n_bootstrap=config.n_bootstrap,
        warnings=warnings,
        method=method,
        n_clusters=None if clusters is None else units,
        interval=config.interval,
    )


def bootstrap_ratios(numerator: FloatArray, denominator: FloatArray, n_resamples: int, seed: int) -> FloatArray:
    """sum(a[idx]) / sum(b[idx]) for ``n_resamples`` seeded resamples idx of the units (NaN if sum(b[idx]) = 0).

    Vectorised in chunks of (chunk, n) index matrices; the chunk size depends only on n, so a seed
    always reproduces the same resamples.
    """
    n = len(numerator)
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CELLS // n))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        top = numerator[idx].sum(axis=1)
        bottom = denominator[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start:stop] = np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1.0), np.nan)
    return out


def bca_quantiles(
    replicates: FloatArray,
    estimate: float,
    numerator: FloatArray,
    denominator: FloatArray,
    levels: tuple[float, float],
) -> tuple[float, float]:
    """The BCa levels (Efron 1987; Efron & Tibshirani 1993, ch. 14) at which to read the bootstrap replicates.

    For a nominal level q (z_q = Phi^-1(q)): q' = Phi(z0 + (z0 + z_q) / (1 - acc (z0 + z_q))), with the
    bias correction z0 = Phi^-1(share of replicates below V, ties counted half) and the acceleration from
    the jackknife of the ratio, V_(i) = (A - a_i) / (B - b_i) (closed form, O(n)):
        acc = sum (m - V_(i))^3 / (6 (sum (m - V_(i))^2)^(3/2)),   m = mean V_(i).
    Second-order accurate where the percentile interval is first-order: it corrects for the skew of an
    estimate that rests on a few large importance weights (Thomas, Theocharous & Ghavamzadeh 2015 use it
    for importance-sampling estimates). Falls back to ``levels`` when z0 or acc is undefined.
    """
    share = (np.count_nonzero(replicates < estimate) + 0.5 * np.count_nonzero(replicates == estimate)) / len(replicates)
    total_a, total_b = float(numerator.sum()), float(denominator.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        jackknife = (total_a - numerator) / (total_b - denominator)
    jackknife = jackknife[np.isfinite(jackknife)]
    if not 0.0 < share < 1.0 or len(jackknife) < 2:
        return levels
    z0 = float(special.ndtri(share))
    spread = jackknife.mean() - jackknife
    squares = float(np.sum(spread**2))
    acc = float(np.sum(spread**3)) / (6.0 * squares**1.5) if squares > 0 else 0.0
    adjusted = []
    for level in levels:
        z = z0 + float(special.ndtri(level))
        adjusted.append(float(special.ndtr(z0 + z / (1.0 - acc * z))))
    return adjusted[0], adjusted[1]


def _coverage_warnings(
    estimator: str, n: int, ess: float, n_clipped: int, config: EstimatorConfig, n_undefined: int
) -> tuple[str, ...]:
    warnings: list[str] = []
    if ess < config.min_ess_fraction * n:
        warnings.append(
            f"effective sample size {ess:,.0f} is {ess / n:.1%} of the {n:,} logged units (below "
            f"{config.min_ess_fraction:.0%}): the logs cover the target's choices poorly, so the {estimator} "
            "estimate rests on a few units and its interval may be too narrow"
        )
    if n_clipped:
        warnings.append(
            f"{n_clipped:,} importance weight(s) clipped at {config.clip:g}: the estimate is biased toward "
            "what the logging policy did"
            # Clipping only shrinks the terms of plain IPS; SNIPS and DR also shrink their normaliser or
            # residuals, so their bias can go either way.
            + (" (downward, for non-negative rewards)" if estimator.startswith("IPS") else "")
        )
    if n_undefined:
        warnings.append(
            f"{n_undefined} of {config.n_bootstrap} bootstrap resamples contained no unit with positive weight "
            "and were left out of the interval"
        )
    return tuple(warnings)
