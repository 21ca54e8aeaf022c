"""Small data sets for the deep recommender tests: a learnable toy problem and slices of real data.

The real data are read where the project keeps them, relative to the repository root;
MovieLens may not be copied into the repository. A missing file skips the test with the
reason, except under CI (env var `CI` set), where it fails: CI must run everything.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from recommenders.algorithms.base import TrainingData
from tests.support import skip_unless

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
ML100K = SHARED_DATA / "ml-100k" / "u.data"
ONLINE_RETAIL_CANDIDATES = (
    REPO_ROOT / "data" / "online-retail" / "online_retail.csv.gz",  # the bundled demo copy, once it lands
    SHARED_DATA / "online-retail" / "online_retail.csv.gz",
)


def require(path: Path, what: str) -> Path:
    """`path` when it exists; otherwise skip (locally) or fail (under CI) naming what is missing."""
    skip_unless(path.exists(), f"{what} not found at {path}")
    return path


def toy_two_groups(n_users: int = 40, per_user: int = 6) -> TrainingData:
    """Users u0..u19 buy only from items a0..a9, users u20..u39 only from b0..b9; each buys `per_user`.

    Which items a user bought rotates with the user number, so every item is bought
    and every user leaves 10 - per_user of their group's items unseen: a model that learns
    the groups ranks those above the other group's items.
    """
    users: list[str] = []
    items: list[str] = []
    for u in range(n_users):
        group = "a" if u < n_users // 2 else "b"
        for k in range(per_user):
            users.append(f"u{u}")
            items.append(f"{group}{(u + k) % 10}")
    return TrainingData.from_records(users, items)


def ml100k_slice(rows: int = 600) -> TrainingData:
    """The first `rows` ratings of MovieLens 100k (user, item, rating, epoch seconds)."""
    path = require(ML100K, "MovieLens 100k u.data")
    records = []
    with open(path, encoding="latin-1") as handle:
        for line, _ in zip(handle, range(rows), strict=False):
            records.append(line.split("\t"))
    return TrainingData.from_records(
        [r[0] for r in records],
        [r[1] for r in records],
        [float(r[2]) for r in records],
        [int(r[3]) for r in records],
    )


def online_retail_slice(rows: int = 600) -> TrainingData:
    """The first `rows` purchase lines of Online Retail in the recommender view.

    Recommender view: InvoiceNo not starting with 'C' (cancellations), Quantity > 0,
    CustomerID present; customer x stock code, quantity as the value, Description as text.
    """
    path = next((p for p in ONLINE_RETAIL_CANDIDATES if p.exists()), ONLINE_RETAIL_CANDIDATES[-1])
    require(path, "Online Retail online_retail.csv.gz")
    users: list[str] = []
    items: list[str] = []
    quantities: list[float] = []
    text: dict[str, str] = {}
    with gzip.open(path, "rb") as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            if row["InvoiceNo"].startswith("C") or int(row["Quantity"]) <= 0 or not row["CustomerID"]:
                continue
            users.append(row["CustomerID"])
            items.append(row["StockCode"])
            quantities.append(float(row["Quantity"]))
            text.setdefault(row["StockCode"], row["Description"].strip())
            if len(users) == rows:
                break
    return TrainingData.from_records(users, items, quantities, item_text=text)
