"""Deterministic traffic bucketing: which users enter an experiment and which arm they see.

Django-free (pure Python + numpy). The scalar functions serve live requests; the ``*_many`` /
``buckets`` functions compute exactly the same values for whole arrays (the simulator, backfills).

The hash (version 1, pinned by reference values in the tests; changing anything here moves users
between arms of running experiments)::

    seed    = fmix64(fnv1a64(utf8(salt)))                       # once per salt, cached
    k_j     = fmix64((seed + (j + 1) * 0x9E3779B97F4A7C15) mod 2**64) | 1     j = 0, 1, 2, ...
    w_j     = j-th 8-byte little-endian word of utf8(user_id), the last one zero-padded
    h       = fmix64(seed XOR (sum_j w_j * k_j mod 2**64))      # the 64-bit hash, ``hash64``
    bucket  = ((h mod 2**32) * 10_000) >> 32                    # low half  -> 0..9,999
    point   = ((h >> 32) * 10_000) >> 32                        # high half -> 0..9,999 (arm choice)

``fnv1a64`` is 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) and ``fmix64`` is
MurmurHash3's finaliser (``h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33``, all mod 2**64). Why this shape: the per-salt multipliers
make the user-id pass one multiply-add per 8 bytes (a few big-int operations in Python, one
column operation in numpy, both wrapping mod 2**64 identically), and the final fmix64 supplies the
avalanche that a bare multiply-add lacks (without it, sequential ids would land on a lattice and
two salts' buckets would be linearly related). Python's ``hash()`` is never used: it is salted per
process. Consequence of the zero padding: trailing NUL characters of an id do not change its hash
(numpy's fixed-width byte strings cannot represent them anyway).

Assignment scheme (see ``assign``)::

    entry bucket  b = bucket(layer.salt if layered else salt, user_id)
    in experiment    iff  start <= b < start + round(traffic * (end - start))
    arm              = first i with point(salt, user_id) < arm_bounds[i]
                       arm_bounds[i] = round(10_000 * (w_0 + ... + w_i) / sum(w))

The arm never depends on ``traffic``, and the admitted offsets only grow with it, so ramping up
keeps every admitted user in the same arm and ramping down only removes users. Experiments in one
layer share the layer's salt, hence the same entry bucket per user, and own disjoint
``[start, end)`` ranges, so a user is in at most one of them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BUCKETS",
    "HASH_VERSION",
    "Allocation",
    "Assignment",
    "AssignmentArrays",
    "BucketingError",
    "InvalidArmError",
    "InvalidLayerRangeError",
    "InvalidSaltError",
    "InvalidTrafficError",
    "InvalidUserIdsError",
    "InvalidWeightsError",
    "LayerOverlapError",
    "LayerSlot",
    "assign",
    "assign_many",
    "assignment_probability",
    "bucket",
    "buckets",
    "check_layer",
    "hash64",
    "hash64_many",
    "layer_ranges",
]

BUCKETS: Final = 10_000
HASH_VERSION: Final = 1

_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_MASK32: Final = 0xFFFF_FFFF
_FNV_OFFSET: Final = 0xCBF2_9CE4_8422_2325
_FNV_PRIME: Final = 0x0000_0100_0000_01B3
_FMIX_C1: Final = 0xFF51_AFD7_ED55_8CCD
_FMIX_C2: Final = 0xC4CE_B9FE_1A85_EC53
_GOLDEN: Final = 0x9E37_79B9_7F4A_7C15
# Multipliers precomputed per salt: covers ids up to 64 UTF-8 bytes without extra work.
_PRECOMPUTED_WORDS: Final = 8


# --- errors -----------------------------------------------------------------------------------


class BucketingError(ValueError):
    """Base class: an allocation, salt or id that cannot be bucketed. Always a bad value."""


class InvalidSaltError(BucketingError):
    """The salt is not a non-empty string."""


class InvalidTrafficError(BucketingError):
    """``traffic`` is not a finite number in [0, 1]."""


class InvalidWeightsError(BucketingError):
    """Arm weights are empty, negative, non-finite or all zero."""


class InvalidLayerRangeError(BucketingError):
    """A layer range is not ``0 <= start < end <= 10_000`` or layer shares are impossible."""


class LayerOverlapError(InvalidLayerRangeError):
    """Two experiments of one layer claim the same buckets (or the slots name different layers)."""


class InvalidArmError(BucketingError):
    """An arm index outside ``0 .. len(weights) - 1``."""


class InvalidUserIdsError(BucketingError):
    """The vectorised functions got something that is not a 1-D collection of string ids."""


# --- the hash ---------------------------------------------------------------------------------


def _fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser (a bijection on 0 .. 2**64 - 1 with full avalanche)."""
    h ^= h >> 33
    h = (h * _FMIX_C1) & _MASK64
    h ^= h >> 33
    h = (h * _FMIX_C2) & _MASK64
    return h ^ (h >> 33)


def _fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def _multiplier(seed: int, j: int) -> int:
    """k_j: odd, so multiplying by it is a bijection mod 2**64 and no input bit is discarded."""
    return _fmix64((seed + (j + 1) * _GOLDEN) & _MASK64) | 1


@lru_cache(maxsize=4096)
def _salt_state(salt: str) -> tuple[int, tuple[int, ...]]:
    """(seed, k_0 .. k_7) of a salt; cached because every request of an experiment reuses its salt."""
    if not isinstance(salt, str) or not salt:
        raise InvalidSaltError(f"salt must be a non-empty string, got {salt!r}")
    seed = _fmix64(_fnv1a64(salt.encode("utf-8")))
    return seed, tuple(_multiplier(seed, j) for j in range(_PRECOMPUTED_WORDS))


def _hash_with(seed: int, ks: tuple[int, ...], user_id: str) -> int:
    # Hot path (one call per live assignment): ids of up to 16 bytes, the common case, avoid the
    # loop. int.from_bytes pads the missing high bytes of the last word with zeros, exactly like
    # the zero padding of numpy's fixed-width byte strings.
    try:
        data = user_id.encode("utf-8")
    except AttributeError:  # try costs nothing on the hot path in 3.11; isinstance would not
        raise InvalidUserIdsError(f"user_id must be str, got {type(user_id).__name__}: {user_id!r}") from None
    size = len(data)
    if size <= 8:
        acc = int.from_bytes(data, "little") * ks[0]
    elif size <= 16:
        x = int.from_bytes(data, "little")
        acc = (x & _MASK64) * ks[0] + (x >> 64) * ks[1]
    else:
        x = int.from_bytes(data, "little")
        acc = 0
        for j in range((size + 7) // 8):
            k = ks[j] if j < len(ks) else _multiplier(seed, j)
            acc += ((x >> (64 * j)) & _MASK64) * k
    h = seed ^ (acc & _MASK64)
    h ^= h >> 33
    h = (h * _FMIX_C1) & _MASK64
    h ^= h >> 33
    h = (h * _FMIX_C2) & _MASK64
    return h ^ (h >> 33)


def hash64(salt: str, user_id: str) -> int:
    """The 64-bit hash ``h`` of (salt, user_id) defined in the module docstring."""
    seed, ks = _salt_state(salt)
    return _hash_with(seed, ks, user_id)


def bucket(salt: str, user_id: str) -> int:
    """The user's bucket in 0 .. 9,999: ``((hash64 mod 2**32) * 10_000) >> 32``.

    Deterministic across processes, machines and Python versions (UTF-8 bytes and integer
    arithmetic only). Equal to ``buckets(salt, [user_id])[0]``.
    """
    seed, ks = _salt_state(salt)
    return ((_hash_with(seed, ks, user_id) & _MASK32) * BUCKETS) >> 32


def _as_bytes_array(user_ids: Sequence[str] | NDArray[np.generic]) -> NDArray[np.bytes_]:
    """UTF-8 encode ids into a 1-D fixed-width bytes array (dtype ``S``)."""
    if isinstance(user_ids, np.ndarray):
        array: NDArray[np.generic] = user_ids
        if array.ndim != 1:
            raise InvalidUserIdsError(f"user_ids must be 1-D, got shape {array.shape}")
        if array.dtype.kind == "S":
            return array  # type: ignore[return-value]  # kind "S" is exactly NDArray[np.bytes_]
        if array.dtype.kind == "U":
            try:
                return array.astype("S")  # ASCII: C speed
            except UnicodeEncodeError:
                return np.strings.encode(array, "utf-8")  # type: ignore[arg-type]  # kind "U" checked above
        if array.dtype.kind != "O":
            raise InvalidUserIdsError(f"user_ids must be strings, got an array of dtype {array.dtype}")
        user_ids = array.tolist()
    if isinstance(user_ids, str | bytes):
        raise InvalidUserIdsError("user_ids must be a sequence of ids, not a single string")
    ids = user_ids if isinstance(user_ids, list) else list(user_ids)
    # numpy would silently turn 7 into b"7" and None into b"None"; set(map(type, ...)) runs at C
    # speed (a generator with isinstance costs more than the hashing itself).
    types = set(map(type, ids))
    if types - {str}:
        bad = next(u for u in ids if type(u) is not str)
        raise InvalidUserIdsError(f"user ids must be str, got {type(bad).__name__}: {bad!r}")
    try:
        # numpy encodes str as ASCII at C speed and raises for anything else.
        return np.array(ids, dtype="S")
    except UnicodeEncodeError:
        return np.array([u.encode("utf-8") for u in ids], dtype="S")


def _words(data: NDArray[np.bytes_]) -> NDArray[np.uint64]:
    """View an ``S`` array as rows of little-endian uint64 words (zero-padded to a multiple of 8)."""
    width = data.dtype.itemsize
    padded = -(-width // 8) * 8
    if padded != width:
        data = data.astype(f"S{padded}")
    data = np.ascontiguousarray(data)
    return data.view(np.dtype("<u8")).reshape(len(data), padded // 8)


def _hash_words(seed: int, ks: tuple[int, ...], words: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # Columns of padding are zero and add nothing, so the result does not depend on the width
    # numpy chose for the array (the longest id), only on each id's own bytes.
    n_words = words.shape[1]
    acc = words[:, 0] * np.uint64(ks[0])
    scratch = np.empty_like(acc)
    for j in range(1, n_words):
        k = ks[j] if j < len(ks) else _multiplier(seed, j)
        np.multiply(words[:, j], np.uint64(k), out=scratch)
        acc += scratch
    h = acc
    h ^= np.uint64(seed)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_FMIX_C1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_FMIX_C2)
    h ^= h >> np.uint64(33)
    return h


def hash64_many(salt: str, user_ids: Sequence[str] | NDArray[np.generic]) -> NDArray[np.uint64]:
    """``hash64`` for every id (uint64 array). Accepts str sequences and ``U``/``S``/object arrays.

    ``S`` arrays are taken as UTF-8 bytes as they are; pass them to skip the encoding step.
    """
    seed, ks = _salt_state(salt)
    data = _as_bytes_array(user_ids)
    if len(data) == 0:
        return np.zeros(0, dtype=np.uint64)
    return _hash_words(seed, ks, _words(data))


def _low_bucket(h: NDArray[np.uint64]) -> NDArray[np.int64]:
    return (((h & np.uint64(_MASK32)) * np.uint64(BUCKETS)) >> np.uint64(32)).astype(np.int64)


def _high_point(h: NDArray[np.uint64]) -> NDArray[np.int64]:
    return (((h >> np.uint64(32)) * np.uint64(BUCKETS)) >> np.uint64(32)).astype(np.int64)


def buckets(salt: str, user_ids: Sequence[str] | NDArray[np.generic]) -> NDArray[np.int64]:
    """Vectorised ``bucket``: int64 array of buckets in 0 .. 9,999, identical to the scalar path."""
    return _low_bucket(hash64_many(salt, user_ids))


# --- allocation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayerSlot:
    """The buckets ``[start, end)`` of a layer (identified by its ``salt``) that one experiment owns."""

    salt: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not isinstance(self.salt, str) or not self.salt:
            raise InvalidSaltError(f"LayerSlot.salt must be a non-empty string, got {self.salt!r}")
        for name, value in (("start", self.start), ("end", self.end)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidLayerRangeError(f"LayerSlot.{name} must be an integer, got {value!r}")
        start, end = int(self.start), int(self.end)
        if not 0 <= start < end <= BUCKETS:
            raise InvalidLayerRangeError(
                f"layer range must satisfy 0 <= start < end <= {BUCKETS}, got [{start}, {end})"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Allocation:
    """How an experiment admits and splits users.

    ``traffic``: fraction in [0, 1] of the eligible users in the experiment's range who enter.
    ``weights``: relative arm weights (>= 0, sum > 0), normalised; arm i gets
    ``arm_bounds[i] - arm_bounds[i - 1]`` of the 10,000 arm points (resolution 1/10,000, so a
    weight below 0.005 % of the total may round to an empty arm).
    ``layer``: the layer slot this experiment owns, or None for the whole population.
    Changing ``traffic`` never moves a user between arms; changing ``weights`` or the layer
    ``start`` does, so keep them fixed while an experiment runs.
    """

    traffic: float
    weights: Sequence[float]
    layer: LayerSlot | None = None
    arm_bounds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    entry_count: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        traffic = self.traffic
        if isinstance(traffic, bool) or not isinstance(traffic, int | float | np.floating | np.integer):
            raise InvalidTrafficError(f"traffic must be a number in [0, 1], got {traffic!r}")
        traffic = float(traffic)
        if not (math.isfinite(traffic) and 0.0 <= traffic <= 1.0):
            raise InvalidTrafficError(f"traffic must be in [0, 1], got {traffic!r}")
        weights = _check_weights(self.weights)
        total = math.fsum(weights)
        running = 0.0
        bounds = []
        for w in weights:
            running += w
            bounds.append(round(BUCKETS * running / total))
        bounds[-1] = BUCKETS  # rounding of the running sum must not leave points unassigned
        if self.layer is not None and not isinstance(self.layer, LayerSlot):
            raise InvalidLayerRangeError(f"layer must be a LayerSlot or None, got {self.layer!r}")
        size = self.layer.size if self.layer is not None else BUCKETS
        object.__setattr__(self, "traffic", traffic)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "arm_bounds", tuple(bounds))
        # round(), not floor(): 0.29 * 100 is 28.999999999999996 in floating point.
        object.__setattr__(self, "entry_count", round(traffic * size))

    @property
    def arms(self) -> int:
        return len(self.weights)


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence | np.ndarray):
        raise InvalidWeightsError(f"weights must be a sequence of numbers, got {weights!r}")
    values = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float | np.floating | np.integer):
            raise InvalidWeightsError(f"arm weights must be numbers, got {w!r}")
        value = float(w)
        if not math.isfinite(value) or value < 0.0:
            raise InvalidWeightsError(f"arm weights must be finite and >= 0, got {list(weights)!r}")
        values.append(value)
    if not values:
        raise InvalidWeightsError("an allocation needs at least one arm weight")
    if math.fsum(values) <= 0.0:
        raise InvalidWeightsError(f"arm weights must not all be zero, got {values!r}")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One user's outcome: ``arm`` (None when not in the experiment) and the entry ``bucket``.

    ``bucket`` is the layer's bucket for a layered experiment, the experiment's own otherwise.
    """

    arm: int | None
    bucket: int
    in_experiment: bool


@dataclass(frozen=True, slots=True)
class AssignmentArrays:
    """Vectorised ``Assignment``: ``arm`` is -1 where ``in_experiment`` is False."""

    arm: NDArray[np.int64]
    bucket: NDArray[np.int64]
    in_experiment: NDArray[np.bool_]


# Building a frozen dataclass costs three object.__setattr__ calls, about a third of an
# assignment. Assignments are immutable values determined by (arm, bucket), so equal ones are
# shared; the key space is at most 10,000 x (arms + 1) and the cap bounds memory regardless.
# Threads (Django's) need no lock: dict reads and writes are atomic, and a race only builds an
# equal object twice.
_ASSIGNMENTS: dict[int, Assignment] = {}
_ASSIGNMENTS_CAP: Final = 1 << 18


def _assignment(arm: int | None, bucket_: int) -> Assignment:
    key = (0 if arm is None else arm + 1) * BUCKETS + bucket_
    found = _ASSIGNMENTS.get(key)
    if found is None:
        found = Assignment(arm, bucket_, arm is not None)
        if len(_ASSIGNMENTS) < _ASSIGNMENTS_CAP:
            _ASSIGNMENTS[key] = found
    return found


def assign(allocation: Allocation, salt: str, user_id: str) -> Assignment:
    """Assign one user (see the module docstring for the scheme).

    Unlayered: one hash of (salt, user_id); its low half is the entry bucket, its high half the
    arm point. Layered: the entry bucket is ``bucket(layer.salt, user_id)`` and the arm point comes
    from the hash of (salt, user_id), computed only for admitted users.
    """
    seed, ks = _salt_state(salt)
    layer = allocation.layer
    if layer is None:
        h = _hash_with(seed, ks, user_id)
        entry = ((h & _MASK32) * BUCKETS) >> 32
        if entry >= allocation.entry_count:
            return _assignment(None, entry)
    else:
        layer_seed, layer_ks = _salt_state(layer.salt)
        entry = ((_hash_with(layer_seed, layer_ks, user_id) & _MASK32) * BUCKETS) >> 32
        if not layer.start <= entry < layer.start + allocation.entry_count:
            return _assignment(None, entry)
        h = _hash_with(seed, ks, user_id)
    return _assignment(bisect_right(allocation.arm_bounds, ((h >> 32) * BUCKETS) >> 32), entry)


def assign_many(allocation: Allocation, salt: str, user_ids: Sequence[str] | NDArray[np.generic]) -> AssignmentArrays:
    """Vectorised ``assign``; element i equals ``assign(allocation, salt, user_ids[i])``."""
    seed, ks = _salt_state(salt)
    layer = allocation.layer
    data = _as_bytes_array(user_ids)
    n = len(data)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return AssignmentArrays(arm=empty, bucket=empty.copy(), in_experiment=np.zeros(0, dtype=np.bool_))
    words = _words(data)
    if layer is None:
        h = _hash_words(seed, ks, words)
        entry = _low_bucket(h)
        admitted = entry < allocation.entry_count
        points = _high_point(h[admitted])
    else:
        layer_seed, layer_ks = _salt_state(layer.salt)
        entry = _low_bucket(_hash_words(layer_seed, layer_ks, words))
        admitted = (entry >= layer.start) & (entry < layer.start + allocation.entry_count)
        # Only admitted users need the experiment's own hash: a small slot of a layer is cheap.
        points = _high_point(_hash_words(seed, ks, words[admitted]))
    arm = np.full(n, -1, dtype=np.int64)
    arm[admitted] = np.searchsorted(np.asarray(allocation.arm_bounds, dtype=np.int64), points, side="right")
    return AssignmentArrays(arm=arm, bucket=entry, in_experiment=admitted)


def assignment_probability(allocation: Allocation, arm: int) -> float:
    """P(a random eligible user is shown ``arm``) = entry share x arm share, as realised.

    = (entry_count / 10,000) x ((arm_bounds[arm] - arm_bounds[arm - 1]) / 10,000), which is
    traffic x layer share x normalised weight up to the 1/10,000 rounding of each factor. This is
    the propensity off-policy estimators need; it assumes the hash is uniform (tested).
    """
    if isinstance(arm, bool) or not isinstance(arm, int | np.integer) or not 0 <= arm < allocation.arms:
        raise InvalidArmError(f"arm must be an integer in [0, {allocation.arms}), got {arm!r}")
    arm = int(arm)
    lower = allocation.arm_bounds[arm - 1] if arm > 0 else 0
    return (allocation.entry_count / BUCKETS) * ((allocation.arm_bounds[arm] - lower) / BUCKETS)


# --- layers -----------------------------------------------------------------------------------


def layer_ranges(shares: Sequence[float], start: int = 0) -> list[tuple[int, int]]:
    """Carve consecutive disjoint ``[start, end)`` ranges from ``start`` for experiments of one layer.

    ``shares`` are fractions of all 10,000 buckets (each > 0, total <= 1 minus what ``start``
    already used). Bounds are the rounded running sums, so the ranges tile without gaps or
    overlaps. Pass ``start`` = the end of the last range in use to add experiments later without
    moving anyone already bucketed.
    """
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= BUCKETS:
        raise InvalidLayerRangeError(f"start must be an integer in [0, {BUCKETS}], got {start!r}")
    ranges: list[tuple[int, int]] = []
    running = start / BUCKETS
    lower = start
    for share in shares:
        if isinstance(share, bool) or not isinstance(share, int | float) or not (math.isfinite(share) and share > 0):
            raise InvalidLayerRangeError(f"layer shares must be finite and > 0, got {list(shares)!r}")
        running += share
        upper = round(running * BUCKETS)
        if upper > BUCKETS:
            raise InvalidLayerRangeError(f"layer shares {list(shares)!r} from bucket {start} exceed the 10,000 buckets")
        if upper <= lower:
            raise InvalidLayerRangeError(f"layer share {share!r} rounds to an empty range at bucket {lower}")
        ranges.append((lower, upper))
        lower = upper
    return ranges


def check_layer(slots: Sequence[LayerSlot]) -> None:
    """Raise ``LayerOverlapError`` unless the slots share one layer salt and are pairwise disjoint.

    Then every user's layer bucket falls in at most one slot, so they enter at most one experiment.
    """
    salts = {slot.salt for slot in slots}
    if len(salts) > 1:
        raise LayerOverlapError(f"slots of one layer must share its salt, got {sorted(salts)!r}")
    ordered = sorted(slots, key=lambda slot: (slot.start, slot.end))
    for before, after in pairwise(ordered):
        if after.start < before.end:
            raise LayerOverlapError(
                f"layer ranges [{before.start}, {before.end}) and [{after.start}, {after.end}) overlap"
            )
