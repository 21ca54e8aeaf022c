"""Multiple-testing adjustment of p-values (several metrics or arms in one experiment).

holm (controls the family-wise error rate; Holm 1979), with p_(1) <= ... <= p_(m):
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))
bh (controls the false discovery rate; Benjamini & Hochberg 1995):
    adj_(i) = min_{j >= i} min(1, m p_(j) / j)
bonferroni: adj_i = min(1, m p_i).
Identical to statsmodels ``multipletests(method="holm" | "fdr_bh" | "bonferroni")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._validation import check_alpha, check_choice
from .errors import InvalidDataError

__all__ = ["AdjustedPValues", "MultipleTestingConfig", "adjust_pvalues"]

Method = Literal["holm", "bh", "bonferroni"]
METHODS: tuple[str, ...] = ("holm", "bh", "bonferroni")


@dataclass(frozen=True, slots=True)
class MultipleTestingConfig:
    method: Method = "holm"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "method")
        object.__setattr__(self, "alpha", check_alpha(self.alpha))


@dataclass(frozen=True, slots=True)
class AdjustedPValues:
    method: str
    alpha: float
    p_values: list[float]
    adjusted: list[float]
    rejected: list[bool]


def adjust_pvalues(p_values: Sequence[float], method: Method = "holm", alpha: float = 0.05) -> AdjustedPValues:
    """Adjust ``p_values`` (in their given order) by Holm, Benjamini-Hochberg or Bonferroni."""
    config = MultipleTestingConfig(method=method, alpha=alpha)
    try:
        p = np.asarray(list(p_values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"p_values must be numbers: {exc}") from exc
    if p.ndim != 1 or p.size == 0:
        raise InvalidDataError("p_values must be a non-empty flat sequence")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InvalidDataError("every p-value must be a finite number in [0, 1]")
    m = p.size
    if config.method == "bonferroni":
        adjusted = np.minimum(1.0, m * p)
    else:
        order = np.argsort(p, kind="stable")
        sorted_p = p[order]
        ranks = np.arange(1, m + 1, dtype=np.float64)
        if config.method == "holm":
            stepped = np.maximum.accumulate(np.minimum(1.0, (m - ranks + 1.0) * sorted_p))
        else:
            stepped = np.minimum.accumulate(np.minimum(1.0, m * sorted_p / ranks)[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = stepped
    return AdjustedPValues(
        method=config.method,
        alpha=config.alpha,
        p_values=[float(v) for v in p],
        adjusted=[float(v) for v in adjusted],
        rejected=[bool(v) for v in adjusted <= config.alpha],
    )
