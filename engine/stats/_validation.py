"""Small argument checks shared by every method, so each message says what was wrong and why."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import InvalidDataError, InvalidParameterError

__all__ = ["check_alpha", "check_choice", "check_finite", "check_int", "check_probability"]


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float, requiring 0 < alpha < 1 (a significance level or error rate)."""
    try:
        value = float(alpha)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a number in (0, 1), got {alpha!r}") from exc
    if not (0.0 < value < 1.0):
        raise InvalidParameterError(f"{name} must lie strictly between 0 and 1, got {alpha!r}")
    return value


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as a float, requiring 0 < value < 1 (an open-interval rate such as a baseline)."""
    return check_alpha(value, name)


def check_choice(value: str, choices: Iterable[str], name: str) -> str:
    """Reject unknown method names early instead of silently falling back to a default."""
    allowed = tuple(choices)
    if value not in allowed:
        raise InvalidParameterError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return value


def check_int(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` as a Python int (numpy ints accepted; bools and floats rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidDataError(f"{name} must be an integer count, got {value!r} ({type(value).__name__})")
    result = int(value)
    if result < minimum:
        raise InvalidDataError(f"{name} must be >= {minimum}, got {result}")
    return result


def check_finite(value: Any, name: str) -> float:
    """Return ``value`` as a finite float; NaN/inf inputs would silently poison every downstream number."""
    if isinstance(value, bool):
        raise InvalidDataError(f"{name} must be a number, got a bool")
    try:
        result = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(result):
        raise InvalidDataError(f"{name} must be finite, got {value!r}")
    return result
