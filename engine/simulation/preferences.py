"""Who the simulated shoppers are and what they want (Django-free).

The simulated users are the data set's real users, split at a time cut-off:

* **history** = their interactions before the cut-off. This is what the variants train on.
* **future** F_u = the set of items user u bought at or after the cut-off. This is the ground
  truth the variants never saw: a recommender earns clicks by finding these items.

Eligible shoppers are the users with at least one interaction before the cut-off (so the
variants can personalise for them) and at least one after it (so they want something).

Items outside F_u get an attractiveness from their **held-out neighbourhood affinity**: how
close the item is to something u really bought later, where "close" means bought by the same
customers in the held-out period (`future_neighbours`: shrunk cosine s(i, j) of the two items'
sets of buyers after the cut-off, over all users of the data set):

    affinity(u, i) = max over j ∈ F_u of s(i, j)          in [0, 1)

(u's own purchases never count toward s(i, j) of an item i ∉ F_u, since u did not buy i). The
attractiveness of item i to user u, given the config's F = future_attractiveness,
A = affinity_attractiveness and B = background_attractiveness, is

    a(u, i) = F                                   if i ∈ F_u
            = B + (A - B) × affinity(u, i)        otherwise

Why this model: the ground truth for items outside F_u must not be built from what one of the
compared algorithm families is built from. An affinity by title text (an earlier version used
TF-IDF title clusters of the history) rewards the content model for being the simulator's own
representation; one by history co-purchases would reward the collaborative models the same
way. Co-purchases of the held-out period are what no variant saw: every family has to predict
them from the history by its own means, and a text model earns "near misses" exactly where
similar titles were really bought together. (Measured on Online Retail by
bench/simulation_validity.py: CHANGELOG.md, 2026-11-28.)

Note that F_u includes repeat purchases of items also bought before the cut-off: a variant
that re-recommends them is rewarded, as a shop would be when a customer buys them again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recommenders.algorithms.base import TrainingData

from .config import ConfigError, SimulationConfig, SimulationError

__all__ = ["DEFAULT_SHRINK", "Shoppers", "default_cutoff", "future_neighbours"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_SHRINK = 10.0
"""Shrinkage of `future_neighbours`: a pair keeps half its cosine when sqrt(n_i × n_j) = 10 buyers."""
_BLOCK_CELLS = 16_000_000
"""Items x items cells of the similarity made dense at once while building the affinities (64 MB)."""
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


def future_neighbours(future: sp.csr_matrix, shrink: float = DEFAULT_SHRINK) -> sp.csr_matrix:
    """Item-item similarity of the held-out period: shrunk cosine of the items' buyer sets.

    `future` is (users x items), nonzero where the user bought the item at or after the cut-off.
    With n_i the number of users who bought i then, and c_ij the number who bought both i and j,

        s(i, j) = c_ij / (sqrt(n_i × n_j) + shrink)      for i != j,   s(i, i) = 0

    in [0, 1): the shrinkage pulls pairs seen in few baskets toward 0 (one shared buyer of two
    rare items is no evidence). Returned as CSR (items x items), zeros not stored.
    """
    if shrink < 0:
        raise ConfigError("shrink", f"must be >= 0, got {shrink}")
    bought = sp.csr_matrix(future, dtype=np.float32, copy=True)
    bought.sum_duplicates()
    bought.data[:] = 1.0
    co = sp.csr_matrix(bought.T @ bought)
    buyers = np.sqrt(co.diagonal())
    rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
    co.data = co.data / (buyers[rows] * buyers[co.indices] + np.float32(shrink))
    co.data[rows == co.indices] = 0.0  # the diagonal (masked here: setdiag on CSR is slow)
    co.eliminate_zeros()
    return co


@dataclass(frozen=True)
class Shoppers:
    """The eligible users, their future items and their neighbourhood affinities (see the module doc).

    User indices are the data's dense user indices (so they can be passed to
    `Recommender.score_users` of a model trained on the same `TrainingData`'s history); item
    indices are the data's item indices. `row_of_user[u]` is u's row in `users`, `affinity`
    and the future lists, or -1 when u is not eligible. `affinity` (shoppers x items, float32:
    28 MB for Online Retail's 1,893 shoppers x 3,665 items) holds affinity(u, i) for the items
    outside F_u and -1 for the items in F_u, so that one lookup per impression answers both
    "is it a held-out purchase?" and "how close is it to one?".
    """

    user_ids: npt.NDArray[np.str_]
    item_text: tuple[str, ...]
    cutoff: int
    users: IntArray
    row_of_user: IntArray
    affinity: npt.NDArray[np.float32]
    future_indptr: IntArray
    future_items: IntArray
    item_price: FloatArray
    first_future: IntArray
    """Per shopper row: epoch second of their first interaction at or after the cut-off."""
    replicas: int = 1
    """How many simulated shoppers each eligible user stands for (`replicated`); 1 = the real users."""

    @classmethod
    def build(
        cls,
        data: TrainingData,
        *,
        cutoff: int | None = None,
        test_fraction: float = 0.2,
        shrink: float = DEFAULT_SHRINK,
        item_price: npt.ArrayLike | None = None,
    ) -> Shoppers:
        """Split `data` at `cutoff` (epoch seconds; default `default_cutoff(data, test_fraction)`).

        `item_price` gives each item's price (NaN or negative = unknown); without it every
        price is unknown and purchases bring no revenue. `shrink` is that of
        `future_neighbours`, over every user's rows at or after the cut-off.
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

        # future lists, each user's items ordered by how many post-cut-off rows name them
        fut_rows = row_of_user[data.user_index[~before]]
        fut_items = data.item_index[~before]
        ok = fut_rows >= 0
        keys, times = np.unique(fut_rows[ok] * n_items + fut_items[ok], return_counts=True)
        key_rows = keys // n_items
        order = np.lexsort((keys % n_items, -times, key_rows))
        future_items = (keys % n_items)[order]
        future_indptr = np.concatenate(([0], np.cumsum(np.bincount(key_rows, minlength=len(users))))).astype(np.int64)
        first_future = np.full(len(users), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_future, fut_rows[ok], data.timestamp[~before][ok].astype(np.int64))

        future = sp.csr_matrix(
            (np.ones(int((~before).sum())), (data.user_index[~before], data.item_index[~before])),
            shape=(n_users, n_items),
        )
        affinity = _neighbourhood_affinity(future_neighbours(future, shrink), future_indptr, future_items)
        affinity[np.repeat(np.arange(len(users)), np.diff(future_indptr)), future_items] = -1.0

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
            affinity=affinity,
            future_indptr=future_indptr,
            future_items=future_items.astype(np.int64),
            item_price=prices,
            first_future=first_future,
        )

    def replicated(self, replicas: int) -> Shoppers:
        """A population `replicas` times as large: each eligible user stands for `replicas` shoppers with
        the same tastes (future items, affinities, first purchase) but their own identity, so each is
        assigned, arrives and clicks independently (`SimulationConfig.population_scale`).

        User indices then span `replicas` x the data's users: replica r of data user u is user index
        u + r x n (n = the data's users), with id "<u's id>#<r>" for r >= 1 (r = 0 keeps the real id),
        and shopper row r x m + row(u) (m = the eligible users); `source_user` maps an index back to u,
        whose history the variants personalise for. The affinity matrix is shared, not copied: a row's
        tastes are those of its row mod m. Needs the real population (replicas = 1); `replicated(1)`
        returns it unchanged.
        """
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise SimulationError(f"replicas must be a whole number >= 1, got {replicas!r}")
        if self.replicas != 1:
            raise SimulationError(f"these shoppers are already replicated ({self.replicas}x)")
        if replicas == 1:
            return self
        n = len(self.user_ids)
        ids = [self.user_ids] + [np.char.add(self.user_ids, f"#{r}") for r in range(1, replicas)]
        lengths = np.diff(self.future_indptr)
        indptr = np.concatenate(([0], np.cumsum(np.tile(lengths, replicas)))).astype(np.int64)
        row_of_user = np.full(n * replicas, -1, dtype=np.int64)
        users = np.concatenate([self.users + r * n for r in range(replicas)]).astype(np.int64)
        row_of_user[users] = np.arange(len(users))
        return replace(
            self,
            user_ids=np.concatenate(ids).astype(str),
            users=users,
            row_of_user=row_of_user,
            future_indptr=indptr,
            future_items=np.tile(self.future_items, replicas),
            first_future=np.tile(self.first_future, replicas),
            replicas=replicas,
        )

    def source_user(self, users: npt.ArrayLike) -> IntArray:
        """The data user index each (possibly replicated) user index stands for: index mod the data's users."""
        n = len(self.user_ids) // self.replicas
        source: IntArray = np.asarray(users, dtype=np.int64) % n
        return source

    @property
    def n_items(self) -> int:
        return int(self.affinity.shape[1])

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
        """Elementwise affinity(u, i) = max over j ∈ F_u of s(i, j) in [0, 1) for i ∉ F_u; -1 for i ∈ F_u."""
        return self._lookup(self.rows(users), np.asarray(items, dtype=np.int64))

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
        value = self._lookup(self.rows(users), items)
        b, a = config.background_attractiveness, config.affinity_attractiveness
        result: FloatArray = np.where(value < 0, config.future_attractiveness, b + (a - b) * value)
        return result

    def _is_future(self, rows: IntArray, items: IntArray) -> BoolArray:
        found: BoolArray = self._lookup(rows, items) < 0
        return found

    def _lookup(self, rows: IntArray, items: IntArray) -> FloatArray:
        # Indexing the flat view is about twice as fast as affinity[rows, items] on a million cells.
        # A replica's row r x m + row shares the affinity row `row` (see `replicated`).
        taste = rows % self.affinity.shape[0] if self.replicas > 1 else rows
        value: FloatArray = self.affinity.reshape(-1)[taste * self.n_items + items].astype(np.float64)
        return value


def _neighbourhood_affinity(
    similarity: sp.csr_matrix, future_indptr: IntArray, future_items: IntArray
) -> npt.NDArray[np.float32]:
    """(shoppers x items): row r = max over r's future items j of similarity[j], in column blocks
    of at most `_BLOCK_CELLS` dense cells (every shopper has at least one future item)."""
    n_rows, n_items = len(future_indptr) - 1, similarity.shape[1]
    affinity = np.zeros((n_rows, n_items), dtype=np.float32)
    width = max(1, _BLOCK_CELLS // max(n_items, 1))
    for low in range(0, n_items, width):
        block = similarity[:, low : low + width].toarray()
        for row in range(n_rows):
            mine = future_items[future_indptr[row] : future_indptr[row + 1]]
            affinity[row, low : low + width] = block[mine].max(axis=0)
    return affinity
