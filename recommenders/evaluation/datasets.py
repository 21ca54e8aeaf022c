"""Readers of the public data sets used for offline evaluation and benchmarks (read-only).

* MovieLens 100K (`u.data`: user, item, rating, epoch; `u.item`: latin-1, pipe-separated,
  title and 19 genre flags; `u.genre`). Rows keep the file order, which the
  Microsoft Recommenders split semantics depend on.
* UCI Online Retail (`online_retail.csv.gz`): the recommender view is lines whose
  InvoiceNo does not start with 'C', with Quantity > 0 and a CustomerID; each line is an
  implicit interaction (customer, stock code) with value = Quantity and the invoice time.
  Item text is the most frequent Description of the stock code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recommenders.algorithms.base import TrainingData


def load_movielens_100k(directory: Path) -> TrainingData:
    """Ratings as values; item text = title, item category = its genre names."""
    import pandas as pd

    ratings = pd.read_csv(
        directory / "u.data", sep="\t", names=["user", "item", "rating", "epoch"], dtype={"user": str, "item": str}
    )
    genres = pd.read_csv(directory / "u.genre", sep="|", names=["genre", "flag"], encoding="latin-1").dropna()
    genre_names = list(genres["genre"])
    items = pd.read_csv(
        directory / "u.item",
        sep="|",
        encoding="latin-1",
        header=None,
        names=["item", "title", "released", "video", "url", *genre_names],
        dtype={"item": str},
    )
    flags = items[genre_names].to_numpy(dtype=bool)
    categories = {
        item: " ".join(g for g, on in zip(genre_names, row, strict=True) if on)
        for item, row in zip(items["item"], flags, strict=True)
    }
    titles = dict(zip(items["item"], items["title"].fillna(""), strict=True))
    catalogue = sorted(titles, key=int)
    return _from_frame(
        ratings["user"].to_numpy(),
        ratings["item"].to_numpy(),
        ratings["rating"].to_numpy(dtype=np.float32),
        ratings["epoch"].to_numpy(dtype=np.int64),
        catalogue,
        titles,
        categories,
    )


def load_online_retail(path: Path) -> TrainingData:
    """Purchases (non-cancelled, Quantity > 0, with CustomerID) as implicit feedback."""
    import pandas as pd

    frame = pd.read_csv(
        path,
        dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"},
        keep_default_na=False,
        na_values={"Description": [""], "CustomerID": [""]},
    )
    frame = frame[~frame["InvoiceNo"].str.startswith("C") & (frame["Quantity"] > 0) & frame["CustomerID"].notna()]
    described = frame.dropna(subset=["Description"])
    descriptions = (
        described.groupby("StockCode")["Description"].agg(lambda s: s.str.strip().value_counts().index[0]).to_dict()
    )
    epoch = pd.to_datetime(frame["InvoiceDate"]).astype("int64") // 1_000_000_000
    return _from_frame(
        frame["CustomerID"].astype(str).to_numpy(),
        frame["StockCode"].to_numpy(),
        frame["Quantity"].to_numpy(dtype=np.float32),
        epoch.to_numpy(dtype=np.int64),
        sorted(set(frame["StockCode"])),
        descriptions,
        {},
    )


def _from_frame(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    timestamps: np.ndarray,
    catalogue: list[str],
    text: dict[str, str],
    category: dict[str, str],
) -> TrainingData:
    user_ids, user_index = np.unique(users.astype(str), return_inverse=True)
    item_position = {item: j for j, item in enumerate(catalogue)}
    item_index = np.fromiter((item_position[it] for it in items), dtype=np.int64, count=len(items))
    return TrainingData(
        user_ids=tuple(str(u) for u in user_ids),
        item_ids=tuple(catalogue),
        user_index=user_index.astype(np.int64),
        item_index=item_index,
        value=values.astype(np.float32),
        timestamp=timestamps.astype(np.int64),
        item_text=tuple(text.get(it, "") for it in catalogue),
        item_category=tuple(category.get(it, "") for it in catalogue) if category else (),
    )
