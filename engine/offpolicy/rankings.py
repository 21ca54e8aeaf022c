"""Whole-ranking logs (K items per request, a click per slot) and IPS under three click assumptions.

The value is the CTR per slot impression, V(pi) = E_pi[sum_k r_k] / K. With n logged rankings,
items a_i1..a_iK and clicks r_i1..r_iK, the estimators differ only in the weight of r_ik:

* ``independent`` (position-wise, "IIPS"; Li et al. 2018, "Offline Evaluation of Ranking Policies
  with Click Models"): the click at slot k depends only on the item at slot k,
      w_ik = pi(a_ik at k) / p(a_ik at k)                       (marginal probabilities)
  lowest variance; biased when slots interact (a strong item above takes clicks from below).
* ``cascade`` ("RIPS"; McInerney et al. 2020, "Counterfactual Evaluation of Slate Recommendations
  with Sequential Reward Interactions"; Kiyohara et al. 2022, "Doubly Robust Off-Policy Evaluation
  for Ranking Policies under the Cascade Behavior Model"): users scan top-down, so the click at slot
  k depends on the items at slots 1..k,
      w_ik = pi(a_i1..a_ik) / p(a_i1..a_ik)                     (prefix probabilities)
* ``standard`` (whole-ranking IPS): no assumption about clicks,
      w_ik = pi(a_i1..a_iK) / p(a_i1..a_iK)                     (the whole ranking's probability)
  unbiased under any click model, and the most variable.

Then V = (1 / (n K)) sum_i sum_k w_ik r_ik; the resampling unit of the bootstrap is the ranking
(one request), and the effective sample size is that of the n K weighted slot impressions. Each
assumption is unbiased when it holds and the logging policy gives every ranking the target can show
a positive probability. The pseudo-inverse estimator (Swaminathan et al. 2017) assumes an additive
slate reward, which the ``independent`` weights already exploit here, so it is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ._arrays import FloatArray, as_matrix, frozen
from .errors import InvalidConfigError, InvalidLogError, InvalidPolicyError
from .estimators import EstimatorConfig, OffPolicyEstimate, summarise_ratio

__all__ = ["RANKING_ASSUMPTIONS", "RankingAssumption", "RankingFeedback", "ranking_ips"]

RankingAssumption = Literal["independent", "cascade", "standard"]
RANKING_ASSUMPTIONS: dict[str, str] = {
    "independent": "independent-item (position-wise) IPS: a slot's click depends only on the item there",
    "cascade": "cascade IPS: a slot's click depends on the items at and above it (top-down scanning)",
    "standard": "whole-ranking IPS: no assumption on clicks, weight = ratio of the whole ranking's probabilities",
}
_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class RankingFeedback:
    """n logged rankings of K slots, all (n, K) matrices.

    ``rewards[i, k]``: click on slot k. ``*_marginals[i, k]``: the policy's probability of putting the
    logged item a_ik at slot k. ``*_prefixes[i, k]``: its probability of the logged top-(k+1) prefix
    a_i1..a_ik (so column 0 equals the marginal at slot 0, and the last column is the whole ranking).
    Logging probabilities must be in (0, 1], target ones in [0, 1].
    """

    rewards: FloatArray
    logging_marginals: FloatArray
    target_marginals: FloatArray
    logging_prefixes: FloatArray
    target_prefixes: FloatArray

    def __post_init__(self) -> None:
        rewards = as_matrix(self.rewards, "rewards")
        if rewards.shape[0] < 2:
            raise InvalidLogError(f"need at least 2 logged rankings for an interval, got {rewards.shape[0]}")
        for name, error, low_open in (
            ("logging_marginals", InvalidLogError, True),
            ("target_marginals", InvalidPolicyError, False),
            ("logging_prefixes", InvalidLogError, True),
            ("target_prefixes", InvalidPolicyError, False),
        ):
            matrix = as_matrix(getattr(self, name), name)
            if matrix.shape != rewards.shape:
                raise InvalidLogError(f"{name} has shape {matrix.shape} but rewards {rewards.shape}")
            outside = ((matrix <= 0) if low_open else (matrix < 0)) | (matrix > 1)
            if outside.any():
                row, slot = (int(v) for v in np.argwhere(outside)[0])
                allowed = "(0, 1]" if low_open else "[0, 1]"
                raise error(f"{name} must lie in {allowed}: ranking {row}, slot {slot} is {matrix[row, slot]}")
            object.__setattr__(self, name, frozen(matrix))
        object.__setattr__(self, "rewards", frozen(rewards))
        for who, error in (("logging", InvalidLogError), ("target", InvalidPolicyError)):
            _check_prefixes(getattr(self, f"{who}_marginals"), getattr(self, f"{who}_prefixes"), who, error)

    @property
    def n(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def slots(self) -> int:
        return int(self.rewards.shape[1])


def _check_prefixes(
    marginals: FloatArray, prefixes: FloatArray, who: str, error: type[InvalidLogError] | type[InvalidPolicyError]
) -> None:
    # A longer prefix is a smaller event, and "the prefix up to k" implies "this item at k".
    if np.any(np.diff(prefixes, axis=1) > _TOLERANCE):
        raise error(f"{who} prefix probabilities must not increase along the ranking (a longer prefix is rarer)")
    if np.any(prefixes > marginals + _TOLERANCE):
        raise error(f"{who} prefix probabilities cannot exceed the marginal probability of the same slot")
    if not np.allclose(prefixes[:, 0], marginals[:, 0], atol=_TOLERANCE):
        raise error(f"{who} prefix and marginal probabilities of the first slot must be equal")


def ranking_ips(
    feedback: RankingFeedback, assumption: RankingAssumption, config: EstimatorConfig | None = None
) -> OffPolicyEstimate:
    """IPS of the CTR per slot impression under ``assumption`` (see the module docstring for the weights)."""
    config = config or EstimatorConfig()
    if assumption == "independent":
        raw = feedback.target_marginals / feedback.logging_marginals
    elif assumption == "cascade":
        raw = feedback.target_prefixes / feedback.logging_prefixes
    elif assumption == "standard":
        whole = feedback.target_prefixes[:, -1] / feedback.logging_prefixes[:, -1]
        raw = np.repeat(whole[:, None], feedback.slots, axis=1)
    else:
        raise InvalidConfigError(f"assumption must be one of {sorted(RANKING_ASSUMPTIONS)}, got {assumption!r}")
    weights: npt.NDArray[np.float64] = raw if config.clip is None else np.minimum(raw, config.clip)
    n_clipped = 0 if config.clip is None else int(np.count_nonzero(raw > config.clip))
    numerator = (weights * feedback.rewards).sum(axis=1) / feedback.slots
    return summarise_ratio(
        f"IPS ({assumption})",
        RANKING_ASSUMPTIONS[assumption],
        numerator,
        np.ones(feedback.n),
        weights.ravel(),
        n_clipped,
        config,
    )
