"""The one interface every recommender algorithm implements (Django-free).

Data arrive as `TrainingData`: interactions as parallel numpy arrays over dense user and
item indices, plus the external ids and item text. An algorithm subclasses `Recommender`,
declares a frozen `Params` dataclass (validated by `parse_params`), and implements
`_fit` and `_score`. The base class owns what every algorithm shares, so that each family
module stays small:

* index maps between external ids and dense indices;
* the seen-item matrix, used to exclude already-seen items from recommendations;
* the cold-start fallback: a user with no history (unknown id or no interactions) gets the
  most popular items of the training data, ranked by interaction count; never an error;
* artifacts: `save` / `load` pickle the fitted object into one file (algorithms holding
  objects that do not pickle, e.g. Keras models, override `__getstate__`/`__setstate__`).
"""

from __future__ import annotations

import dataclasses
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

ProgressCallback = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], a short message) during long work."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class RecommenderError(Exception):
    """Base of the errors an algorithm raises on bad input."""


class ParameterError(RecommenderError):
    """A parameter is unknown, of the wrong type or out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFittedError(RecommenderError):
    """`recommend`, `score` or `save` was called before `fit`."""


@dataclass(frozen=True)
class TrainingData:
    """Interactions over dense indices: row i is (user_index[i], item_index[i], value[i], timestamp[i]).

    `user_ids[u]` / `item_ids[j]` are the external ids of user index u / item index j.
    `item_text[j]` is the item's title, description and category joined (may be empty).
    `value` is the rating or quantity (1.0 when the event has no value); `timestamp` is
    in epoch seconds.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    user_index: IntArray
    item_index: IntArray
    value: FloatArray
    timestamp: IntArray
    item_text: tuple[str, ...] = ()
    item_category: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.user_index)
        for name in ("item_index", "value", "timestamp"):
            if len(getattr(self, name)) != n:
                raise RecommenderError(f"TrainingData.{name} has {len(getattr(self, name))} rows, expected {n}.")
        if n and (self.user_index.min() < 0 or self.user_index.max() >= len(self.user_ids)):
            raise RecommenderError("TrainingData.user_index points outside user_ids.")
        if n and (self.item_index.min() < 0 or self.item_index.max() >= len(self.item_ids)):
            raise RecommenderError("TrainingData.item_index points outside item_ids.")
        for name in ("item_text", "item_category"):
            values = getattr(self, name)
            if values and len(values) != len(self.item_ids):
                raise RecommenderError(f"TrainingData.{name} must have one entry per item.")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def matrix(self, *, binary: bool = True) -> sp.csr_matrix:
        """User x item CSR matrix; duplicates are summed (or set to 1 when `binary`)."""
        data = np.ones(len(self.user_index), dtype=np.float32) if binary else self.value.astype(np.float32)
        m = sp.csr_matrix(
            (data, (self.user_index, self.item_index)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def take(self, rows: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> TrainingData:
        """The same catalogue and users (same id tuples, so indices agree) with only `rows` kept.

        `rows` is a boolean mask or an array of row positions; splits are built from this.
        """
        return dataclasses.replace(
            self,
            user_index=self.user_index[rows],
            item_index=self.item_index[rows],
            value=self.value[rows],
            timestamp=self.timestamp[rows],
        )

    @classmethod
    def from_records(
        cls,
        users: Sequence[str],
        items: Sequence[str],
        values: Sequence[float] | None = None,
        timestamps: Sequence[int] | None = None,
        *,
        item_ids: Sequence[str] | None = None,
        item_text: Mapping[str, str] | None = None,
        item_category: Mapping[str, str] | None = None,
    ) -> TrainingData:
        """Build from parallel lists of external ids (handy in tests and importers).

        `item_ids` fixes the catalogue (items nobody interacted with included); by default
        it is the sorted set of `items`.
        """
        user_labels = tuple(sorted(set(users)))
        item_labels = tuple(item_ids) if item_ids is not None else tuple(sorted(set(items)))
        u_pos = {u: i for i, u in enumerate(user_labels)}
        i_pos = {it: j for j, it in enumerate(item_labels)}
        try:
            item_index = np.fromiter((i_pos[it] for it in items), dtype=np.int64, count=len(items))
        except KeyError as missing:
            raise RecommenderError(f"Interaction names item {missing} which is not in the catalogue.") from None
        n = len(users)
        return cls(
            user_ids=user_labels,
            item_ids=item_labels,
            user_index=np.fromiter((u_pos[u] for u in users), dtype=np.int64, count=n),
            item_index=item_index,
            value=np.asarray(values if values is not None else np.ones(n), dtype=np.float32),
            timestamp=np.asarray(timestamps if timestamps is not None else np.zeros(n), dtype=np.int64),
            item_text=tuple((item_text or {}).get(it, "") for it in item_labels) if item_text else (),
            item_category=tuple((item_category or {}).get(it, "") for it in item_labels) if item_category else (),
        )


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float


@dataclass(frozen=True)
class FitReport:
    """What training measured, stored with the run: e.g. {"loss": [0.69, 0.41, ...]} per epoch."""

    history: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoParams:
    """For algorithms without parameters."""


class Recommender(ABC):
    """Fit on `TrainingData`, then score or recommend for known and unknown users.

    Subclasses set `name` (the registry key), `Params` (a frozen dataclass whose fields
    have defaults) and `supports_query` (True when `_score` uses a free-text query), and
    implement `_fit` and `_score`. `_score` receives dense user indices of known users
    and returns a float32 array (len(users), n_items); higher is better.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    supports_query: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | Any | None = None) -> None:
        self.params = params if dataclasses.is_dataclass(params) else self.parse_params(params or {})
        self._fitted = False

    # ---- parameters -------------------------------------------------------------
    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> Any:
        """Validate `raw` against `Params`: unknown keys and wrong types raise ParameterError.

        Range checks live in the dataclass's `__post_init__`, raising ParameterError.
        """
        if not isinstance(raw, Mapping):
            raise ParameterError("params", f"expected a mapping of parameter names to values, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ParameterError(
                unknown[0], f"unknown parameter for {cls.name}; allowed: {', '.join(sorted(fields)) or 'none'}"
            )
        values: dict[str, Any] = {}
        for key, value in raw.items():
            declared = fields[key].type
            expected = declared if isinstance(declared, type) else None
            default = fields[key].default
            kind = expected or (type(default) if default is not dataclasses.MISSING and default is not None else None)
            values[key] = _coerce(key, value, kind)
        try:
            return cls.Params(**values)
        except TypeError as error:
            raise ParameterError("params", str(error)) from None

    @classmethod
    def params_schema(cls) -> dict[str, dict[str, Any]]:
        """{name: {"type": ..., "default": ...}} for forms and API documentation."""
        schema: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(cls.Params):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            schema[f.name] = {
                "type": type(default).__name__ if default is not None else str(f.type),
                "default": default,
            }
        return schema

    # ---- training ---------------------------------------------------------------
    def fit(self, data: TrainingData, progress: ProgressCallback | None = None) -> FitReport:
        if len(data.user_index) == 0:
            raise RecommenderError("Cannot fit on a data set without interactions.")
        self.user_ids = data.user_ids
        self.item_ids = data.item_ids
        self._user_pos = {u: i for i, u in enumerate(data.user_ids)}
        self._item_pos = {it: j for j, it in enumerate(data.item_ids)}
        self.seen = data.matrix(binary=True)
        counts = np.bincount(data.item_index, minlength=data.n_items).astype(np.float32)
        self.popularity = counts / max(float(counts.max()), 1.0)
        report = self._fit(data, progress or _no_progress)
        self._fitted = True
        return report

    @abstractmethod
    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport: ...

    @abstractmethod
    def _score(self, users: IntArray, query: str | None = None) -> FloatArray: ...

    # ---- scoring ----------------------------------------------------------------
    def score_users(self, users: IntArray, query: str | None = None) -> FloatArray:
        """Scores of every item for known user indices (seen items not removed)."""
        self._require_fitted()
        return np.asarray(self._score(np.asarray(users, dtype=np.int64), query), dtype=np.float32)

    def has_history(self, user_index: int) -> bool:
        """True when the known user index has at least one training interaction.

        Splits keep every user in the id tuples, so a known index can still have no history;
        such users get the cold-start fallback like unknown ids.
        """
        return bool(self.seen.indptr[user_index + 1] > self.seen.indptr[user_index])

    def cold_start_scores(self, query: str | None = None) -> FloatArray:
        """Scores for a user without history: popularity (algorithms may override, e.g. by query)."""
        return self.popularity.copy()

    def recommend(
        self, user_id: str, k: int = 10, query: str | None = None, *, exclude_seen: bool = True
    ) -> list[Recommendation]:
        """Top-k items for an external user id, best first; seen items excluded.

        An unknown user, or one with no training interactions, gets `cold_start_scores`.
        """
        self._require_fitted()
        if k <= 0:
            raise RecommenderError(f"k must be positive, got {k}.")
        pos = self._user_pos.get(user_id)
        if pos is None or not self.has_history(pos):
            scores = self.cold_start_scores(query).copy()
        else:
            scores = self.score_users(np.array([pos]), query)[0].copy()
            if exclude_seen:
                seen = self.seen.indices[self.seen.indptr[pos] : self.seen.indptr[pos + 1]]
                scores[seen] = -np.inf
        top = top_k(scores[None, :], k)[0]
        return [Recommendation(self.item_ids[j], float(scores[j])) for j in top if np.isfinite(scores[j])]

    # ---- artifacts --------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the fitted model to one file at `path` (callers make the write atomic)."""
        self._require_fitted()
        with open(path, "wb") as handle:
            pickle.dump(self, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(path: Path) -> Recommender:
        with open(path, "rb") as handle:
            model = pickle.load(handle)
        if not isinstance(model, Recommender):
            raise RecommenderError(f"{path} does not hold a recommender model.")
        return model

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} must be fitted first.")


def top_k(scores: npt.NDArray[np.floating[Any]], k: int) -> IntArray:
    """Indices of the k highest scores per row, best first (ties: lower index first).

    Ties are honoured also at the cut-off: when several items share the k-th score, the
    lowest indices get in (argpartition alone would pick among them arbitrarily).
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k == n_items:
        chosen = np.broadcast_to(np.arange(n_items), scores.shape)
    else:
        chosen = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, chosen, axis=1)
        threshold = part_scores.min(axis=1, keepdims=True)
        # argpartition's choice is already the answer unless the k-th score is tied with
        # an item left outside: only those rows need the tie-aware selection (a cumulative
        # count over the whole row, the costly part, so it is not paid for every row).
        ambiguous = np.flatnonzero((scores == threshold).sum(axis=1) > (part_scores == threshold).sum(axis=1))
        if len(ambiguous):
            rows = scores[ambiguous]
            above = rows > threshold[ambiguous]
            at = rows == threshold[ambiguous]
            room = k - above.sum(axis=1, keepdims=True)
            keep = above | (at & (np.cumsum(at, axis=1) <= room))
            # Exactly k cells per row are kept; nonzero returns them row by row in index order.
            chosen[ambiguous] = np.nonzero(keep)[1].reshape(len(ambiguous), k)
    chosen_scores = np.take_along_axis(scores, chosen, axis=1)
    order = np.lexsort((chosen, -chosen_scores), axis=1)
    return np.asarray(np.take_along_axis(chosen, order, axis=1), dtype=np.int64)


# Below this many users a scorer multiplies directly: the column blocks pay off over a batch
# (evaluation, simulation), but for one serving request they cost a pass over the whole matrix.
FEW_USERS = 32


def sparse_times_column_blocks(
    rows: sp.csr_matrix,
    column_block: Callable[[int, int], npt.NDArray[np.float32]],
    n_columns: int,
    width: int | None = None,
) -> FloatArray:
    """rows @ M as float32, where `column_block(start, stop)` gives M[:, start:stop] as a dense array.

    scipy multiplies a CSR matrix by a dense M one stored entry at a time, adding a whole
    row of M for each; when M is larger than the CPU caches (EASE's items x items weights:
    54 MB for Online Retail) every one of those rows comes from memory. Blocks of about
    4 MB of M's columns stay cached across the batch: ~40 % less CPU for EASE and item-kNN
    scoring on Online Retail, with the same sums in the same order (identical scores).
    `width` (columns per block) defaults to that 4 MB budget.
    """
    out = np.empty((rows.shape[0], n_columns), dtype=np.float32)
    width = width or max(32, (1 << 20) // max(rows.shape[1], 1))
    for start in range(0, n_columns, width):
        stop = min(start + width, n_columns)
        out[:, start:stop] = rows @ np.ascontiguousarray(column_block(start, stop), dtype=np.float32)
    return out


def _coerce(key: str, value: Any, kind: type | None) -> Any:
    if kind is None or value is None:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(key, f"expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ParameterError(key, f"expected a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(key, f"expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ParameterError(key, f"expected text, got {value!r}")
        return value
    return value


def _no_progress(fraction: float, message: str) -> None:
    return None
