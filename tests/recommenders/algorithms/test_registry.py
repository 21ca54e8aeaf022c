from __future__ import annotations

import pytest

from recommenders.algorithms import registry
from recommenders.algorithms.base import RecommenderError
from tests.recommenders.algorithms.conftest import toy_data

HERE = "tests.recommenders.algorithms.custom_algorithms"


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_paths", dict(registry._paths))
    monkeypatch.setattr(registry, "_loaded", dict(registry._loaded))


def test_a_complete_class_registers_under_its_name_and_works() -> None:
    name = registry.register_dotted_path(f"{HERE}.ReverseIndexRecommender")

    model = registry.get(name)()
    model.fit(toy_data())

    assert name == "test_reverse_index"
    assert name in registry.names()
    assert [r.item_id for r in model.recommend("u4", k=2)] == ["saw", "plum"]


def test_registering_the_same_path_twice_is_harmless() -> None:
    registry.register_dotted_path(f"{HERE}.ReverseIndexRecommender")
    assert registry.register_dotted_path(f"{HERE}.ReverseIndexRecommender") == "test_reverse_index"


def test_a_class_that_is_not_a_recommender_is_refused() -> None:
    with pytest.raises(RecommenderError, match="does not implement the recommender interface"):
        registry.register_dotted_path(f"{HERE}.NotARecommender")


def test_a_class_missing_score_is_refused_naming_the_method() -> None:
    with pytest.raises(RecommenderError, match="does not implement _score"):
        registry.register_dotted_path(f"{HERE}.MissingScoreRecommender")


def test_a_class_whose_params_is_not_a_dataclass_is_refused() -> None:
    with pytest.raises(RecommenderError, match="Params must be a dataclass"):
        registry.register_dotted_path(f"{HERE}.PlainParamsRecommender")


def test_a_class_without_a_name_is_refused() -> None:
    with pytest.raises(RecommenderError, match="must set the class attribute `name`"):
        registry.register_dotted_path(f"{HERE}.NamelessRecommender")


def test_a_class_taking_a_builtin_name_is_refused() -> None:
    with pytest.raises(RecommenderError, match=r"already taken by recommenders\.algorithms\.popularity"):
        registry.register_dotted_path(f"{HERE}.PopularityImpostor")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("JustAName", "is not a dotted path"),
        ("no_such_package.module.Thing", "Cannot import 'no_such_package.module'"),
        (f"{HERE}.NoSuchClass", "has no class 'NoSuchClass'"),
    ],
)
def test_a_bad_path_gets_a_clear_error(path: str, message: str) -> None:
    with pytest.raises(RecommenderError, match=message):
        registry.register_dotted_path(path)
