"""Answering recommendation requests from trained variants, from memory.

Each artifact is loaded once per process and kept, keyed by its sha256 (so a retrained
version is a new key and an unchanged one is never read twice); the cache keeps the
`CACHE_SIZE` most recently used models.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from recommenders import artifacts
from recommenders.algorithms.base import Recommendation, Recommender
from recommenders.models import TrainingRun, Variant
from recommenders.services.variants import find_variant

CACHE_SIZE = 16

_models: OrderedDict[str, Recommender] = OrderedDict()
_lock = threading.Lock()


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
            _models.move_to_end(key)
            return model
    model = artifacts.load_model(run.artifact_path, key)  # outside the lock: loading may take a while
    with _lock:
        _models[key] = model
        while len(_models) > CACHE_SIZE:
            _models.popitem(last=False)
    return model


def recommend(variant: Variant | str, user_id: str, k: int = 10, query: str | None = None) -> list[Recommendation]:
    """Top-k items for `user_id` from a variant version (a Variant or "name@version"); seen items excluded."""
    if isinstance(variant, str):
        variant = find_variant(variant)
    return model_for(variant).recommend(user_id, k, query or None)


def clear_cache() -> None:
    with _lock:
        _models.clear()
