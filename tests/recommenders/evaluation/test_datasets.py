from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.recommenders.algorithms.shared_data import SHARED_DATA, movielens, online_retail, require_data


def test_movielens_100k_is_read_with_titles_and_genres() -> None:
    data = movielens()

    assert (data.n_users, data.n_items, len(data.value)) == (943, 1682, 100_000)
    toy_story = data.item_ids.index("1")
    assert data.item_text[toy_story] == "Toy Story (1995)"
    assert data.item_category[toy_story] == "Animation Children's Comedy"
    assert sorted(np.unique(data.value).tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_online_retail_recommender_view_has_the_documented_counts() -> None:
    data = online_retail()

    assert (len(data.value), data.n_users, data.n_items) == (397_924, 4_339, 3_665)
    assert data.item_text[data.item_ids.index("85123A")] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert (data.value > 0).all()


def test_missing_shared_data_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        require_data("no-such-set", root=tmp_path)


def test_missing_shared_data_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set, so this is a failure"):
        require_data("no-such-set", root=tmp_path)


def test_shared_data_is_found_relative_to_the_repository() -> None:
    assert SHARED_DATA.resolve().parts[-2:] == ("shared", "data")
