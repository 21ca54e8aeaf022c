"""Argument checks shared by the allocation and the analysis, so both word their errors alike."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidBanditDataError

__all__ = ["check_count"]


def check_count(value: Any, name: str) -> int:
    """``value`` as a plain int >= 0 (numpy ints accepted, so ``asdict`` stays JSON-ready; bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidBanditDataError(f"{name} must be an integer count, got {value!r}")
    if value < 0:
        raise InvalidBanditDataError(f"{name} must be >= 0, got {value}")
    return int(value)
