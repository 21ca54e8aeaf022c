from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommenders.evaluation import metrics

D2, D3, D4 = 1 / np.log2(3), 1 / np.log2(4), 1 / np.log2(5)  # discounts of ranks 2, 3, 4

# Three users with k = 4; the third has no relevant items and must be ignored everywhere.
HITS = np.array(
    [
        [True, False, True, False],  # 3 relevant items, hits at ranks 1 and 3
        [False, False, False, True],  # 1 relevant item, hit at rank 4
        [True, True, False, False],  # 0 relevant items (excluded)
    ]
)
N_RELEVANT = np.array([3, 1, 0])


def test_precision_divides_hits_by_k() -> None:
    assert metrics.precision_at_k(HITS, N_RELEVANT, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_recall_divides_hits_by_the_relevant_count() -> None:
    assert metrics.recall_at_k(HITS, N_RELEVANT) == pytest.approx((2 / 3 + 1 / 1) / 2)


def test_ndcg_uses_binary_gains_and_an_ideal_list_of_min_relevant_k() -> None:
    user_0 = (1 + D3) / (1 + D2 + D3)
    user_1 = D4 / 1
    assert metrics.ndcg_at_k(HITS, N_RELEVANT, 4) == pytest.approx((user_0 + user_1) / 2)


def test_map_divides_summed_precisions_by_the_relevant_count() -> None:
    user_0 = (1 / 1 + 2 / 3) / 3
    user_1 = (1 / 4) / 1
    assert metrics.mean_average_precision(HITS, N_RELEVANT) == pytest.approx((user_0 + user_1) / 2)


def test_map_at_k_divides_by_min_relevant_k() -> None:
    hits = np.array([[True, False]])
    # 5 relevant items but only k = 2 slots: MAP divides by 5, MAP@k by 2.
    assert metrics.mean_average_precision(hits, np.array([5])) == pytest.approx(1 / 5)
    assert metrics.map_at_k(hits, np.array([5]), 2) == pytest.approx(1 / 2)


def test_mrr_and_hit_rate() -> None:
    assert metrics.mrr(HITS, N_RELEVANT) == pytest.approx((1 / 1 + 1 / 4) / 2)
    assert metrics.hit_rate(np.array([[False], [True]]), np.array([1, 1])) == 0.5


def test_no_user_with_relevant_items_gives_zero() -> None:
    assert metrics.ndcg_at_k(HITS[2:], N_RELEVANT[2:], 4) == 0.0


def test_coverage_and_gini_of_recommendation_counts() -> None:
    recommended = np.array([[0, 1], [0, 2], [0, -1]])
    counts = metrics.recommendation_counts(recommended, 4)

    assert counts.tolist() == [3, 1, 1, 0]
    assert metrics.catalogue_coverage(counts) == 0.75
    # sorted counts 0, 1, 1, 3; n = 4; total 5: (-3*0 - 1*1 + 1*1 + 3*3) / (4*5)
    assert metrics.gini(counts) == pytest.approx(9 / 20)
    assert metrics.gini(np.array([2, 2, 2])) == 0.0
    assert metrics.gini(np.array([0, 0, 6])) == pytest.approx(2 / 3)


def test_novelty_is_mean_self_information_of_recommended_slots() -> None:
    popularity = np.array([0.5, 0.25, 0.125])
    assert metrics.novelty(np.array([[0, 1], [2, -1]]), popularity) == pytest.approx((1 + 2 + 3) / 3)


def test_intra_list_diversity_is_one_minus_mean_pairwise_cosine() -> None:
    vectors = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    recommended = np.array([[0, 1, -1], [0, 2, -1], [0, 1, 2], [2, -1, -1]])

    # Lists: identical pair (0), orthogonal pair (1), one of three pairs identical (2/3);
    # the single-item list has no pair and is skipped.
    assert metrics.intra_list_diversity(recommended, vectors) == pytest.approx((0 + 1 + 2 / 3) / 3)
