"""Run a simulation against callables: the assignment and the arms' recommenders (Django-free).

`run` plans every session (`plan_sessions`), then works day by day: it assigns the day's
users to arms with `assign`, asks each arm's `recommend_batch` for the lists of its sessions
in one call, and draws the outcomes (`clicks.outcomes`) from the day's own random stream,
seeded by (seed, day). So the events of a day depend only on the config, the shoppers and
what the callables return, not on batching, cancellation or earlier days' callables.

A/A test: pass the same recommender for every arm (and injected_effect = 0). Known effect:
set `injected_effect` (and `injected_arm`) in the config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.interleaving import random_coins, team_draft_many

from .clicks import Outcomes, outcomes
from .config import SimulationConfig, SimulationError
from .exploring import Exploration, explore
from .preferences import BoolArray, FloatArray, IntArray, Shoppers
from .sessions import Sessions, plan_sessions

__all__ = [
    "ArmSummary",
    "Assign",
    "DayBatch",
    "InterleaveBatch",
    "Progress",
    "RecommendBatch",
    "SimulationResult",
    "run",
]

OUTCOMES_STREAM = 2
"""Second word of the seed sequence of each day's outcome draws: (seed, OUTCOMES_STREAM, day)."""
TEAM_DRAFT_STREAM = 3
"""Second word of the seed of each day's team-draft coins (interleaved runs): (seed, TEAM_DRAFT_STREAM, day)."""

RecommendBatch = Callable[[int, IntArray, Sequence[str | None]], npt.ArrayLike]
"""(arm index, data user indices, their queries) -> item indices (n, ≤ k), best first, -1 = empty."""

InterleaveBatch = Callable[[IntArray, Sequence[str | None]], tuple[npt.ArrayLike, npt.ArrayLike]]
"""(data user indices, their queries) -> (item indices (n, ≤ k), the arm of each slot (n, ≤ k)): lists
interleaved elsewhere (a server), one per session; arm 0 = team A, 1 = team B, -1 = empty slot."""

Assign = Callable[[npt.NDArray[np.str_]], npt.ArrayLike]
"""(external user ids) -> arm index per user, -1 for a user outside the experiment."""

Progress = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], a short message) after each day."""


@dataclass(frozen=True)
class DayBatch:
    """One simulated day, handed to `on_batch` so the caller can store it in bulk.

    `outcomes.session` indexes the full plan (`SimulationResult.sessions`); `sessions[j]`
    is plan session `session_offset + j`; `arm[j]` its arm (-1: not in the experiment).
    With an exploration share (`run(..., exploration=...)`), `propensity[j, r]` is the logging
    policy's probability of the item shown at rank r + 1 of session j and `explored[j]` says
    whether session j was explored; both are None otherwise.
    """

    day: int
    session_offset: int
    sessions: Sessions
    arm: IntArray
    outcomes: Outcomes
    propensity: FloatArray | None = None
    explored: BoolArray | None = None


@dataclass(frozen=True)
class ArmSummary:
    """Totals of one arm over the simulated days."""

    arm: int
    sessions: int
    impressions: int
    clicks: int
    carts: int
    purchases: int
    revenue: float

    @property
    def ctr(self) -> float:
        """clicks / impressions (0 without impressions)."""
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True)
class SimulationResult:
    """`arm[j]` is the arm of plan session j (-1: outside the experiment or not simulated).

    `outcomes` holds every impression when `run` was asked to keep them, else none.
    """

    config: SimulationConfig
    sessions: Sessions
    arm: IntArray
    outcomes: Outcomes
    days_completed: int
    cancelled: bool
    arms: tuple[ArmSummary, ...] = field(default=())


class _Totals:
    """Per-arm running sums, growing with the largest arm index seen."""

    def __init__(self) -> None:
        self.counts = np.zeros((5, 0), dtype=np.int64)  # sessions, impressions, clicks, carts, purchases
        self.revenue: FloatArray = np.zeros(0)

    def add(self, arm: IntArray, result: Outcomes) -> None:
        # Impressions may name an arm no session has (an interleaved run's sessions are all arm 0).
        size = max(self.counts.shape[1], int(arm.max(initial=-1)) + 1, int(result.arm.max(initial=-1)) + 1)
        rows = [
            np.bincount(arm[arm >= 0], minlength=size),
            np.bincount(result.arm, minlength=size),
            np.bincount(result.arm[result.clicked], minlength=size),
            np.bincount(result.arm[result.carted], minlength=size),
            np.bincount(result.arm[result.purchased], minlength=size),
        ]
        grown = np.zeros((5, size), dtype=np.int64)
        grown[:, : self.counts.shape[1]] = self.counts
        self.counts = grown + np.array(rows, dtype=np.int64)
        revenue = np.zeros(size)
        revenue[: len(self.revenue)] = self.revenue
        self.revenue = revenue + np.bincount(result.arm, weights=result.revenue, minlength=size)

    def summaries(self) -> tuple[ArmSummary, ...]:
        return tuple(
            ArmSummary(
                arm=g,
                sessions=int(self.counts[0, g]),
                impressions=int(self.counts[1, g]),
                clicks=int(self.counts[2, g]),
                carts=int(self.counts[3, g]),
                purchases=int(self.counts[4, g]),
                revenue=float(self.revenue[g]),
            )
            for g in range(self.counts.shape[1])
        )


def run(
    config: SimulationConfig,
    shoppers: Shoppers,
    recommend_batch: RecommendBatch,
    assign: Assign,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_batch: Callable[[DayBatch], None] | None = None,
    keep_outcomes: bool = True,
    deduplicate: bool = True,
    interleaved: bool = False,
    before_day: Callable[[int], None] | None = None,
    interleave_batch: InterleaveBatch | None = None,
    exploration: Exploration | None = None,
) -> SimulationResult:
    """Simulate `config.days` days of traffic (see the module docstring).

    `should_stop` is asked before each day; when it returns True the run ends there with
    `cancelled=True` and the days done so far. `on_batch` receives each finished day;
    with `keep_outcomes=False` the result keeps only the per-arm totals (for long runs whose
    days the caller stores as they come). With `deduplicate` (the default), `recommend_batch`
    is asked once per distinct (user, query) of an arm's day and the list reused for the
    user's other sessions that day: right for deterministic recommenders (trained models);
    pass False for ones that randomise per request.

    `interleaved`: an interleaving experiment of arms 0 (team A) and 1 (team B). `assign` then
    returns 0 for every user in the experiment; each of their sessions is shown the team-draft
    list (`interleaving.team_draft_many`, coins from the day's own stream) of both arms' lists,
    and each impression's `Outcomes.arm` is the arm that contributed it (so the click model's
    injected lift applies to the injected arm's items). `DayBatch.arm` stays 0 for those sessions.

    `before_day(day)` is called before each day's assignment (after `should_stop`): a bandit
    updates its weights there from the days before.

    `config.population_scale` s > 1 runs on `shoppers.replicated(s)` (pass the real shoppers): the
    user indices of the sessions, batches and result then span s x the data's users (replica r of
    data user u is u + r x n), `assign` gets the replicas' ids ("<id>#<r>"), and `recommend_batch`
    the data user index each replica stands for, so the callables need no change.

    `exploration` (not with `interleaved`): every session in the experiment is served as live serving
    does with that exploration share (`exploring.explore`: every arm's top k for the session, a
    random ordering of their union for the sessions its request id's hash picks); each `DayBatch`
    then carries the shown positions' propensities and the explored flags.
    """
    if exploration is not None and interleaved:
        raise SimulationError("an interleaved run takes no exploration share")
    exploring = exploration is not None and exploration.share > 0
    shoppers = shoppers.replicated(config.population_scale)
    if shoppers.replicas > 1:
        recommend_batch = _for_source_users(recommend_batch, shoppers)
        if interleave_batch is not None:
            raise SimulationError("a served interleaved list (--http) cannot take population_scale > 1")
    sessions = plan_sessions(config, shoppers)
    arm_of_session = np.full(len(sessions), -1, dtype=np.int64)
    kept: list[Outcomes] = []
    totals = _Totals()
    days_completed = 0
    cancelled = False
    if progress is not None:
        progress(0.0, f"planned {len(sessions)} sessions over {config.days} days")
    for day in range(config.days):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        if before_day is not None:
            before_day(day)
        positions = sessions.day_slice(day)
        batch = sessions.take(positions)
        arms = _assign(assign, shoppers.user_ids[batch.user])
        if interleaved and (arms > 0).any():
            raise SimulationError("an interleaved run assigns every user in the experiment to arm 0")
        rankings: dict[int, IntArray] = {}
        recommended = np.full((len(batch), config.k), -1, dtype=np.int64)
        propensity = explored = None

        if exploring and exploration is not None and (arms >= 0).any():
            rows = np.flatnonzero(arms >= 0)
            day_lists = [
                _lists(recommend_batch, g, batch, rows, config.k, deduplicate) for g in range(exploration.arms)
            ]
            served = explore(day_lists, arms[rows], exploration.request_ids(positions.start + rows), exploration.share)
            recommended[rows] = served.shown
            propensity = np.zeros((len(batch), config.k))
            propensity[rows] = served.propensity
            explored = np.zeros(len(batch), dtype=np.bool_)
            explored[rows] = served.explored
        else:
            groups = np.unique(arms[arms >= 0]).tolist()
            if interleaved:
                # A served interleaved list (the --http driver's hook) needs no scoring here.
                groups = [0, 1] if groups and interleave_batch is None else []
            for g in groups:
                rows = np.flatnonzero(arms == (0 if interleaved else g))
                lists = _lists(recommend_batch, g, batch, rows, config.k, deduplicate)
                if interleaved:
                    rankings[g] = lists
                else:
                    recommended[arms == g] = lists
        slot_arm = None
        if interleaved and interleave_batch is not None:
            recommended, slot_arm = _served_interleaved(interleave_batch, batch, arms, config.k)
        elif interleaved:
            recommended, slot_arm = _team_draft(rankings, arms, config, day)
        rng = np.random.default_rng([config.seed, OUTCOMES_STREAM, day])
        result = outcomes(config, shoppers, batch, recommended, arms, rng, slot_arm).shifted(positions.start)
        arm_of_session[positions] = arms
        totals.add(arms, result)
        if keep_outcomes:
            kept.append(result)
        if on_batch is not None:
            on_batch(DayBatch(day=day, session_offset=positions.start, sessions=batch, arm=arms, outcomes=result,
                              propensity=propensity, explored=explored))  # fmt: skip
        days_completed = day + 1
        if progress is not None:
            progress(
                days_completed / config.days,
                f"day {days_completed}/{config.days}: {len(batch)} sessions, {len(result)} impressions, "
                f"{int(result.clicked.sum())} clicks",
            )
    return SimulationResult(
        config=config,
        sessions=sessions,
        arm=arm_of_session,
        outcomes=Outcomes.concatenate(kept),
        days_completed=days_completed,
        cancelled=cancelled,
        arms=totals.summaries(),
    )


def _team_draft(
    rankings: dict[int, IntArray], arms: IntArray, config: SimulationConfig, day: int
) -> tuple[IntArray, IntArray]:
    """The day's shown lists and the arm of each slot for an interleaved run: team draft of arm 0's
    and arm 1's rankings for the sessions in the experiment (arm 0), nothing for the others."""
    recommended = np.full((len(arms), config.k), -1, dtype=np.int64)
    slot_arm = np.full((len(arms), config.k), -1, dtype=np.int64)
    rows = np.flatnonzero(arms == 0)
    if len(rows):
        coins = random_coins(len(rows), config.k, np.random.default_rng([config.seed, TEAM_DRAFT_STREAM, day]))
        drafted = team_draft_many(rankings[0], rankings[1], config.k, coins)
        recommended[rows] = drafted.items
        slot_arm[rows] = drafted.team  # TEAM_A = 0 = arm 0, TEAM_B = 1 = arm 1, NO_TEAM = -1 = empty slot
    return recommended, slot_arm


def _served_interleaved(
    interleave_batch: InterleaveBatch, batch: Sessions, arms: IntArray, k: int
) -> tuple[IntArray, IntArray]:
    """The day's lists and slot arms asked of `interleave_batch` for the sessions in the experiment."""
    recommended = np.full((len(arms), k), -1, dtype=np.int64)
    slot_arm = np.full((len(arms), k), -1, dtype=np.int64)
    rows = np.flatnonzero(arms == 0)
    if len(rows):
        items, slots = (np.asarray(a) for a in interleave_batch(batch.user[rows], [batch.query[r] for r in rows]))
        if items.shape != slots.shape or items.ndim != 2 or items.shape[0] != len(rows) or items.shape[1] > k:
            raise SimulationError(
                f"interleave_batch must return two ({len(rows)}, ≤ {k}) arrays, got shapes {items.shape}, {slots.shape}"
            )
        if ((slots < -1) | (slots > 1)).any() or ((slots == -1) != (items < 0)).any():
            raise SimulationError("interleave_batch's slot arms must be 0 or 1 on shown items and -1 on empty slots")
        recommended[rows, : items.shape[1]] = items
        slot_arm[rows, : slots.shape[1]] = slots
    return recommended, slot_arm


def _assign(assign: Assign, user_ids: npt.NDArray[np.str_]) -> IntArray:
    arms = np.asarray(assign(user_ids))
    if arms.shape != user_ids.shape or (arms.size and not np.issubdtype(arms.dtype, np.integer)):
        raise SimulationError(f"assign must return one integer arm per user ({len(user_ids)}), got {arms!r:.80}")
    return arms.astype(np.int64)


def _for_source_users(recommend_batch: RecommendBatch, shoppers: Shoppers) -> RecommendBatch:
    """`recommend_batch` asked for the data users that replicated shoppers stand for."""

    def recommend(arm: int, users: IntArray, queries: Sequence[str | None]) -> npt.ArrayLike:
        return recommend_batch(arm, shoppers.source_user(users), queries)

    return recommend


def _lists(
    recommend_batch: RecommendBatch, arm: int, batch: Sessions, rows: IntArray, k: int, deduplicate: bool
) -> IntArray:
    """Arm `arm`'s lists for the day's sessions `rows`, padded to k with -1."""
    queries = [batch.query[r] for r in rows.tolist()]
    if deduplicate:
        # One list per distinct (user, query) of the day: a day repeats its shoppers.
        keys = list(zip(batch.user[rows].tolist(), queries, strict=True))
        first: dict[tuple[int, str | None], int] = {}
        inverse = np.fromiter((first.setdefault(key, len(first)) for key in keys), np.int64, len(keys))
        distinct = list(first)
        users = np.array([u for u, _ in distinct], dtype=np.int64)
        found = _recommend(recommend_batch, arm, users, [q for _, q in distinct], k)[inverse]
    else:
        found = _recommend(recommend_batch, arm, batch.user[rows], queries, k)
    padded = np.full((len(rows), k), -1, dtype=np.int64)
    padded[:, : found.shape[1]] = found
    return padded


def _recommend(
    recommend_batch: RecommendBatch, arm: int, users: IntArray, queries: list[str | None], k: int
) -> IntArray:
    lists = np.asarray(recommend_batch(arm, users, queries))
    if lists.ndim != 2 or lists.shape[0] != len(users) or lists.shape[1] > k:
        raise SimulationError(
            f"recommend_batch for arm {arm} must return ({len(users)}, ≤ {k}) item indices, got shape {lists.shape}"
        )
    if lists.size and not np.issubdtype(lists.dtype, np.integer):
        raise SimulationError(f"recommend_batch for arm {arm} must return integer item indices, got {lists.dtype}")
    return lists.astype(np.int64)
