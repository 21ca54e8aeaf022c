"""One exception family for impossible bandit inputs.

All are ``ValueError`` subclasses (a bad value, never a bug in the core), so the Django layer can
catch ``BanditError`` once and show the message.
"""

from __future__ import annotations

__all__ = ["BanditError", "DegenerateBanditDataError", "InvalidBanditConfigError", "InvalidBanditDataError"]


class BanditError(ValueError):
    """Base class: the inputs cannot produce weights or an analysis."""


class InvalidBanditConfigError(BanditError):
    """A configuration value is out of range (floor too large for the number of arms, bad prior, ...)."""


class InvalidBanditDataError(BanditError):
    """Counts or served weights are impossible (negative, successes > trials, mismatched arms, ...)."""


class DegenerateBanditDataError(BanditError):
    """The data are valid but support no comparison (e.g. no period in which both arms got users)."""
