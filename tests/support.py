"""Helpers shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ONLINE_RETAIL = REPO / "data" / "online-retail" / "online_retail.csv.gz"
ML_100K = SHARED_DATA / "ml-100k"
ML_LATEST_SMALL = SHARED_DATA / "ml-latest-small"


def skip_unless(condition: bool, reason: str) -> None:
    """Skip when `condition` is false; under CI (env CI set) fail instead, so nothing is silently left out."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def shared_dataset(path: Path) -> Path:
    """A data set from ../shared/data (never copied into the repository: MovieLens may not be redistributed)."""
    skip_unless(path.exists(), f"{path} is not present")
    return path
