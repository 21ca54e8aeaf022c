"""Tests of the Django-free bucketing core (engine/bucketing.py).

Statistical tests run on FIXED id sets, so each one is deterministic: it either passes forever or
fails forever. Their threshold p > 0.001 is what a correct (uniform, independent) hash would fail
on one id set in a thousand; a broken hash (modulo bias, linear structure between salts, a
dropped byte) gives p values below 1e-10 on 100,000 ids, so the margin between the two is wide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.bucketing import (
    BUCKETS,
    Allocation,
    Assignment,
    BucketingError,
    InvalidArmError,
    InvalidLayerRangeError,
    InvalidSaltError,
    InvalidTrafficError,
    InvalidUserIdsError,
    InvalidWeightsError,
    LayerOverlapError,
    LayerSlot,
    assign,
    assign_many,
    assignment_probability,
    bucket,
    buckets,
    check_layer,
    hash64,
    hash64_many,
    layer_ranges,
)

N_IDS = 100_000
IDS = [f"user-{i:08d}" for i in range(N_IDS)]  # the fixed id set of every statistical test
P_FLOOR = 0.001

# --- an independent, literal implementation of the module docstring (byte loops, no shortcuts) ---

_M = 2**64


def _ref_fmix64(h: int) -> int:
    h ^= h >> 33
    h = h * 0xFF51AFD7ED558CCD % _M
    h ^= h >> 33
    h = h * 0xC4CEB9FE1A85EC53 % _M
    return h ^ (h >> 33)


def _ref_hash64(salt: str, user_id: str) -> int:
    seed = 0xCBF29CE484222325
    for byte in salt.encode("utf-8"):
        seed = (seed ^ byte) * 0x100000001B3 % _M
    seed = _ref_fmix64(seed)
    data = user_id.encode("utf-8")
    data += b"\0" * (-len(data) % 8)
    acc = 0
    for j in range(len(data) // 8):
        word = sum(data[8 * j + i] << (8 * i) for i in range(8))
        k = _ref_fmix64((seed + (j + 1) * 0x9E3779B97F4A7C15) % _M) | 1
        acc = (acc + word * k) % _M
    return _ref_fmix64(seed ^ acc)


# (salt, user_id, hash64, bucket). NEVER edit these: a change moves users between arms of running
# experiments. A new hash needs a new HASH_VERSION and a migration plan, not new numbers here.
REFERENCE = [
    ("exp-1", "1", 0xE77EB7B5B731F4E0, 7156),
    ("exp-1", "12345", 0x78F61DFED7A9AB98, 8424),
    ("exp-1", "user-00000042", 0x9424D2BE0EDC622B, 580),
    ("exp-2", "user-00000042", 0xC78672288AA7ECCF, 5416),
    ("homepage-recs:v2", "8f14e45fceea167a", 0x732BEC6E61E7E6F1, 3824),
    ("layer:home", "customer/17850", 0x626BFE0CBC93C40A, 7366),
    ("exp-1", "", 0xF407F8F8FA35C5D0, 9773),
    ("exp-1", " ", 0xA188AC049B2E6876, 6061),
    ("exp-1", "0", 0xEB2B3E79D635E1D3, 8367),
    ("exp-1", "ünïcødé", 0xFAB4A78113EC12E1, 778),
    ("exp-1", "日本語ユーザー", 0x7AC98C1DF948EF1E, 9737),
    ("exp-1", "🛒🛒🛒🛒🛒", 0xA13886ABCFFA8BF8, 8124),
    ("sälz", "x" * 70, 0x0ACCBD838C874FE1, 5489),
]

ODD_IDS = [
    "",
    " ",
    "0",
    "a\x00b",
    "\x00x",
    "ünïcødé",
    "日本語ユーザー",
    "🛒" * 5,
    "x" * 7,
    "x" * 8,
    "x" * 9,
    "y" * 16,
    "y" * 17,
    "z" * 64,
    "z" * 65,
    "w" * 200,
    "tab\tand\nnewline",
    "customer/17850",
]


# --- the hash ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("salt", "user_id", "expected_hash", "expected_bucket"), REFERENCE)
def test_hash_and_bucket_match_pinned_reference_values(
    salt: str, user_id: str, expected_hash: int, expected_bucket: int
) -> None:
    assert hash64(salt, user_id) == expected_hash
    assert _ref_hash64(salt, user_id) == expected_hash
    assert bucket(salt, user_id) == expected_bucket
    assert bucket(salt, user_id) == ((expected_hash & 0xFFFFFFFF) * BUCKETS) >> 32


def test_vectorised_hash_matches_reference_table() -> None:
    for salt in {salt for salt, *_ in REFERENCE}:
        rows = [(u, h, b) for s, u, h, b in REFERENCE if s == salt]
        ids = [u for u, _, _ in rows]
        assert hash64_many(salt, ids).tolist() == [h for _, h, _ in rows]
        assert buckets(salt, ids).tolist() == [b for _, _, b in rows]


@pytest.mark.parametrize("form", ["list", "tuple", "unicode_array", "bytes_array", "object_array"])
def test_vectorised_equals_scalar_for_every_input_form(form: str) -> None:
    ids = [*ODD_IDS, *IDS[:2000], *(str(i) for i in range(1000))]
    converted: object = {
        "list": ids,
        "tuple": tuple(ids),
        "unicode_array": np.array(ids),
        "bytes_array": np.array([u.encode("utf-8") for u in ids], dtype="S"),
        "object_array": np.array(ids, dtype=object),
    }[form]
    expected = [bucket("exp-1", u) for u in ids]
    assert buckets("exp-1", converted).tolist() == expected  # type: ignore[arg-type]
    assert hash64_many("exp-1", converted).tolist() == [hash64("exp-1", u) for u in ids]  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(salt=st.text(min_size=1, max_size=30), ids=st.lists(st.text(max_size=40), min_size=1, max_size=20))
def test_scalar_vectorised_and_literal_reference_agree(salt: str, ids: list[str]) -> None:
    expected = [_ref_hash64(salt, u) for u in ids]
    assert [hash64(salt, u) for u in ids] == expected
    assert hash64_many(salt, ids).tolist() == expected


def test_trailing_nul_characters_do_not_change_the_hash() -> None:
    # Documented consequence of zero padding (numpy's S dtype cannot hold trailing NULs either).
    assert hash64("exp-1", "abc\x00\x00") == hash64("exp-1", "abc")
    assert hash64("exp-1", "abcdefgh\x00") == hash64("exp-1", "abcdefgh")
    assert hash64("exp-1", "\x00abc") != hash64("exp-1", "abc")


def test_bucket_is_the_same_in_a_fresh_process_with_another_hash_seed() -> None:
    code = "from engine.bucketing import bucket; print([bucket('exp-1', u) for u in ('1', '12345', '')])"
    root = Path(__file__).resolve().parents[2]
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[7156, 8424, 9773]"


def test_buckets_of_empty_input_is_empty() -> None:
    assert buckets("exp-1", []).tolist() == []
    assert hash64_many("exp-1", np.array([], dtype="S")).dtype == np.uint64


@pytest.mark.parametrize("bad", [[1, 2], ["a", None], "abc", np.zeros(3), np.array([["a"], ["b"]])])
def test_vectorised_rejects_non_string_ids(bad: object) -> None:
    with pytest.raises(InvalidUserIdsError):
        buckets("exp-1", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", [42, None, b"bytes"])
def test_scalar_rejects_non_string_id(user_id: object) -> None:
    with pytest.raises(InvalidUserIdsError):
        bucket("exp-1", user_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidUserIdsError):
        assign(Allocation(traffic=1.0, weights=[1]), "exp-1", user_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("salt", ["", None, 3])
def test_salt_must_be_a_non_empty_string(salt: object) -> None:
    with pytest.raises(InvalidSaltError):
        bucket(salt, "u")  # type: ignore[arg-type]


# --- statistics of the hash -------------------------------------------------------------------


def test_buckets_are_uniform_over_100k_ids() -> None:
    b = buckets("exp-uniformity", IDS)
    assert b.min() >= 0
    assert b.max() < BUCKETS
    # High digits (bucket // 100) catch range bias; low digits (bucket % 100) catch weak low
    # bits, the classic FNV/modulo flaw. 1,000 ids per cell expected, df = 99.
    for cells in (b // 100, b % 100):
        counts = np.bincount(cells, minlength=100)
        assert stats.chisquare(counts).pvalue > P_FLOOR


def test_arm_points_are_uniform_over_100k_ids() -> None:
    arms = assign_many(Allocation(traffic=1.0, weights=[1.0] * 100), "exp-uniformity", IDS).arm
    counts = np.bincount(arms, minlength=100)
    assert counts.sum() == N_IDS
    assert stats.chisquare(counts).pvalue > P_FLOOR


def test_assignments_under_two_salts_are_independent() -> None:
    allocation = Allocation(traffic=1.0, weights=[1.0, 1.0, 1.0, 1.0])
    arm_a = assign_many(allocation, "exp-a", IDS).arm
    arm_b = assign_many(allocation, "exp-b", IDS).arm
    table = np.zeros((4, 4), dtype=np.int64)
    np.add.at(table, (arm_a, arm_b), 1)
    assert stats.chi2_contingency(table).pvalue > P_FLOOR
    # and the buckets themselves, in deciles (1,000 ids expected per cell)
    deciles = np.zeros((10, 10), dtype=np.int64)
    np.add.at(deciles, (buckets("exp-a", IDS) // 1000, buckets("exp-b", IDS) // 1000), 1)
    assert stats.chi2_contingency(deciles).pvalue > P_FLOOR


def test_entry_bucket_and_arm_of_one_salt_are_independent() -> None:
    # Both come from one 64-bit hash (low and high halves): entering must not predict the arm.
    result = assign_many(Allocation(traffic=1.0, weights=[1.0, 1.0, 1.0, 1.0]), "exp-a", IDS)
    table = np.zeros((10, 4), dtype=np.int64)
    np.add.at(table, (result.bucket // 1000, result.arm), 1)
    assert stats.chi2_contingency(table).pvalue > P_FLOOR


def test_observed_arm_shares_match_a_20_80_split() -> None:
    result = assign_many(Allocation(traffic=1.0, weights=[20, 80]), "exp-split", IDS)
    counts = np.bincount(result.arm, minlength=2)
    assert counts.sum() == N_IDS
    # binomial sd of a share over 100k ids is sqrt(0.16 / 1e5) = 0.0013; 0.006 is about 5 sd
    assert counts[0] / N_IDS == pytest.approx(0.2, abs=0.006)
    assert stats.chisquare(counts, [0.2 * N_IDS, 0.8 * N_IDS]).pvalue > P_FLOOR


# --- allocation -------------------------------------------------------------------------------


def test_allocation_normalises_weights_into_arm_bounds() -> None:
    allocation = Allocation(traffic=0.5, weights=[1, 3])
    assert allocation.weights == (1.0, 3.0)
    assert allocation.arm_bounds == (2500, 10_000)
    assert allocation.entry_count == 5000
    assert Allocation(traffic=0.29, weights=[1], layer=LayerSlot("L", 0, 100)).entry_count == 29
    assert Allocation(traffic=1.0, weights=[1, 0, 1]).arm_bounds == (5000, 5000, 10_000)
    assert Allocation(traffic=1.0, weights=[1, 1, 1]).arm_bounds == (3333, 6667, 10_000)


def test_zero_weight_arm_gets_nobody() -> None:
    result = assign_many(Allocation(traffic=1.0, weights=[1, 0, 1]), "exp-zero", IDS[:20_000])
    assert set(np.unique(result.arm).tolist()) == {0, 2}


def test_scalar_assign_matches_assign_many_unlayered_and_layered() -> None:
    ids = [*ODD_IDS, *IDS[:5000]]
    for allocation in (
        Allocation(traffic=0.37, weights=[0.2, 0.3, 0.5]),
        Allocation(traffic=0.8, weights=[1, 1], layer=LayerSlot("layer:home", 2500, 6000)),
    ):
        many = assign_many(allocation, "exp-1", ids)
        for i, user_id in enumerate(ids):
            one = assign(allocation, "exp-1", user_id)
            assert one.bucket == many.bucket[i]
            assert one.in_experiment == many.in_experiment[i]
            assert (one.arm if one.arm is not None else -1) == many.arm[i]


def test_assign_exact_values() -> None:
    # entry bucket 580 ('exp-1', 'user-00000042') from the reference table; arm from the high half
    allocation = Allocation(traffic=0.1, weights=[1, 1])
    h = 0x9424D2BE0EDC622B
    point = ((h >> 32) * BUCKETS) >> 32
    assert assign(allocation, "exp-1", "user-00000042") == Assignment(
        arm=int(point >= 5000), bucket=580, in_experiment=True
    )
    assert assign(Allocation(traffic=0.05, weights=[1, 1]), "exp-1", "user-00000042") == Assignment(
        arm=None, bucket=580, in_experiment=False
    )


def test_ramp_up_keeps_assigned_users_in_their_arm() -> None:
    weights = [0.5, 0.25, 0.25]
    previous = None
    for traffic in (0.1, 0.5, 1.0):
        current = assign_many(Allocation(traffic=traffic, weights=weights), "exp-ramp", IDS)
        assert current.in_experiment.mean() == pytest.approx(traffic, abs=0.01)
        if previous is not None:
            stayed = previous.in_experiment
            assert current.in_experiment[stayed].all()  # nobody who was in leaves
            assert (current.arm[stayed] == previous.arm[stayed]).all()  # nobody moves arm
            assert current.in_experiment.sum() > stayed.sum()  # newcomers were added
        previous = current


def test_ramp_down_only_removes_users() -> None:
    full = assign_many(Allocation(traffic=1.0, weights=[1, 1]), "exp-ramp", IDS)
    down = assign_many(Allocation(traffic=0.2, weights=[1, 1]), "exp-ramp", IDS)
    assert not (down.in_experiment & ~full.in_experiment).any()
    kept = down.in_experiment
    assert (down.arm[kept] == full.arm[kept]).all()
    assert (down.arm[~kept] == -1).all()


@settings(max_examples=100, deadline=None)
@given(
    low=st.floats(0, 1),
    high=st.floats(0, 1),
    weights=st.lists(st.floats(0, 10), min_size=1, max_size=5).filter(lambda w: sum(w) > 0.1),
    user_id=st.text(max_size=20),
)
def test_raising_traffic_never_moves_a_user(low: float, high: float, weights: list[float], user_id: str) -> None:
    low, high = min(low, high), max(low, high)
    before = assign(Allocation(traffic=low, weights=weights), "exp-prop", user_id)
    after = assign(Allocation(traffic=high, weights=weights), "exp-prop", user_id)
    if before.in_experiment:
        assert after == before


# --- layers -----------------------------------------------------------------------------------


def test_layer_ranges_tile_the_buckets() -> None:
    assert layer_ranges([0.2, 0.3, 0.5]) == [(0, 2000), (2000, 5000), (5000, 10_000)]
    assert layer_ranges([1 / 3, 1 / 3, 1 / 3]) == [(0, 3333), (3333, 6667), (6667, 10_000)]
    assert layer_ranges([0.1], start=5000) == [(5000, 6000)]


def test_three_experiments_in_one_layer_are_exclusive() -> None:
    shares = [0.2, 0.3, 0.5]
    slots = [LayerSlot("layer:home", start, end) for start, end in layer_ranges(shares)]
    check_layer(slots)
    member = np.stack(
        [
            assign_many(Allocation(traffic=1.0, weights=[1, 1], layer=slot), f"exp-{i}", IDS).in_experiment
            for i, slot in enumerate(slots)
        ]
    )
    per_user = member.sum(axis=0)
    assert per_user.max() == 1  # nobody in two experiments
    assert per_user.min() == 1  # the three slots cover the layer, so everybody is in exactly one
    # binomial sd of a share over 100k ids <= 0.0016; 0.008 is 5 sd
    assert member.mean(axis=1) == pytest.approx(shares, abs=0.008)


def test_layer_with_partial_traffic_admits_a_prefix_of_its_slot() -> None:
    slot = LayerSlot("layer:home", 2000, 5000)
    result = assign_many(Allocation(traffic=0.5, weights=[1], layer=slot), "exp-1", IDS)
    layer_buckets = buckets("layer:home", IDS)
    assert (result.bucket == layer_buckets).all()
    assert (result.in_experiment == ((layer_buckets >= 2000) & (layer_buckets < 3500))).all()


def test_check_layer_rejects_overlap_and_mixed_layers() -> None:
    with pytest.raises(LayerOverlapError):
        check_layer([LayerSlot("L", 0, 3000), LayerSlot("L", 2999, 4000)])
    with pytest.raises(LayerOverlapError):
        check_layer([LayerSlot("L", 0, 3000), LayerSlot("M", 3000, 4000)])
    check_layer([LayerSlot("L", 3000, 4000), LayerSlot("L", 0, 3000)])


def test_assignment_probability_is_traffic_times_layer_share_times_arm_share() -> None:
    allocation = Allocation(traffic=0.5, weights=[1, 3], layer=LayerSlot("L", 0, 2000))
    assert assignment_probability(allocation, 0) == pytest.approx(0.5 * 0.2 * 0.25, rel=1e-12)
    assert assignment_probability(allocation, 1) == pytest.approx(0.5 * 0.2 * 0.75, rel=1e-12)
    result = assign_many(allocation, "exp-prob", IDS)
    observed = np.bincount(result.arm[result.in_experiment], minlength=2) / N_IDS
    # sd of a share near 0.075 over 100k ids is 0.0008; 0.004 is 5 sd
    assert observed == pytest.approx([0.025, 0.075], abs=0.004)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("traffic", [-0.01, 1.01, float("nan"), float("inf"), "0.5", True])
def test_traffic_outside_0_1_is_rejected(traffic: object) -> None:
    with pytest.raises(InvalidTrafficError):
        Allocation(traffic=traffic, weights=[1, 1])  # type: ignore[arg-type]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1], [1, float("nan")], [1, float("inf")], "ab", [1, "2"]])
def test_impossible_weights_are_rejected(weights: object) -> None:
    with pytest.raises(InvalidWeightsError):
        Allocation(traffic=1.0, weights=weights)  # type: ignore[arg-type]


@pytest.mark.parametrize(("start", "end"), [(-1, 10), (10, 10), (20, 10), (0, 10_001), (0.5, 10)])
def test_invalid_layer_range_is_rejected(start: object, end: object) -> None:
    with pytest.raises(InvalidLayerRangeError):
        LayerSlot("L", start, end)  # type: ignore[arg-type]


@pytest.mark.parametrize(("shares", "start"), [([0.5, 0.6], 0), ([0.0], 0), ([0.00001], 0), ([0.5], 6000), ([0.1], -1)])
def test_impossible_layer_shares_are_rejected(shares: list[float], start: int) -> None:
    with pytest.raises(InvalidLayerRangeError):
        layer_ranges(shares, start=start)


@pytest.mark.parametrize("arm", [-1, 2, 1.0])
def test_assignment_probability_rejects_unknown_arm(arm: object) -> None:
    with pytest.raises(InvalidArmError):
        assignment_probability(Allocation(traffic=1.0, weights=[1, 1]), arm)  # type: ignore[arg-type]


def test_all_errors_are_value_errors() -> None:
    assert issubclass(BucketingError, ValueError)
    for error in (InvalidTrafficError, InvalidWeightsError, InvalidLayerRangeError, LayerOverlapError, InvalidArmError):
        assert issubclass(error, BucketingError)


def test_layer_must_be_a_layer_slot() -> None:
    with pytest.raises(InvalidLayerRangeError):
        Allocation(traffic=1.0, weights=[1], layer=(0, 100))  # type: ignore[arg-type]
