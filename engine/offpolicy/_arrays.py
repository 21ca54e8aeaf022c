"""Input validation shared by the estimators and the slate layer: 1-D arrays, finite, clear messages."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import InvalidLogError

__all__ = ["FloatArray", "IntArray", "as_index_vector", "as_matrix", "as_vector", "frozen"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def frozen(arr: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """A read-only copy, so a frozen dataclass really is immutable (nobody edits a validated log in place)."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def as_vector(values: npt.ArrayLike, name: str, hint: str = "") -> FloatArray:
    """1-D float64 array without NaN/inf; the message names the column, the count and the first bad row."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidLogError(f"{name} must be numbers: {error}") from error
    if arr.ndim != 1:
        raise InvalidLogError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidLogError(
            f"{name} has {int(bad.sum())} missing or non-finite value(s) (first at row {first}: {arr[first]})"
            + (f"; {hint}" if hint else "")
        )
    return arr


def as_index_vector(values: npt.ArrayLike, name: str, size: int) -> IntArray:
    """1-D integer array with every value in [0, size): item ids and slot indices."""
    arr = as_vector(values, name)
    as_int = arr.astype(np.int64)
    if np.any(as_int != arr):
        first = int(np.flatnonzero(as_int != arr)[0])
        raise InvalidLogError(f"{name} must be integers, row {first} is {arr[first]}")
    outside = (as_int < 0) | (as_int >= size)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise InvalidLogError(f"{name} must lie in [0, {size}), row {first} is {as_int[first]}")
    return as_int


def as_matrix(values: npt.ArrayLike, name: str) -> FloatArray:
    """2-D float64 array (units x slots) without NaN/inf."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidLogError(f"{name} must be numbers: {error}") from error
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidLogError(f"{name} must be a (units, slots) matrix, got shape {arr.shape}")
    as_vector(arr.ravel(), name)  # the same NaN message, with the flat index
    return arr
