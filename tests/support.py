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


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly `labels` in a Prometheus text exposition; 0 when absent
    (a counter nobody incremented yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
