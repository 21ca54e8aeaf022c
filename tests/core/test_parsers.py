"""The API's JSON nesting limit (core.parsers), which the DRF parser and the lean path both apply."""

from __future__ import annotations

import json

import pytest

from core.parsers import MAX_DEPTH, depth_exceeds


def _nested(depth: int) -> object:
    value: object = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value, "n": 1}
    return value


@pytest.mark.parametrize("depth", [0, 1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH])
def test_depth_counts_lists_and_objects_only(depth: int) -> None:
    assert depth_exceeds(_nested(depth), MAX_DEPTH) is (depth > MAX_DEPTH)
    assert depth_exceeds([1, "x", {"a": [None]}, _nested(depth)], MAX_DEPTH) is (depth + 1 > MAX_DEPTH)


def test_a_wide_batch_is_shallow() -> None:
    batch = json.loads(json.dumps({"events": [{"event_id": str(i), "position": i} for i in range(10_000)]}))
    assert not depth_exceeds(batch, 3)
    assert depth_exceeds(batch, 2)
