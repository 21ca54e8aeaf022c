"""One exception family for every impossible input to the statistics engine.

Callers (the Django app, the bench) catch ``StatisticError`` to cover every case; the subclasses
only exist so a caller can tell "you passed nonsense" apart from "the data cannot support a test yet".
All are ``ValueError`` subclasses because every one of them is a bad value, never a bug in the engine.
"""

from __future__ import annotations

__all__ = ["DegenerateDataError", "InvalidDataError", "InvalidParameterError", "StatisticError"]


class StatisticError(ValueError):
    """Base class: the inputs cannot produce a meaningful (finite, defined) result."""


class InvalidParameterError(StatisticError):
    """A method parameter is out of range or unknown (alpha outside (0, 1), unknown method name, ...)."""


class InvalidDataError(StatisticError):
    """A sufficient statistic is impossible (n <= 0, successes > n, negative variance, non-finite sum, ...)."""


class DegenerateDataError(StatisticError):
    """The data are valid but cannot support the requested inference.

    Examples: n < 2 (no variance estimate), zero variance in both arms, zero control mean for a
    relative difference. Raised instead of returning NaN or infinity.
    """
