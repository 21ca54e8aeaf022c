"""One exception family for every input the off-policy estimators cannot use.

Callers (a Celery task, a page, the bench) catch ``OffPolicyError`` to cover every case; the
subclasses say whose fault it is: the logs, the target policy, the configuration, or data that are
valid but say nothing about the target. All are ``ValueError`` subclasses: each is a bad value,
never a bug in the estimators.
"""

from __future__ import annotations

__all__ = ["DegenerateLogError", "InvalidConfigError", "InvalidLogError", "InvalidPolicyError", "OffPolicyError"]


class OffPolicyError(ValueError):
    """Base class: the inputs cannot produce a meaningful off-policy estimate."""


class InvalidLogError(OffPolicyError):
    """The logged data are impossible: length mismatch, NaN/missing values, propensity <= 0 or > 1, ..."""


class InvalidPolicyError(OffPolicyError):
    """The target policy is not a probability distribution (negative, > 1, rows not summing to 1, bad shape)."""


class InvalidConfigError(OffPolicyError):
    """An estimator setting is out of range (confidence outside (0, 1), clip <= 0, too few resamples, ...)."""


class DegenerateLogError(OffPolicyError):
    """The logs are valid but cannot support an estimate of this target.

    Example: the target gives probability 0 to every logged action, so every importance weight is 0
    and the logs carry no information about it. Raised instead of returning NaN.
    """
