"""Thompson-sampling traffic weights for a binary primary metric, updated in batches from rollups.

Batched Thompson sampling ("randomized probability matching", Scott 2010, "A modern Bayesian look
at the multi-armed bandit", Appl. Stoch. Models Bus. Ind. 26:639-658; Google Analytics content
experiments used it with twice-daily updates, Scott 2015): instead of drawing one posterior
sample per request, each update serves arm i with probability equal to the posterior probability
that it is the best arm,

    arm i's posterior         theta_i ~ Beta(a0 + s_i, b0 + n_i - s_i)
    probability best          q_i = P(theta_i = max_j theta_j)
    traffic weight            w_i = floor_weights(q, min_share)_i

which is what a per-request Thompson sampler does in expectation over the batch.

Metric: ``trials`` and ``successes`` per arm are what the rollups hold. For conversion they are
exposed users and users who purchased (a Bernoulli per user, the model is exact). For CTR they are
impressions and clicks, and one user's impressions are correlated (users differ in how much they
click), so a Beta-Bernoulli posterior over impressions is too narrow: on the shopper simulator the
delta-method variance of an arm's CTR with users as units was 2.0-4.0 times the binomial one
(CHANGELOG.md, 2026-11-28, Bandits); in 2 of 40 runs the allocation ended on the worse arm with P(best) 0.91-0.92. The
counts are therefore deflated by the arm's design effect D >= 1 (``ArmCounts.design_effect``,
``ctr_design_effect``; Kish's effective sample size, n / D trials and s / D successes):

    theta_i ~ Beta(a0 + s_i / D_i, b0 + (n_i - s_i) / D_i)

which keeps the mean s / n and gives the posterior the variance of the user-level (delta-method)
estimate. The *analysis* (``analysis.py``) never uses this posterior and works on users.

``q`` is exact for two arms (``beta_prob_greater``, quadrature, shared with the Bayesian test) and
Monte Carlo with a fixed seed for three or more (standard error <= 0.5 / sqrt(draws), 0.0016 at the
default 100,000 draws), so the same rollups always produce the same weights.

Burn-in: weights stay equal until every arm has ``burn_in_trials`` trials *and* the update is for
period ``burn_in_periods`` or later (both must hold: a large day 0 must not end the burn-in before
day-of-week effects are seen, and a long calendar burn-in with no traffic must not either).

Assignment of users under changing weights. ``engine.bucketing`` picks the arm from the
user's hash point and the cumulative weights, so with sticky bucketing a weight change would move
existing users whose point lies between the old and new boundaries (and mix two treatments in
one user). The bandit therefore applies each period's weights to NEW users only: a user keeps the
arm of their first exposure (the Exposure row), and only users with no exposure are assigned by
``assign`` with the current ``Allocation`` (``allocation_for``). Each period's new users are then a
randomised cohort with known propensities ``served_weights(allocation)``, which is what
``analysis.py`` relies on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import special

from engine.bucketing import BUCKETS, Allocation, LayerSlot
from engine.stats import RatioSample, beta_prob_greater

from ._checks import check_count
from .errors import InvalidBanditConfigError, InvalidBanditDataError

__all__ = [
    "ArmCounts",
    "BanditState",
    "PosteriorSummary",
    "ThompsonConfig",
    "WeightUpdate",
    "allocation_for",
    "ctr_design_effect",
    "floor_weights",
    "probability_best",
    "served_weights",
    "thompson_update",
]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidBanditConfigError(f"{name} must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise InvalidBanditConfigError(f"{name} must be finite, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One arm's cumulative ``successes`` out of ``trials`` (users/purchasers or impressions/clicks).

    ``design_effect`` (>= 1): how many times the rate's variance exceeds the binomial one because
    trials are correlated (``ctr_design_effect``); the posterior counts ``trials / design_effect``
    trials. Burn-in counts the raw ``trials``.
    """

    trials: int
    successes: int
    design_effect: float = 1.0

    def __post_init__(self) -> None:
        trials = check_count(self.trials, "ArmCounts.trials")
        successes = check_count(self.successes, "ArmCounts.successes")
        if successes > trials:
            raise InvalidBanditDataError(f"ArmCounts.successes ({successes}) cannot exceed trials ({trials})")
        try:
            design_effect = _number(self.design_effect, "ArmCounts.design_effect")
        except InvalidBanditConfigError as exc:
            raise InvalidBanditDataError(str(exc)) from exc
        if design_effect < 1.0:
            raise InvalidBanditDataError(f"ArmCounts.design_effect must be >= 1, got {self.design_effect!r}")
        object.__setattr__(self, "trials", trials)
        object.__setattr__(self, "successes", successes)
        object.__setattr__(self, "design_effect", design_effect)

    def effective(self) -> tuple[float, float]:
        """(successes, failures) the posterior counts: each divided by the design effect."""
        return self.successes / self.design_effect, (self.trials - self.successes) / self.design_effect


def ctr_design_effect(sample: RatioSample) -> float:
    """Design effect of an arm's CTR with users as units: D = max(1, Var_delta(R) / Var_binomial(R)).

    ``sample``: per user x = clicks, y = impressions (sums over the arm's users). With R = sum_x / sum_y,
    Var_delta(R) = ``sample.variance`` / n (Deng, Knoblich & Lu 2018) and Var_binomial(R) =
    R (1 - R) / sum_y, what a Beta posterior over independent impressions assumes. 1 when either is
    undefined or zero (fewer than 2 users, no impressions, R = 0 or 1); never below 1, so correlated
    impressions only ever widen the posterior. Example: 4 users with (clicks, impressions) (3, 10),
    (0, 10), (1, 10), (0, 10): R = 4 / 40 = 0.1; the residuals x - R y are 2, -1, 0, -1, so
    Var_delta = (6 / 3) / 10^2 / 4 = 0.005 against Var_binomial = 0.1 x 0.9 / 40 = 0.00225: D = 20 / 9.
    """
    if sample.n < 2 or sample.sum_y <= 0:
        return 1.0
    rate = sample.sum_x / sample.sum_y
    if not 0.0 < rate < 1.0:
        return 1.0
    binomial = rate * (1.0 - rate) / sample.sum_y
    return max(1.0, sample.variance / sample.n / binomial)


@dataclass(frozen=True, slots=True)
class ThompsonConfig:
    """Settings of the allocation.

    ``min_share``: every arm gets at least this share of new users (0 <= min_share <= 1 / arms;
    at 1 / arms the split is fixed and equal). ``burn_in_trials`` / ``burn_in_periods``: equal
    weights until both are reached (see the module docstring). ``prior``: Beta(a0, b0), uniform by
    default. ``draws`` / ``seed``: the Monte Carlo used for three or more arms.
    """

    min_share: float = 0.05
    burn_in_trials: int = 1_000
    burn_in_periods: int = 1
    prior: tuple[float, float] = (1.0, 1.0)
    draws: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        min_share = _number(self.min_share, "min_share")
        if not 0.0 <= min_share < 1.0:
            raise InvalidBanditConfigError(f"min_share must be in [0, 1), got {self.min_share!r}")
        for name in ("burn_in_trials", "burn_in_periods", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidBanditConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1_000:
            raise InvalidBanditConfigError(f"draws must be an integer >= 1000, got {self.draws!r}")
        if not isinstance(self.prior, Sequence) or len(self.prior) != 2:
            raise InvalidBanditConfigError(f"prior must be a pair (a0, b0), got {self.prior!r}")
        a0, b0 = (_number(v, "prior") for v in self.prior)
        if a0 <= 0.0 or b0 <= 0.0:
            raise InvalidBanditConfigError(f"prior parameters must be > 0, got {self.prior!r}")
        object.__setattr__(self, "min_share", min_share)
        object.__setattr__(self, "prior", (a0, b0))


@dataclass(frozen=True, slots=True)
class PosteriorSummary:
    """Beta(alpha, beta) posterior of one arm's rate, its mean and equal-tailed 95 % interval."""

    alpha: float
    beta: float
    mean: float
    ci_low: float
    ci_high: float


def _posterior(counts: ArmCounts, prior: tuple[float, float]) -> PosteriorSummary:
    successes, failures = counts.effective()
    a = prior[0] + successes
    b = prior[1] + failures
    low, high = special.betaincinv(a, b, [0.025, 0.975])
    return PosteriorSummary(alpha=a, beta=b, mean=a / (a + b), ci_low=float(low), ci_high=float(high))


def _check_counts(counts: Sequence[ArmCounts]) -> tuple[ArmCounts, ...]:
    if isinstance(counts, str | bytes) or not isinstance(counts, Sequence):
        raise InvalidBanditDataError(f"counts must be a sequence of ArmCounts, got {counts!r}")
    arms = tuple(counts)
    if len(arms) < 2:
        raise InvalidBanditDataError(f"a bandit needs at least 2 arms, got {len(arms)}")
    for i, arm in enumerate(arms):
        if not isinstance(arm, ArmCounts):
            raise InvalidBanditDataError(f"counts[{i}] must be ArmCounts, got {arm!r}")
    return arms


def probability_best(
    counts: Sequence[ArmCounts], prior: tuple[float, float] = (1.0, 1.0), draws: int = 100_000, seed: int = 0
) -> tuple[float, ...]:
    """P(arm i has the highest rate) under independent Beta posteriors (counts divided by each arm's
    design effect); sums to 1.

    Two arms: exact, q_1 = P(theta_1 > theta_0) by quadrature (``beta_prob_greater``), q_0 = 1 - q_1
    (ties have probability zero for continuous posteriors). More arms: the share of ``draws`` joint
    posterior samples in which the arm is the largest, with ``numpy.random.default_rng(seed)``.
    """
    arms = _check_counts(counts)
    config = ThompsonConfig(prior=prior, draws=draws, seed=seed)  # validates prior and draws
    a0, b0 = config.prior
    alphas = [a0 + c.effective()[0] for c in arms]
    betas = [b0 + c.effective()[1] for c in arms]
    if len(arms) == 2:
        q1 = beta_prob_greater(alphas[1], betas[1], alphas[0], betas[0])
        return (1.0 - q1, q1)
    rng = np.random.default_rng(config.seed)
    samples = rng.beta(np.asarray(alphas), np.asarray(betas), size=(config.draws, len(arms)))
    wins = np.bincount(np.argmax(samples, axis=1), minlength=len(arms))
    return tuple(float(w) / config.draws for w in wins)


def floor_weights(probabilities: Sequence[float], min_share: float) -> tuple[float, ...]:
    """Weights proportional to ``probabilities`` with every arm at least ``min_share``.

    Water-filling: arms whose proportional share would fall below the floor are pinned at it, and
    the remaining mass 1 - (pinned arms) x min_share is shared among the others in proportion to
    their probabilities; repeat until no free arm falls below the floor (at most ``arms`` rounds,
    since each round pins at least one more arm or stops). Unlike "clip, then divide by the sum",
    the result respects the floor exactly and keeps the free arms' ratios. Example: q = (0.6, 0.35,
    0.05), floor 0.1 -> arm 2 pinned at 0.1, arms 0 and 1 share 0.9 as 0.6 : 0.35 -> (0.5684,
    0.3316, 0.1).
    """
    if isinstance(probabilities, str | bytes) or not isinstance(probabilities, Sequence | np.ndarray):
        raise InvalidBanditDataError(f"probabilities must be a sequence of numbers, got {probabilities!r}")
    q = []
    for i, p in enumerate(probabilities):
        try:
            value = _number(p, f"probabilities[{i}]")
        except InvalidBanditConfigError as exc:
            raise InvalidBanditDataError(str(exc)) from exc
        if value < 0.0:
            raise InvalidBanditDataError(f"probabilities must be >= 0, got {list(probabilities)!r}")
        q.append(value)
    k = len(q)
    if k < 2:
        raise InvalidBanditDataError(f"a bandit needs at least 2 arms, got {k}")
    total = math.fsum(q)
    if total <= 0.0:
        raise InvalidBanditDataError(f"probabilities must not all be zero, got {q!r}")
    floor = _number(min_share, "min_share")
    if not 0.0 <= floor <= 1.0 / k:
        raise InvalidBanditConfigError(f"min_share must be in [0, 1/{k}] for {k} arms, got {min_share!r}")
    pinned = [False] * k
    weights = [p / total for p in q]
    for _ in range(k):
        free_mass = 1.0 - floor * sum(pinned)
        free_total = math.fsum(p for p, fixed in zip(q, pinned, strict=True) if not fixed)
        weights = [
            floor if fixed else (free_mass * p / free_total if free_total > 0.0 else 0.0)
            for p, fixed in zip(q, pinned, strict=True)
        ]
        newly = [i for i, (w, fixed) in enumerate(zip(weights, pinned, strict=True)) if not fixed and w < floor]
        if not newly:
            break
        for i in newly:
            pinned[i] = True
    return tuple(weights)


@dataclass(frozen=True, slots=True)
class WeightUpdate:
    """One allocation decision: the ``weights`` new users get from ``period`` on.

    ``period`` counts updates from 0 (the first period's weights, before any data). ``trials`` /
    ``successes`` are the cumulative counts the decision used. ``probability_best`` and
    ``posteriors`` are computed during burn-in too (the page shows them), only not used.
    """

    period: int
    weights: tuple[float, ...]
    probability_best: tuple[float, ...]
    posteriors: tuple[PosteriorSummary, ...]
    trials: tuple[int, ...]
    successes: tuple[int, ...]
    burn_in: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (lists of floats/ints), for a JSONField or a chart."""
        return {
            "period": self.period,
            "weights": list(self.weights),
            "probability_best": list(self.probability_best),
            "posteriors": [
                {"alpha": p.alpha, "beta": p.beta, "mean": p.mean, "ci_low": p.ci_low, "ci_high": p.ci_high}
                for p in self.posteriors
            ],
            "trials": list(self.trials),
            "successes": list(self.successes),
            "burn_in": self.burn_in,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightUpdate:
        try:
            return cls(
                period=int(data["period"]),
                weights=tuple(float(w) for w in data["weights"]),
                probability_best=tuple(float(q) for q in data["probability_best"]),
                posteriors=tuple(PosteriorSummary(**p) for p in data["posteriors"]),
                trials=tuple(int(t) for t in data["trials"]),
                successes=tuple(int(s) for s in data["successes"]),
                burn_in=bool(data["burn_in"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidBanditDataError(f"not a stored WeightUpdate: {exc}") from exc


def thompson_update(counts: Sequence[ArmCounts], period: int, config: ThompsonConfig | None = None) -> WeightUpdate:
    """The weights for ``period`` from the cumulative ``counts`` of the periods before it.

    Burn-in (equal weights) while ``period < burn_in_periods`` or some arm has fewer than
    ``burn_in_trials`` trials; afterwards ``floor_weights(probability_best(counts), min_share)``.
    """
    config = config or ThompsonConfig()
    arms = _check_counts(counts)
    if isinstance(period, bool) or not isinstance(period, int) or period < 0:
        raise InvalidBanditDataError(f"period must be an integer >= 0, got {period!r}")
    if config.min_share > 1.0 / len(arms):
        raise InvalidBanditConfigError(
            f"min_share {config.min_share} is above 1/{len(arms)}: {len(arms)} arms cannot all get it"
        )
    # Seed by period: re-running an update (a retried beat task) reproduces its weights exactly,
    # while successive periods do not reuse one set of draws (their Monte Carlo errors stay independent).
    q = probability_best(arms, config.prior, config.draws, config.seed + period)
    burn_in = period < config.burn_in_periods or min(c.trials for c in arms) < config.burn_in_trials
    weights = tuple(1.0 / len(arms) for _ in arms) if burn_in else floor_weights(q, config.min_share)
    return WeightUpdate(
        period=period,
        weights=weights,
        probability_best=q,
        posteriors=tuple(_posterior(c, config.prior) for c in arms),
        trials=tuple(c.trials for c in arms),
        successes=tuple(c.successes for c in arms),
        burn_in=burn_in,
    )


@dataclass(frozen=True, slots=True)
class BanditState:
    """The history of weight updates, oldest first (periods 0, 1, 2, ... without gaps)."""

    updates: tuple[WeightUpdate, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        updates = tuple(self.updates)
        for i, update in enumerate(updates):
            if not isinstance(update, WeightUpdate):
                raise InvalidBanditDataError(f"updates[{i}] must be a WeightUpdate, got {update!r}")
            if update.period != i:
                raise InvalidBanditDataError(f"updates must be periods 0, 1, 2, ...; updates[{i}] is {update.period}")
            if len(update.weights) != len(updates[0].weights):
                raise InvalidBanditDataError(
                    f"updates[{i}] has {len(update.weights)} arms, updates[0] has {len(updates[0].weights)}"
                )
        object.__setattr__(self, "updates", updates)

    @property
    def next_period(self) -> int:
        return len(self.updates)

    def current_weights(self, arms: int) -> tuple[float, ...]:
        """The weights in force: the last update's, or equal weights before the first update."""
        return self.updates[-1].weights if self.updates else tuple(1.0 / arms for _ in range(arms))

    def advance(self, counts: Sequence[ArmCounts], config: ThompsonConfig | None = None) -> BanditState:
        """A new state with the update for ``next_period`` appended (the state itself is unchanged)."""
        return BanditState((*self.updates, thompson_update(counts, self.next_period, config)))

    def weights_series(self) -> dict[str, list[Any]]:
        """Columns for a chart: ``period`` and one weight list per arm (``arm_0``, ``arm_1``, ...)."""
        series: dict[str, list[Any]] = {"period": [u.period for u in self.updates]}
        if self.updates:
            for arm in range(len(self.updates[0].weights)):
                series[f"arm_{arm}"] = [u.weights[arm] for u in self.updates]
        return series

    def to_list(self) -> list[dict[str, Any]]:
        return [u.to_dict() for u in self.updates]

    @classmethod
    def from_list(cls, data: Sequence[Mapping[str, Any]]) -> BanditState:
        return cls(tuple(WeightUpdate.from_dict(d) for d in data))


def allocation_for(weights: Sequence[float], traffic: float = 1.0, layer: LayerSlot | None = None) -> Allocation:
    """The bucketing ``Allocation`` that assigns NEW users with ``weights`` (existing users keep theirs)."""
    return Allocation(traffic=traffic, weights=tuple(weights), layer=layer)


def served_weights(allocation: Allocation) -> tuple[float, ...]:
    """The arm shares the allocation really serves: its 1/10,000-rounded arm bounds.

    These, not the unrounded Thompson weights, are the propensities the analysis and the SRM check
    should use (the difference is at most 0.5/10,000 per arm).
    """
    bounds = (0, *allocation.arm_bounds)
    return tuple((hi - lo) / BUCKETS for lo, hi in pairwise(bounds))
