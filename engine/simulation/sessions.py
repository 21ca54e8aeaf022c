"""Arrivals: when which shopper visits, and what they search for (Django-free).

Day 0 starts at `config.start`, or at the shoppers' cut-off when that is None; D = `config.days`,
λ = `config.daily_users`, n = the number of eligible shoppers. `config.arrivals` picks the model:

* "at-start" (default): day d (0-based) has N_d ~ Poisson(λ) sessions, at times drawn uniformly
  from the day's 86,400 seconds, sorted; each session's user is drawn uniformly (with
  replacement) from all shoppers. Every shopper is thus a Poisson process of rate λ / n a day
  from day 0, and a shopper's first visit falls in the first days (with λ = 1,000 and Online
  Retail's n = 1,893, 1 - e^(-λ d / n) = 80 % of them have come by day 3).
* "uniform" / "first-purchase": shoppers keep arriving. Shopper r's first visit is at t_r days
  into the run: uniform on [0, D), or the time of their first purchase after the cut-off f_r,
  rescaled, t_r = D × (f_r - cutoff) / (max_r f_r - cutoff + 1 s) (their real order and rhythm).
  After it they return as a Poisson process of rate ρ a day until the end, with

      ρ = (λ D - m) / Σ_r (D - t_r)

  so the expected total is λ D sessions, as with "at-start"; m = n shoppers arrive when λ D ≥ n,
  else a random round(λ D) of them, each once (ρ = 0). Daily traffic then grows over the run
  (new arrivals plus ρ × the shoppers arrived so far), as on a shop that gains customers.

With probability `search_share` a session is a search: one of the user's future items is drawn
uniformly, and the query is m words of its title (whitespace-separated, in title order, m uniform
in 1 .. min(query_words, number of words)); a future item without a title gives no query. The
plan depends only on (config, shoppers): its random numbers come from their own stream of
`config.seed`.
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
    start = shoppers.cutoff if config.start is None else config.start
    if config.arrivals == "at-start":
        per_day = rng.poisson(config.daily_users, size=config.days)
        n = int(per_day.sum())
        day = np.repeat(np.arange(config.days, dtype=np.int64), per_day)
        second = rng.integers(0, SECONDS_PER_DAY, size=n)
        # Seconds lie within their day, so sorting the times keeps the days in order.
        timestamp = np.sort(start + day * SECONDS_PER_DAY + second).astype(np.int64)
        rows = rng.integers(0, shoppers.n_shoppers, size=n)
    else:
        offset, rows = _spread_visits(config, shoppers, rng)
        timestamp, day = start + offset, offset // SECONDS_PER_DAY
    query, query_item = _queries(config, shoppers, rows, rng)
    return Sessions(timestamp=timestamp, day=day, user=shoppers.users[rows], query=query, query_item=query_item)


def _spread_visits(config: SimulationConfig, shoppers: Shoppers, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """(seconds since the start, shopper row) of every visit when shoppers arrive over the run, by time."""
    horizon = float(config.days)
    expected = config.daily_users * horizon
    n = shoppers.n_shoppers
    chosen = np.arange(n) if expected >= n else np.sort(rng.choice(n, size=round(expected), replace=False))
    if config.arrivals == "uniform":
        first = rng.random(len(chosen)) * horizon
    else:
        since = (shoppers.first_future[chosen] - shoppers.cutoff).astype(np.float64)
        first = horizon * since / (since.max(initial=0.0) + 1.0)
    remaining = horizon - first
    rate = max(expected - len(chosen), 0.0) / remaining.sum() if len(chosen) else 0.0
    returns = rng.poisson(rate * remaining)
    again = np.repeat(np.arange(len(chosen)), returns)
    when = np.concatenate((first, first[again] + rng.random(len(again)) * remaining[again]))
    who = np.concatenate((chosen, chosen[again])).astype(np.int64)
    second = np.minimum(np.floor(when * SECONDS_PER_DAY), config.days * SECONDS_PER_DAY - 1).astype(np.int64)
    order = np.argsort(second, kind="stable")  # stable: a first visit stays before a return in the same second
    return second[order], who[order]


def _queries(
    config: SimulationConfig, shoppers: Shoppers, rows: IntArray, rng: np.random.Generator
) -> tuple[tuple[str | None, ...], IntArray]:
    """Each session's search text (None without one) and the future item it was taken from (-1)."""
    n = len(rows)
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
    return tuple(query), query_item
