"""Answering recommendation requests from trained variants, from memory.

Each artifact is loaded once per process and kept, keyed by its sha256 (so a retrained
version is a new key and an unchanged one is never read twice); the cache keeps the
`CACHE_SIZE` most recently used models. `recommend_from_run` also remembers the last
`TOP_LISTS` answers without a query, so a returning user's list is not scored again.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

from recommenders import artifacts
from recommenders.algorithms.base import Recommendation, Recommender
from recommenders.models import TrainingRun, Variant
from recommenders.services.variants import find_variant

CACHE_SIZE = 16
TOP_LISTS = 20_000  # remembered (model, user, k) answers per process: about 2 KB each at k = 10

_models: LRUCache[str, Recommender] = LRUCache(maxsize=CACHE_SIZE)  # by artifact sha256
_top_lists: LRUCache[tuple[str, str, int], tuple[Recommendation, ...]] = LRUCache(maxsize=TOP_LISTS)
_lock = threading.Lock()  # both caches reorder themselves on reads too: every access holds it


class NotTrained(Exception):
    pass


def model_for(variant: Variant) -> Recommender:
    """The fitted model of the variant version's latest successful training run."""
    run = variant.latest_successful_run()
    if run is None:
        raise NotTrained(f"{variant.label} has no successful training run yet; train it first.")
    return model_for_run(run)


def model_for_run(run: TrainingRun) -> Recommender:
    key = run.artifact_sha256
    with _lock:
        model = _models.get(key)
    if model is not None:
        return model
    model = artifacts.load_model(run.artifact_path, key)  # outside the lock: loading may take a while
    with _lock:
        _models[key] = model
    return model


def recommend_from_run(run: TrainingRun, user_id: str, k: int, query: str | None = None) -> list[Recommendation]:
    """`model_for_run(run).recommend(user_id, k, query)`, answers without a query remembered (LRU).

    Exact, not an approximation: a loaded model never changes (a retrained version is a new
    artifact, so a new sha256 key) and `recommend` is a pure function of (model, user, k,
    query), so a remembered list is the list scoring would give again. Answers to a query are
    not kept: free text rarely repeats. Saves the scoring (about 0.3 ms for item-kNN on the
    Online Retail data) for a user served again within the last TOP_LISTS answers.
    """
    if query:
        return model_for_run(run).recommend(user_id, k, query)
    key = (run.artifact_sha256, user_id, k)
    with _lock:
        remembered = _top_lists.get(key)
    if remembered is not None:
        return list(remembered)
    answer = model_for_run(run).recommend(user_id, k, None)
    with _lock:
        _top_lists[key] = tuple(answer)
    return answer


def recommend(variant: Variant | str, user_id: str, k: int = 10, query: str | None = None) -> list[Recommendation]:
    """Top-k items for `user_id` from a variant version (a Variant or "name@version"); seen items excluded."""
    if isinstance(variant, str):
        variant = find_variant(variant)
    return model_for(variant).recommend(user_id, k, query or None)


def clear_cache() -> None:
    with _lock:
        _models.clear()
        _top_lists.clear()
