"""Weighted blend of component recommenders, with per-user normalised scores.

    score(u, i) = Σ_c w_c · norm_u(s_c(u, ·))_i

`norm_u` rescales each component's scores for user u before blending, so that weights
compare like with like:

* "minmax" (default): (s - min) / (max - min), min and max taken over the items u has NOT
  seen (seen items are removed from recommendations anyway, and their typically large
  scores, e.g. in item-kNN, would otherwise squash everybody else's range); a constant row
  becomes 0;
* "zscore": (s - mean) / std over the same unseen items.

Two ways to build one:

1. From parameters (the registry way): `HybridRecommender({"components": [{"algorithm":
   "ease", "params": {"l2": 300}, "weight": 0.7}, {"algorithm": "als", "weight": 0.3}]})`,
   then `fit(data)` fits every component on the same data. With `learn_weights` the given
   weights are ignored: part of each user's training interactions (`validation_fraction`,
   per-user stratified split) is held out, components are fitted on the rest, every weight
   vector on a simplex grid of step `grid_step` is scored by NDCG@10 on the held-out part,
   the best one is kept (reported in `FitReport.notes`), and the components are refitted on
   all the data.
2. From already-fitted recommenders: `HybridRecommender.from_fitted([(model_a, 0.6),
   (model_b, 0.4)])` blends trained variants as they are (no fitting). Their user and item
   ids are matched by id; an item a component does not know scores 0 there after
   normalisation, and a user it does not know gets that component's cold-start scores.

A query is passed to the components that support one. Cold-start users get the blend of
the components' `cold_start_scores` (so a content component still ranks by the query).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommenders.algorithms import registry
from recommenders.algorithms.base import (
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    RecommenderError,
    TrainingData,
    top_k,
)

NORMALISATIONS = ("minmax", "zscore")
_COMPONENT_KEYS = {"algorithm", "params", "weight"}
_MAX_GRID_POINTS = 5000


@dataclass(frozen=True)
class HybridParams:
    """`components`: list of {"algorithm": name, "params": {...} (optional), "weight": w ≥ 0 (default 1)}.

    `learn_weights` holds one float32 (validation users x items) score matrix per component
    while searching, so `max_validation_users` bounds its memory.
    """

    components: list[dict[str, Any]] = field(default_factory=list)
    normalisation: str = "minmax"
    learn_weights: bool = False
    validation_fraction: float = 0.2
    grid_step: float = 0.1
    max_validation_users: int = 2000
    seed: int = 42

    def __post_init__(self) -> None:
        if not isinstance(self.components, list) or not self.components:
            raise ParameterError("components", "expected a non-empty list of {algorithm, params, weight}")
        for position, component in enumerate(self.components):
            _check_component(f"components[{position}]", component)
        if self.normalisation not in NORMALISATIONS:
            raise ParameterError("normalisation", f"must be one of {', '.join(NORMALISATIONS)}")
        if not self.learn_weights and sum(float(c.get("weight", 1.0)) for c in self.components) <= 0:
            raise ParameterError("components", "at least one weight must be positive")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ParameterError("validation_fraction", "must lie strictly between 0 and 1")
        if not 0.0 < self.grid_step <= 1.0:
            raise ParameterError("grid_step", "must lie in (0, 1]")
        if self.learn_weights and _grid_size(len(self.components), self.grid_step) > _MAX_GRID_POINTS:
            raise ParameterError(
                "grid_step", f"too fine for {len(self.components)} components (> {_MAX_GRID_POINTS} points)"
            )
        if self.max_validation_users < 1:
            raise ParameterError("max_validation_users", "must be at least 1")


def _check_component(where: str, component: Any) -> None:
    if not isinstance(component, Mapping):
        raise ParameterError(where, "expected a mapping with keys algorithm, params, weight")
    unknown = sorted(set(component) - _COMPONENT_KEYS)
    if unknown:
        raise ParameterError(f"{where}.{unknown[0]}", "unknown key; allowed: algorithm, params, weight")
    algorithm = component.get("algorithm")
    if not isinstance(algorithm, str):
        raise ParameterError(f"{where}.algorithm", "expected an algorithm name")
    if algorithm == HybridRecommender.name:
        raise ParameterError(f"{where}.algorithm", "a hybrid cannot contain a hybrid")
    try:
        cls = registry.get(algorithm)
    except RecommenderError as error:
        raise ParameterError(f"{where}.algorithm", str(error)) from None
    try:
        cls.parse_params(component.get("params") or {})
    except ParameterError as error:
        raise ParameterError(f"{where}.params.{error.field}", error.message) from None
    weight = component.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ParameterError(f"{where}.weight", f"expected a number ≥ 0, got {weight!r}")


def _grid_size(n: int, step: float) -> int:
    from math import comb

    return comb(round(1.0 / step) + n - 1, n - 1)


def simplex_grid(n: int, step: float) -> list[FloatArray]:
    """Every weight vector of n non-negative multiples of `step` summing to 1."""
    units = round(1.0 / step)
    points = []
    for cuts in itertools.combinations(range(units + n - 1), n - 1):
        # Stars and bars: the gaps between n-1 cut positions are the n unit counts.
        bounds = (-1, *cuts, units + n - 1)
        counts = [bounds[i + 1] - bounds[i] - 1 for i in range(n)]
        points.append(np.asarray(np.asarray(counts, dtype=np.float32) / units, dtype=np.float32))
    return points


def _describe_fitted(components: Sequence[tuple[Recommender, float]], normalisation: str) -> HybridParams:
    """Params recording a blend of already-built models, for display and stored runs.

    They are not validated against the registry (the models exist already, and a custom
    class need not be registered to be blended), so __post_init__ is bypassed on purpose.
    """
    if normalisation not in NORMALISATIONS:
        raise ParameterError("normalisation", f"must be one of {', '.join(NORMALISATIONS)}")
    params = object.__new__(HybridParams)
    values = {f.name: f.default for f in dataclasses.fields(HybridParams) if f.default is not dataclasses.MISSING}
    values["components"] = [{"algorithm": m.name or type(m).__name__, "weight": float(w)} for m, w in components]
    values["normalisation"] = normalisation
    for name, value in values.items():
        object.__setattr__(params, name, value)
    return params


class _Alignment:
    """Maps hybrid user/item indices to one component's (-1 where the component lacks the id)."""

    def __init__(self, users: IntArray | None, items: IntArray | None) -> None:
        self.users = users
        self.items = items


class HybridRecommender(Recommender):
    name = "hybrid"
    Params = HybridParams
    params: HybridParams
    # Class level: a hybrid may use a query. An instance says whether it does (any component does).
    supports_query = True

    def __init__(self, params: Mapping[str, Any] | Any | None = None) -> None:
        super().__init__(params)
        self.components: list[Recommender] = []
        self.weights: FloatArray = np.zeros(0, dtype=np.float32)
        self._alignments: list[_Alignment] = []

    # ---- construction from fitted components -------------------------------------------
    @classmethod
    def from_fitted(
        cls, components: Sequence[tuple[Recommender, float]], *, normalisation: str = "minmax"
    ) -> HybridRecommender:
        """Blend already-fitted recommenders with the given weights (no training happens)."""
        if not components:
            raise RecommenderError("from_fitted needs at least one (recommender, weight) pair.")
        for model, weight in components:
            model._require_fitted()
            if weight < 0:
                raise ParameterError("weight", f"weights must be ≥ 0, got {weight}")
        hybrid = cls.__new__(cls)
        Recommender.__init__(hybrid, _describe_fitted(components, normalisation))
        hybrid.components = [m for m, _ in components]
        hybrid.weights = np.asarray([w for _, w in components], dtype=np.float32)
        if hybrid.weights.sum() <= 0:
            raise ParameterError("weight", "at least one weight must be positive")
        hybrid._adopt_ids()
        return hybrid

    def _adopt_ids(self) -> None:
        """Take the union of the components' ids (first component's order first) and align."""
        user_ids = list(dict.fromkeys(u for m in self.components for u in m.user_ids))
        item_ids = list(dict.fromkeys(it for m in self.components for it in m.item_ids))
        self.user_ids, self.item_ids = tuple(user_ids), tuple(item_ids)
        self._user_pos = {u: i for i, u in enumerate(user_ids)}
        self._item_pos = {it: j for j, it in enumerate(item_ids)}
        self._alignments = [self._align(m) for m in self.components]
        seen = sp.csr_matrix((len(user_ids), len(item_ids)), dtype=np.float32)
        popularity = np.zeros(len(item_ids), dtype=np.float32)
        for model in self.components:
            rows = np.asarray([self._user_pos[u] for u in model.user_ids], dtype=np.int64)
            cols = np.asarray([self._item_pos[it] for it in model.item_ids], dtype=np.int64)
            coo = model.seen.tocoo()
            seen = seen + sp.csr_matrix(
                (np.ones(coo.nnz, dtype=np.float32), (rows[coo.row], cols[coo.col])), shape=seen.shape
            )
            popularity[cols] = np.maximum(popularity[cols], model.popularity)
        seen.data[:] = 1.0
        self.seen = seen
        self.popularity = popularity
        vars(self)["supports_query"] = any(m.supports_query for m in self.components)
        self._fitted = True

    def _align(self, model: Recommender) -> _Alignment:
        users = None
        if model.user_ids != self.user_ids:
            position = {u: i for i, u in enumerate(model.user_ids)}
            users = np.asarray([position.get(u, -1) for u in self.user_ids], dtype=np.int64)
        items = None
        if model.item_ids != self.item_ids:
            position = {it: j for j, it in enumerate(model.item_ids)}
            items = np.asarray([position.get(it, -1) for it in self.item_ids], dtype=np.int64)
        return _Alignment(users, items)

    # ---- training -------------------------------------------------------------------------
    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        specs = self.params.components
        notes: dict[str, Any] = {}
        weights = np.asarray([float(c.get("weight", 1.0)) for c in specs], dtype=np.float32)
        refit_start = 0.0
        if self.params.learn_weights and len(specs) > 1:
            weights, notes = self._learn_weights(data, lambda f, m: progress(0.5 * f, m))
            refit_start = 0.5
        self.components = self._fit_components(data, lambda f, m: progress(refit_start + (1.0 - refit_start) * f, m))
        self.weights = weights
        self._adopt_ids()
        notes["weights"] = [float(w) for w in weights]
        return FitReport(notes=notes)

    def _fit_components(self, data: TrainingData, progress: ProgressCallback) -> list[Recommender]:
        fitted = []
        specs = self.params.components
        for position, spec in enumerate(specs):
            model = registry.get(spec["algorithm"])(spec.get("params") or {})

            def scaled(fraction: float, message: str, position: int = position, name: str = spec["algorithm"]) -> None:
                progress((position + fraction) / len(specs), f"{name}: {message}")

            model.fit(data, scaled)
            scaled(1.0, "fitted")  # not every algorithm reports its own end
            fitted.append(model)
        return fitted

    def _learn_weights(self, data: TrainingData, progress: ProgressCallback) -> tuple[FloatArray, dict[str, Any]]:
        """Grid search of the blend weights by NDCG@10 on a per-user held-out part of `data`."""
        from recommenders.evaluation.metrics import ndcg_at_k
        from recommenders.evaluation.splits import stratified_split

        p = self.params
        fit_part, held_out = stratified_split(data, 1.0 - p.validation_fraction, p.seed)
        probe = HybridRecommender(p)
        probe.components = probe._fit_components(fit_part, lambda f, m: progress(0.8 * f, m))
        probe.weights = np.ones(len(probe.components), dtype=np.float32)
        probe._adopt_ids()
        held = held_out.matrix(binary=True)
        candidates = np.flatnonzero((np.diff(held.indptr) > 0) & (np.diff(probe.seen.indptr) > 0))
        rng = np.random.default_rng(p.seed)
        if len(candidates) > p.max_validation_users:
            candidates = np.sort(rng.choice(candidates, p.max_validation_users, replace=False))
        if len(candidates) == 0:
            raise RecommenderError("learn_weights: no user has both fitting and held-out interactions.")
        seen = probe.seen[candidates].toarray() > 0
        normalised = [probe._normalised(c, candidates, None, seen) for c in range(len(probe.components))]
        relevant = held[candidates].toarray() > 0
        n_relevant = relevant.sum(axis=1).astype(np.int64)
        best, best_ndcg = None, -1.0
        grid = simplex_grid(len(normalised), p.grid_step)
        for weights in grid:
            blended = np.zeros_like(normalised[0])
            for weight, scores in zip(weights, normalised, strict=True):
                if weight > 0:
                    blended += weight * scores
            blended[seen] = -np.inf
            top = top_k(blended, 10)
            ndcg = ndcg_at_k(np.take_along_axis(relevant, top, axis=1), n_relevant, 10)
            if ndcg > best_ndcg:
                best, best_ndcg = weights, ndcg
        progress(1.0, "weights chosen")
        assert best is not None
        return best, {"validation_ndcg_at_10": best_ndcg, "validation_users": len(candidates), "grid_points": len(grid)}

    # ---- scoring ------------------------------------------------------------------------
    def _component_scores(self, c: int, users: IntArray, query: str | None) -> FloatArray:
        """Component c's raw scores for hybrid user indices, in the hybrid's item order."""
        model, alignment = self.components[c], self._alignments[c]
        query = query if model.supports_query else None
        own = alignment.users[users] if alignment.users is not None else users
        warm = own >= 0
        warm[warm] = np.diff(model.seen.indptr)[own[warm]] > 0
        raw = np.empty((len(users), len(model.item_ids)), dtype=np.float32)
        raw[~warm] = model.cold_start_scores(query)[None, :]
        if warm.any():
            raw[warm] = model.score_users(own[warm], query)
        if alignment.items is None:
            return raw
        # Items this component does not know get its lowest score (0 after normalisation).
        out = np.repeat(raw.min(axis=1, keepdims=True), len(self.item_ids), axis=1)
        known = alignment.items >= 0
        out[:, known] = raw[:, alignment.items[known]]
        return out

    def _normalised(self, c: int, users: IntArray, query: str | None, seen: np.ndarray) -> FloatArray:
        scores = self._component_scores(c, users, query)
        return normalise_rows(scores, seen, self.params.normalisation)

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        seen = self.seen[users].toarray() > 0
        total = np.zeros((len(users), len(self.item_ids)), dtype=np.float32)
        for c, weight in enumerate(self.weights):
            if weight > 0:
                total += weight * self._normalised(c, users, query, seen)
        return total

    def cold_start_scores(self, query: str | None = None) -> FloatArray:
        """Blend of the components' cold-start scores, normalised the same way."""
        nothing_seen = np.zeros((1, len(self.item_ids)), dtype=bool)
        total = np.zeros(len(self.item_ids), dtype=np.float32)
        for c, weight in enumerate(self.weights):
            if weight > 0:
                total += weight * self._normalised_cold(c, query, nothing_seen)[0]
        return total

    def _normalised_cold(self, c: int, query: str | None, seen: np.ndarray) -> FloatArray:
        model, alignment = self.components[c], self._alignments[c]
        raw = model.cold_start_scores(query if model.supports_query else None)[None, :]
        if alignment.items is not None:
            out = np.full((1, len(self.item_ids)), raw.min(), dtype=np.float32)
            known = alignment.items >= 0
            out[:, known] = raw[:, alignment.items[known]]
            raw = out
        return normalise_rows(np.asarray(raw, dtype=np.float32), seen, self.params.normalisation)


def normalise_rows(scores: FloatArray, seen: np.ndarray, method: str) -> FloatArray:
    """Per-row min-max or z-score, with the statistics taken over the unseen cells only.

    Reductions use numpy's `where=` instead of masked copies of the block: this runs for
    every component and every batch of users, so each avoided full-size temporary counts.
    """
    unseen = ~seen
    count = np.maximum(unseen.sum(axis=1, keepdims=True), 1)
    if method == "zscore":
        mean = np.sum(scores, axis=1, where=unseen, keepdims=True) / count
        centred = np.asarray(scores - mean, dtype=np.float32)
        squares = np.square(centred)
        std = np.sqrt(np.sum(squares, axis=1, where=unseen, keepdims=True) / count)
        centred /= np.where(std > 0, std, 1.0)
        return centred
    low = np.min(scores, axis=1, where=unseen, initial=np.inf, keepdims=True)
    high = np.max(scores, axis=1, where=unseen, initial=-np.inf, keepdims=True)
    span = high - low
    ok = np.isfinite(span) & (span > 0)
    result = np.asarray(scores - np.where(ok, low, 0.0), dtype=np.float32)
    result /= np.where(ok, span, 1.0)
    result[~ok[:, 0]] = 0.0
    return result
