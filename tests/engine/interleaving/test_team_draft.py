"""Team-draft interleaving against hand-computed lists (Radlinski et al. 2008, Algorithm 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.interleaving import (
    NO_TEAM,
    TEAM_A,
    TEAM_B,
    InterleavingError,
    interleave,
    random_coins,
    request_coins,
    rounds_for,
    team_draft_many,
)

A, B, N = TEAM_A, TEAM_B, NO_TEAM
REPO = Path(__file__).resolve().parents[3]


def _one(a: list[int], b: list[int], k: int, coins: list[bool]) -> tuple[list[int], list[int]]:
    result = team_draft_many(np.array([a]), np.array([b]), k, np.array([coins]))
    return result.items[0].tolist(), result.team[0].tolist()


def test_coin_decides_who_picks_first_in_each_round_and_the_behind_team_picks_next() -> None:
    # Round 1: heads, A takes 1, then B takes its best unused, 2. Round 2: tails, B takes 5
    # (2 is used), then A takes 3 (2 is used).
    assert _one([1, 2, 3, 4], [2, 5, 1, 6], 4, [True, False]) == ([1, 2, 5, 3], [A, B, B, A])
    # Tails then heads: B takes 2, A takes 1; A takes 3, B takes 5.
    assert _one([1, 2, 3, 4], [2, 5, 1, 6], 4, [False, True]) == ([2, 1, 3, 5], [B, A, A, B])


def test_an_item_already_in_the_list_is_skipped_by_the_other_team() -> None:
    # Identical rankings: every pick is the next item, the teams alternate within each round.
    assert _one([1, 2, 3], [1, 2, 3], 3, [True, True]) == ([1, 2, 3], [A, B, A])
    assert _one([1, 2, 3], [1, 2, 3], 3, [False, True]) == ([1, 2, 3], [B, A, A])


def test_k_larger_than_the_union_fills_from_the_ranking_with_items_left_then_leaves_empty_slots() -> None:
    # A takes 1, B takes 2; A has nothing left, so B adds 3 (credited to B); then nothing is left.
    assert _one([1, 2], [2, 3], 5, [True, True, True]) == ([1, 2, 3, -1, -1], [A, B, B, N, N])


def test_padding_and_different_widths() -> None:
    result = team_draft_many(np.array([[7, -1, -1], [4, 5, 6]]), np.array([[8], [6]]), 3, np.ones((2, 2), bool))
    assert result.items.tolist() == [[7, 8, -1], [4, 6, 5]]
    assert result.team.tolist() == [[A, B, N], [A, B, A]]
    assert (len(result), result.k) == (2, 3)


def test_every_list_holds_distinct_items_from_the_union_and_the_teams_stay_balanced() -> None:
    rng = np.random.default_rng(3)
    a = np.array([rng.permutation(30)[:10] for _ in range(500)])
    b = np.array([rng.permutation(30)[:10] for _ in range(500)])
    result = team_draft_many(a, b, 10, random_coins(500, 10, rng))
    for s in range(500):
        row = result.items[s]
        assert len(set(row.tolist())) == 10
        assert set(row[result.team[s] == A].tolist()) <= set(a[s].tolist())
        assert set(row[result.team[s] == B].tolist()) <= set(b[s].tolist())
        # Each team's picks are the order of its own ranking (a team never skips a usable item).
        picked_a = row[result.team[s] == A].tolist()
        assert picked_a == [i for i in a[s].tolist() if i in picked_a]
    sizes = (result.team == A).sum(axis=1) - (result.team == B).sum(axis=1)
    assert set(sizes.tolist()) <= {-1, 0, 1}


def test_interleave_maps_item_ids_and_is_reproducible_from_the_request_key() -> None:
    first = interleave(["x", "y", "z"], ["y", "w"], 3, "salt:user-1:req-9")
    again = interleave(["x", "y", "z"], ["y", "w"], 3, "salt:user-1:req-9")
    assert first == again
    assert set(first.items) <= {"x", "y", "z", "w"}
    assert len(first.items) == 3
    assert first.items[:2] in {("x", "y"), ("y", "x")}
    starts = {interleave(["x", "y"], ["y", "x"], 2, f"salt:user-1:req-{i}").teams for i in range(40)}
    assert starts == {("A", "B"), ("B", "A")}
    assert request_coins("k", 5).shape == (1, rounds_for(5)) == (1, 3)


def test_interleave_of_empty_rankings_is_an_empty_list() -> None:
    assert interleave([], [], 4, "key").items == ()


@pytest.mark.parametrize(
    ("a", "b", "k", "coins", "message"),
    [
        ([[1, 2]], [[1, 2], [3, 4]], 2, [[True]], "1 sessions but rankings_b has 2"),
        ([[1, 2]], [[1, 2]], 0, [[True]], "k must be at least 1"),
        ([[1, 2]], [[1, 2]], -3, [[True]], "k must be at least 1"),
        ([[1, 2]], [[1, 2]], 2.0, [[True]], "k must be an integer"),
        ([[1, 1]], [[1, 2]], 2, [[True]], "repeats an item"),
        ([[1, -2]], [[1, 2]], 2, [[True]], "other than -1"),
        ([1, 2], [[1, 2]], 2, [[True]], "2-d array"),
        ([[1.5, 2]], [[1, 2]], 2, [[True]], "integer item indices"),
        ([[1, 2]], [[1, 2]], 4, [[True]], "coins must be a boolean array of shape (1, >= 2)"),
        ([[1, 2]], [[1, 2]], 2, [[1]], "coins must be a boolean array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    a: list[list[float]], b: list[list[int]], k: int, coins: list[list[bool]], message: str
) -> None:
    with pytest.raises(InterleavingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        team_draft_many(np.array(a), np.array(b), k, np.array(coins))


def test_the_core_imports_no_django() -> None:
    # The serving path and the bench load it outside Django; a stray import would drag settings in.
    code = "import sys, engine.interleaving; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"
