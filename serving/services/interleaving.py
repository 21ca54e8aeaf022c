"""Serving an interleaving experiment: one team-draft list of both arms per exposed request.

An interleaving experiment has exactly two arms: the control is team A, the other arm team B
(`teams`). An exposed user of a running interleaving experiment gets ONE list: both arms'
top-k, blended by team-draft interleaving (`engine.interleaving.interleave`) with coins
derived from the key "<experiment salt>:<user id>:<request id>", so the list of a request can
be rebuilt from its log. The answer says `"arm": "interleaved"`, names the teams' arms
(`"teams": {"A": ..., "B": ...}`), and every item carries its `team` ("A"/"B") and `arm` (the
contributing arm's name); its `score` is that arm's own score (the two arms' scores are not
comparable: the order is the draft's, not the scores').

What is logged (through the same `ServingLog` as an A/B answer, so the buffered lean path
and the synchronous DRF path store it alike):

- the served request and the first exposure hold the control arm (team A): every exposed
  user sees both arms, and the A/B rollups, which attribute users by exposure, then count
  all of them under the control (the interleaving rollups do not use them); `arm_probability`
  is the chance that a random user gets the interleaved list (the experiment's entry share);
- one impression per item, event id "imp:<request id>:<position>" as for A/B, whose `arm` is
  the arm of the team that contributed the item. Clicks are credited from these rows
  (analysis/services/interleaving_rollups.py).

Users outside the traffic share, and everyone while the experiment is paused or stopped, get
the control's list, not exposed, exactly as in an A/B test (`serving.serve`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from core import metrics, request_context
from engine.interleaving import interleave
from experiments.models import Arm
from recommenders.serving import recommend_from_run
from serving.services.config import (
    ExposureRow,
    LogWriter,
    ServedRow,
    ServingConfig,
    ServingLog,
    interleaved_probability,
)
from serving.services.events import EventRow, impression_event_id

INTERLEAVED = "interleaved"
"""The `arm` of an interleaved answer."""


def teams(arms: tuple[Arm, ...] | list[Arm]) -> tuple[Arm, Arm]:
    """(team A, team B) of an interleaving experiment's two arms: the control is A."""
    if len(arms) != 2 or sum(arm.is_control for arm in arms) != 1:
        raise ValueError("an interleaving experiment has exactly two arms, one of them the control")
    control = next(arm for arm in arms if arm.is_control)
    other = next(arm for arm in arms if not arm.is_control)
    return control, other


def request_key(salt: str, user_id: str, request_id: uuid.UUID | str) -> str:
    """The key the team-draft coins of one request are derived from (see `interleaving.request_coins`)."""
    return f"{salt}:{user_id}:{request_id}"


def serve_interleaved(
    config: ServingConfig, user_id: str, k: int, query: str | None, bucket: int, log: LogWriter
) -> dict[str, Any]:
    """The team-draft answer of an exposed user (module docstring), logged by `log`."""
    team_a, team_b = teams(config.arms)
    # The serving path's remembered top lists (exact; recommenders.serving.recommend_from_run).
    lists = [recommend_from_run(arm.training_run, user_id, k, query) for arm in (team_a, team_b)]  # type: ignore[arg-type]
    scores = [{rec.item_id: rec.score for rec in ranked} for ranked in lists]
    request_id = uuid.uuid4()
    blended = interleave([r.item_id for r in lists[0]], [r.item_id for r in lists[1]], k,
                         request_key(config.salt, user_id, request_id))  # fmt: skip
    arm_of = {"A": team_a, "B": team_b}
    probability = interleaved_probability(config)
    now = timezone.now()
    impressions = [
        EventRow(impression_event_id(request_id, position), "impression", user_id, item, request_id,
                 config.experiment_id, arm_of[team].pk, position, probability, None, now, now)
        for position, (item, team) in enumerate(zip(blended.items, blended.teams, strict=True), start=1)
    ]  # fmt: skip
    # No exploration share on interleaved lists (refused at creation): share 0, not explored.
    served = ServedRow(request_id, config.experiment_id, team_a.pk, user_id, True, probability, query or "", k, 0.0,
                       False, request_context.current(), now)  # fmt: skip
    exposure = ExposureRow(config.experiment_id, team_a.pk, user_id, bucket, now)
    log(ServingLog(served, exposure, impressions))
    metrics.RECOMMENDATIONS_SERVED.inc(config.key, INTERLEAVED)
    return {
        "request_id": str(request_id),
        "experiment": config.key,
        "arm": INTERLEAVED,
        "exposed": True,
        "arm_probability": probability,
        "teams": {"A": team_a.name, "B": team_b.name},
        "items": [
            {
                "item_id": item,
                "score": scores[0 if team == "A" else 1][item],
                "position": position,
                "team": team,
                "arm": arm_of[team].name,
            }
            for position, (item, team) in enumerate(zip(blended.items, blended.teams, strict=True), start=1)
        ],
    }
