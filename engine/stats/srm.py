"""Sample ratio mismatch (SRM) check: Pearson chi-square goodness of fit of arm sizes.

    E_i = N w_i / sum(w),   chi2 = sum_i (O_i - E_i)^2 / E_i,   p = P(chi2_{k-1} >= chi2)

(Pearson 1900; scipy.stats.chisquare.) A tiny p-value means the traffic split is not what was
configured, so every other result of the experiment is suspect. The conventional alarm threshold
is 0.001 (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch"; GrowthBook's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._validation import check_alpha, check_finite, check_int
from .errors import DegenerateDataError, InvalidDataError

__all__ = ["SrmConfig", "SrmResult", "srm_test"]


@dataclass(frozen=True, slots=True)
class SrmConfig:
    """``alpha``: alarm threshold for the SRM p-value."""

    alpha: float = 0.001

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha))


@dataclass(frozen=True, slots=True)
class SrmResult:
    chi2: float
    p_value: float
    dof: int
    mismatch: bool
    alpha: float
    observed: list[int]
    expected: list[float]


def srm_test(observed_counts: Sequence[int], expected_weights: Sequence[float], alpha: float = 0.001) -> SrmResult:
    """Chi-square goodness-of-fit test of observed arm sizes against configured weights."""
    config = SrmConfig(alpha=alpha)
    observed = [check_int(c, f"observed_counts[{i}]", minimum=0) for i, c in enumerate(observed_counts)]
    weights = [check_finite(w, f"expected_weights[{i}]") for i, w in enumerate(expected_weights)]
    if len(observed) < 2:
        raise InvalidDataError(f"SRM needs at least 2 arms, got {len(observed)}")
    if len(weights) != len(observed):
        raise InvalidDataError(f"{len(observed)} observed counts but {len(weights)} expected weights")
    if any(w <= 0 for w in weights):
        raise InvalidDataError("expected_weights must all be > 0 (an arm with weight 0 cannot receive traffic)")
    total = sum(observed)
    if total == 0:
        raise DegenerateDataError("no units observed in any arm: nothing to test")
    obs = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    expected = total * w / w.sum()
    chi2 = float(np.sum((obs - expected) ** 2 / expected))
    dof = len(observed) - 1
    p_value = float(special.chdtrc(dof, chi2))
    return SrmResult(
        chi2=chi2,
        p_value=p_value,
        dof=dof,
        mismatch=p_value < config.alpha,
        alpha=config.alpha,
        observed=observed,
        expected=[float(e) for e in expected],
    )
