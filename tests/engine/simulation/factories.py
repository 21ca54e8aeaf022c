"""Shared helpers of the simulation core's tests."""

from __future__ import annotations

import numpy as np

from engine.bucketing import Allocation, assign_many
from recommenders.algorithms.base import IntArray


def two_arms(user_ids: np.ndarray) -> IntArray:
    """The platform's real bucketing: a 50/50 split of all users."""
    return assign_many(Allocation(traffic=1.0, weights=[1, 1]), "simulation-test", user_ids).arm
