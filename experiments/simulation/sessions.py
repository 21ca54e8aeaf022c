"""Arrivals: when which shopper visits, and what they search for (Django-free).

Day d (0-based) has N_d ~ Poisson(daily_users) sessions, at times drawn uniformly from the
day's 86,400 seconds, sorted. Day 0 starts at `config.start`, or at the shoppers' cut-off when
that is None. Each session's user is drawn uniformly (with replacement) from the eligible
shoppers. With probability `search_share` the session is a search: one of the user's future
items is drawn uniformly, and the query is m words of its title (whitespace-separated, in
title order, m uniform in 1 .. min(query_words, number of words)); a future item without a
title gives no query. The plan depends only on (config, shoppers): its random numbers come
from their own stream of `config.seed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SECONDS_PER_DAY, SimulationConfig
from .preferences import IntArray, Shoppers

__all__ = ["Sessions", "plan_sessions"]

SESSIONS_STREAM = 1
"""Second word of the seed sequence of the session plan (outcomes use other streams)."""


@dataclass(frozen=True)
class Sessions:
    """Parallel arrays, one entry per session, ordered by time (hence by day).

    `user` holds data user indices; `query` the search text or None; `query_item` the future
    item a query was taken from (-1 without a query).
    """

    timestamp: IntArray
    day: IntArray
    user: IntArray
    query: tuple[str | None, ...]
    query_item: IntArray

    def __len__(self) -> int:
        return len(self.timestamp)

    def day_slice(self, day: int) -> slice:
        """The positions of day `day`'s sessions (contiguous, since sessions are sorted by time)."""
        start, stop = np.searchsorted(self.day, [day, day + 1])
        return slice(int(start), int(stop))

    def take(self, positions: slice) -> Sessions:
        return Sessions(
            timestamp=self.timestamp[positions],
            day=self.day[positions],
            user=self.user[positions],
            query=self.query[positions],
            query_item=self.query_item[positions],
        )


def plan_sessions(config: SimulationConfig, shoppers: Shoppers) -> Sessions:
    """All sessions of the simulation (see the module docstring for the model)."""
    rng = np.random.default_rng([config.seed, SESSIONS_STREAM])
    per_day = rng.poisson(config.daily_users, size=config.days)
    n = int(per_day.sum())
    day = np.repeat(np.arange(config.days, dtype=np.int64), per_day)
    second = rng.integers(0, SECONDS_PER_DAY, size=n)
    start = shoppers.cutoff if config.start is None else config.start
    # Seconds lie within their day, so sorting the times keeps the days in order.
    timestamp = np.sort(start + day * SECONDS_PER_DAY + second).astype(np.int64)
    rows = rng.integers(0, shoppers.n_shoppers, size=n)
    user = shoppers.users[rows]

    searching = np.flatnonzero(rng.random(n) < config.search_share)
    s_rows = rows[searching]
    lengths = shoppers.future_indptr[s_rows + 1] - shoppers.future_indptr[s_rows]
    picks = shoppers.future_indptr[s_rows] + np.floor(rng.random(len(searching)) * lengths).astype(np.int64)
    source_items = shoppers.future_items[picks]
    titles = [shoppers.item_text[i].split() for i in source_items.tolist()]
    word_counts = np.array([len(t) for t in titles], dtype=np.int64)
    max_words = np.minimum(word_counts, config.query_words)
    n_words = 1 + np.floor(rng.random(len(searching)) * max_words).astype(np.int64)
    pool = rng.random(int(word_counts.sum()))
    offsets = np.concatenate(([0], np.cumsum(word_counts)))

    query: list[str | None] = [None] * n
    query_item = np.full(n, -1, dtype=np.int64)
    for j, (session, words) in enumerate(zip(searching.tolist(), titles, strict=True)):
        if not words:
            continue
        keys = pool[offsets[j] : offsets[j + 1]]
        chosen = np.sort(np.argsort(keys, kind="stable")[: n_words[j]])
        query[session] = " ".join(words[p] for p in chosen.tolist())
        query_item[session] = source_items[j]
    return Sessions(timestamp=timestamp, day=day, user=user, query=tuple(query), query_item=query_item)
