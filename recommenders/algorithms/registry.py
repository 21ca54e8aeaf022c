"""The registry of algorithm classes: built-in ones by dotted path, plus extras from settings.

Classes are imported on first use so that asking for the list of algorithms does not
import TensorFlow. `register_dotted_path` checks that an extra class implements the
`Recommender` interface and explains what is missing when it does not.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

from recommenders.algorithms.base import Recommender, RecommenderError

BUILTIN: dict[str, str] = {
    "popularity": "recommenders.algorithms.popularity.PopularityRecommender",
    "content_tfidf": "recommenders.algorithms.content.TfidfContentRecommender",
    "item_knn": "recommenders.algorithms.neighbourhood.ItemKnnRecommender",
    "ease": "recommenders.algorithms.ease.EaseRecommender",
    "als": "recommenders.algorithms.factorization.AlsRecommender",
    "bpr": "recommenders.algorithms.factorization.BprRecommender",
    "deep_mlp": "recommenders.algorithms.deep.MlpRecommender",
    "two_tower": "recommenders.algorithms.deep.TwoTowerRecommender",
    "hybrid": "recommenders.algorithms.hybrid.HybridRecommender",
}

_paths: dict[str, str] = dict(BUILTIN)
_loaded: dict[str, type[Recommender]] = {}


class UnknownAlgorithm(RecommenderError):
    pass


def names() -> list[str]:
    """Registered algorithm names, sorted."""
    return sorted(_paths)


def get(name: str) -> type[Recommender]:
    """The class registered under `name`; UnknownAlgorithm lists the known names."""
    if name not in _paths:
        raise UnknownAlgorithm(f"Unknown algorithm {name!r}; known: {', '.join(names())}.")
    if name not in _loaded:
        _loaded[name] = _import_class(_paths[name])
    return _loaded[name]


def register_dotted_path(path: str) -> str:
    """Register an extra algorithm class given as 'package.module.ClassName'; returns its name."""
    cls = _import_class(path)
    if not cls.name:
        raise RecommenderError(f"{path} must set the class attribute `name` (its registry key).")
    if cls.name in _paths and _paths[cls.name] != path:
        raise RecommenderError(f"{path} uses the name {cls.name!r}, already taken by {_paths[cls.name]}.")
    _paths[cls.name] = path
    _loaded[cls.name] = cls
    return cls.name


def _import_class(path: str) -> type[Recommender]:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise RecommenderError(f"{path!r} is not a dotted path of the form 'package.module.ClassName'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RecommenderError(f"Cannot import {module_name!r} for algorithm {path!r}: {error}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise RecommenderError(f"Module {module_name!r} has no class {class_name!r}.")
    if not (inspect.isclass(cls) and issubclass(cls, Recommender)):
        raise RecommenderError(
            f"{path} does not implement the recommender interface: subclass "
            "recommenders.algorithms.base.Recommender and implement _fit and _score."
        )
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise RecommenderError(f"{path} does not implement {', '.join(missing)} of the recommender interface.")
    if not dataclasses.is_dataclass(cls.Params):
        raise RecommenderError(f"{path}.Params must be a dataclass (its fields are the parameters, with defaults).")
    return cls
