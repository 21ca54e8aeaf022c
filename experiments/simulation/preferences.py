"""Who the simulated shoppers are and what they want (Django-free).

The simulated users are the data set's real users, split at a time cut-off:

* **history** = their interactions before the cut-off. This is what the variants train on.
* **future** F_u = the set of items user u bought at or after the cut-off. This is the ground
  truth the variants never saw: a recommender earns clicks by finding these items.

Eligible shoppers are the users with at least one interaction before the cut-off (so the
variants can personalise for them) and at least one after it (so they want something).

Items outside F_u get an attractiveness from the user's **text-cluster affinity**. Each item
belongs to one cluster c(i): its category when the data has categories, otherwise a cluster
of its title found by spherical k-means over TF-IDF word vectors (see `cluster_items`); items
without text share one extra cluster. With n_u(c) the number of distinct items of cluster c
in u's history,

    affinity(u, i) = n_u(c(i)) / max_c n_u(c)          in [0, 1]

(1 for the user's favourite cluster, 0 for a cluster they never bought from). The
attractiveness of item i to user u, given the config's F = future_attractiveness,
A = affinity_attractiveness and B = background_attractiveness, is

    a(u, i) = F                                   if i ∈ F_u
            = B + (A - B) × affinity(u, i)        otherwise

Note that F_u includes repeat purchases of items also bought before the cut-off: a variant
that re-recommends them is rewarded, as a shop would be when a customer buys them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recommenders.algorithms.base import TrainingData

from .config import ConfigError, SimulationConfig, SimulationError

__all__ = ["Shoppers", "cluster_items", "default_cutoff"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_WORD = re.compile(r"[^\W\d_]{2,}")
_DEFAULT_CONFIG = SimulationConfig()


def default_cutoff(data: TrainingData, test_fraction: float = 0.2) -> int:
    """The cut-off `recommenders.evaluation.splits.temporal_split` uses for `test_fraction`:
    ceil(t_max - test_fraction × (t_max - t_min)), so that the last `test_fraction` of the
    time span is the future."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError("test_fraction", f"must lie strictly between 0 and 1, got {test_fraction}")
    if len(data.timestamp) == 0:
        raise SimulationError("The data set has no interactions.")
    t_min, t_max = int(data.timestamp.min()), int(data.timestamp.max())
    return int(np.ceil(t_max - test_fraction * (t_max - t_min)))


def cluster_items(item_text: tuple[str, ...], n_clusters: int = 50, *, iterations: int = 20, seed: int = 0) -> IntArray:
    """Cluster of each item's text by spherical k-means (deterministic for a seed).

    Words are runs of ≥ 2 letters, lower-cased; words in fewer than 2 items are dropped.
    x_i = binary word vector × idf, idf(w) = ln((1 + n) / (1 + df(w))) + 1, L2-normalised.
    Centroids start at `n_clusters` distinct random items; each iteration assigns every item
    to argmax_c x_i · μ_c and sets μ_c = normalise(Σ x_i of its items) (an empty cluster keeps
    its centroid), until nothing moves or after `iterations`. Items without any kept word get
    cluster `n_clusters'` (the number of real clusters, ≤ n_clusters when there are few items).
    """
    if n_clusters < 1:
        raise ConfigError("n_clusters", f"must be at least 1, got {n_clusters}")
    if iterations < 1:
        raise ConfigError("iterations", f"must be at least 1, got {iterations}")
    n = len(item_text)
    tokens = [set(_WORD.findall(text.lower())) for text in item_text]
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, words in enumerate(tokens):
        for word in words:
            rows.append(i)
            cols.append(vocabulary.setdefault(word, len(vocabulary)))
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocabulary)))
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = np.flatnonzero(df >= 2)
    x = sp.csr_matrix(x[:, keep] @ sp.diags(np.log((1 + n) / (1 + df[keep])) + 1.0))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    has_text = norms > 0
    x = sp.csr_matrix(sp.diags(np.where(has_text, 1.0 / np.where(has_text, norms, 1.0), 0.0)) @ x)
    with_text = np.flatnonzero(has_text)
    clusters = np.zeros(n, dtype=np.int64)
    if len(with_text) == 0:
        return clusters
    k = min(n_clusters, len(with_text))
    xt = x[with_text]
    rng = np.random.default_rng(seed)
    centroids = xt[rng.choice(len(with_text), size=k, replace=False)].toarray()
    assigned = np.full(len(with_text), -1, dtype=np.int64)
    for _ in range(iterations):
        new = np.asarray(np.argmax(xt @ centroids.T, axis=1)).ravel().astype(np.int64)
        if np.array_equal(new, assigned):
            break
        assigned = new
        members = sp.csr_matrix(
            (np.ones(len(assigned)), (assigned, np.arange(len(assigned)))), shape=(k, len(assigned))
        )
        sums = np.asarray((members @ xt).todense())
        lengths = np.linalg.norm(sums, axis=1)
        filled = lengths > 0
        centroids[filled] = sums[filled] / lengths[filled, None]
    clusters[with_text] = assigned
    clusters[~has_text] = k
    return clusters


@dataclass(frozen=True)
class Shoppers:
    """The eligible users, their future items and their cluster affinities (see the module doc).

    User indices are the data's dense user indices (so they can be passed to
    `Recommender.score_users` of a model trained on the same `TrainingData`'s history); item
    indices are the data's item indices. `row_of_user[u]` is u's row in `users`, `affinity`
    and the future lists, or -1 when u is not eligible.
    """

    user_ids: npt.NDArray[np.str_]
    item_text: tuple[str, ...]
    cutoff: int
    users: IntArray
    row_of_user: IntArray
    item_cluster: IntArray
    affinity: npt.NDArray[np.float32]
    future_indptr: IntArray
    future_items: IntArray
    item_price: FloatArray
    _future_keys: IntArray = field(repr=False)

    @classmethod
    def build(
        cls,
        data: TrainingData,
        *,
        cutoff: int | None = None,
        test_fraction: float = 0.2,
        n_clusters: int = 50,
        seed: int = 0,
        item_price: npt.ArrayLike | None = None,
    ) -> Shoppers:
        """Split `data` at `cutoff` (epoch seconds; default `default_cutoff(data, test_fraction)`).

        `item_price` gives each item's price (NaN or negative = unknown); without it every
        price is unknown and purchases bring no revenue. Clusters come from
        `data.item_category` when it names any category, else from `cluster_items`.
        """
        if cutoff is None:
            cutoff = default_cutoff(data, test_fraction)
        n_users, n_items = data.n_users, data.n_items
        before = data.timestamp < cutoff
        has_history = np.bincount(data.user_index[before], minlength=n_users) > 0
        has_future = np.bincount(data.user_index[~before], minlength=n_users) > 0
        users = np.flatnonzero(has_history & has_future).astype(np.int64)
        if len(users) == 0:
            raise SimulationError(
                f"No user has interactions both before and after the cut-off {cutoff}; nobody can be simulated."
            )
        row_of_user = np.full(n_users, -1, dtype=np.int64)
        row_of_user[users] = np.arange(len(users))

        if any(data.item_category):
            _, item_cluster = np.unique(np.asarray(data.item_category, dtype=str), return_inverse=True)
            item_cluster = item_cluster.astype(np.int64)
        else:
            text = data.item_text or ("",) * n_items
            item_cluster = cluster_items(text, n_clusters, seed=seed)
        n_clusters_real = int(item_cluster.max()) + 1 if n_items else 1

        # affinity(u, c) = distinct history items of u in c / the most in any cluster
        hist_rows = row_of_user[data.user_index[before]]
        hist_items = data.item_index[before]
        ok = hist_rows >= 0
        pairs = np.unique(hist_rows[ok] * n_items + hist_items[ok])
        counts = np.zeros((len(users), n_clusters_real), dtype=np.float32)
        np.add.at(counts, (pairs // n_items, item_cluster[pairs % n_items]), 1.0)
        affinity = counts / counts.max(axis=1, keepdims=True)

        # future lists, each user's items ordered by how many post-cut-off rows name them
        fut_rows = row_of_user[data.user_index[~before]]
        fut_items = data.item_index[~before]
        ok = fut_rows >= 0
        keys, times = np.unique(fut_rows[ok] * n_items + fut_items[ok], return_counts=True)
        key_rows = keys // n_items
        order = np.lexsort((keys % n_items, -times, key_rows))
        future_items = (keys % n_items)[order]
        future_indptr = np.concatenate(([0], np.cumsum(np.bincount(key_rows, minlength=len(users))))).astype(np.int64)

        if item_price is None:
            prices = np.full(n_items, np.nan)
        else:
            prices = np.asarray(item_price, dtype=np.float64).copy()
            if prices.shape != (n_items,):
                raise SimulationError(f"item_price must have one entry per item ({n_items}), got shape {prices.shape}")
            prices[~(prices >= 0)] = np.nan
        return cls(
            user_ids=np.asarray(data.user_ids, dtype=str),
            item_text=data.item_text or ("",) * n_items,
            cutoff=int(cutoff),
            users=users,
            row_of_user=row_of_user,
            item_cluster=item_cluster,
            affinity=affinity,
            future_indptr=future_indptr,
            future_items=future_items.astype(np.int64),
            item_price=prices,
            _future_keys=keys.astype(np.int64),
        )

    @property
    def n_items(self) -> int:
        return len(self.item_cluster)

    @property
    def n_shoppers(self) -> int:
        return len(self.users)

    @property
    def reference_price(self) -> float:
        """Median of the known prices (NaN when none is known); the price factor's reference."""
        known = self.item_price[np.isfinite(self.item_price)]
        return float(np.median(known)) if len(known) else float("nan")

    def rows(self, users: npt.ArrayLike) -> IntArray:
        """Rows of the given data user indices; raises when one is not an eligible shopper."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= len(self.row_of_user)):
            raise SimulationError("A user index lies outside the data's users.")
        rows: IntArray = self.row_of_user[users]
        if len(rows) and rows.min() < 0:
            raise SimulationError(f"User index {int(users[np.argmin(rows)])} is not an eligible shopper.")
        return rows

    def future_of(self, user: int) -> IntArray:
        """The future items of one eligible user, most often bought first."""
        row = int(self.rows(np.array([user]))[0])
        return self.future_items[self.future_indptr[row] : self.future_indptr[row + 1]]

    def oracle_lists(self, users: npt.ArrayLike, k: int) -> IntArray:
        """(n, k): each user's first k future items, padded with -1 (an upper-bound "recommender")."""
        rows = self.rows(users)
        starts = self.future_indptr[rows]
        lengths = self.future_indptr[rows + 1] - starts
        col = np.arange(k)
        valid = col[None, :] < lengths[:, None]
        positions = np.where(valid, starts[:, None] + col[None, :], 0)
        return np.where(valid, self.future_items[positions], -1).astype(np.int64)

    def is_future(self, users: npt.ArrayLike, items: npt.ArrayLike) -> BoolArray:
        """Elementwise: is item i in F_u (bought by u after the cut-off)?"""
        return self._is_future(self.rows(users), np.asarray(items, dtype=np.int64))

    def item_affinity(self, users: npt.ArrayLike, items: npt.ArrayLike) -> FloatArray:
        """Elementwise affinity(u, i) = n_u(c(i)) / max_c n_u(c) in [0, 1]."""
        return self._affinity(self.rows(users), np.asarray(items, dtype=np.int64))

    def attractiveness(
        self, users: npt.ArrayLike, items: npt.ArrayLike, config: SimulationConfig = _DEFAULT_CONFIG
    ) -> FloatArray:
        """Elementwise a(u, i) in [0, 1]: F if i ∈ F_u, else B + (A - B) × affinity(u, i)."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape:
            raise SimulationError(f"users and items must have the same shape, got {users.shape} and {items.shape}")
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise SimulationError("An item index lies outside the catalogue.")
        rows = self.rows(users)
        b, a = config.background_attractiveness, config.affinity_attractiveness
        result: FloatArray = np.where(
            self._is_future(rows, items), config.future_attractiveness, b + (a - b) * self._affinity(rows, items)
        )
        return result

    def _is_future(self, rows: IntArray, items: IntArray) -> BoolArray:
        if len(self._future_keys) == 0:
            return np.zeros(len(items), dtype=np.bool_)
        keys = rows * self.n_items + items
        pos = np.searchsorted(self._future_keys, keys)
        pos[pos == len(self._future_keys)] = 0
        found: BoolArray = self._future_keys[pos] == keys
        return found

    def _affinity(self, rows: IntArray, items: IntArray) -> FloatArray:
        return self.affinity[rows, self.item_cluster[items]].astype(np.float64)
