"""Simulated traffic sent through the real HTTP API, for load tests (`simulate --http URL --token T`).

The same simulation as in-process (`engine.simulation.run`: same shoppers, sessions,
queries and click model), but every session is one POST to
``/api/v1/experiments/{key}/recommendations`` (the server assigns the arm, scores, and logs the
exposure and the impressions itself) and the day's clicks, add-to-carts and purchases go to
``/api/v1/events`` in batches. Differences from in-process mode, by construction:

- every recommendations request names its run (`"simulation": <run id>`, which the server honours
  only for a token with the 'simulate' scope), and its user is "sim<run>:<shopper id>" (the ids the
  run's rows are stored under, as in process), which the server's models do not know, so every
  list is the model's cold-start list (popularity, or the query's matches): realistic load, not
  realistic CTRs (use in-process mode for those);
- the arm of each session is predicted with the experiment's own bucketing of that id and
  checked against the server's answer (a mismatch stops the run: assignment is broken);
- on an interleaving experiment the server drafts each exposed session's list from both arms
  (its answer says `"arm": "interleaved"` and gives every item's `team`); the shopper reacts to
  that list as served (`run(..., interleaved=True, interleave_batch=...)`: the click model sees
  each slot's arm, so an injected effect lifts the injected arm's items), and the clicks go back
  with their request id and item id, so the server's fold credits them exactly as live clicks;
- on a bandit experiment the run has its own weight history, on the simulated clock, as in
  process (`_HttpBandit`): before each simulated day the day's weights are stored by the same
  service (`bandit_schedule.start_history` / `bandit_results.update_weights` from the folded earlier days), and the
  run waits `bandit_schedule.SWITCH_DELAY` so that every serving process has reloaded them: the server
  assigns the users of the requests that name the run by the run's history, never by the live one
  (`serving.services.serve._schedule`). The server stamps exposures with its own clock, so after each day the
  run's new exposures are re-dated to their first simulated session (and marked as the run's):
  each user then falls in the cohort of the period that assigned them, as in process;
- sessions are not de-duplicated (one request per session, as real traffic would be);
- each day's clicks, add-to-carts and purchases are sent once the server has stored that day's
  answers (it may buffer its serving logs for a moment), so they are attributed to their arm;
- the server stamps impressions with its own clock; the simulated days end now
  (``start = now - days``), so clicks and purchases are in the recent past, never refused as
  future events.

Afterwards the run's requests, exposures and events (found by the user prefix) are marked with
the run, so they count as simulated traffic and delete with it, and the rollups are recomputed.
Only loopback hosts are accepted: this sends thousands of requests a second.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from django.db import connection
from django.utils import timezone

from analysis.services import bandit_results
from analysis.services.rollups import recompute
from engine import bucketing
from engine.simulation import DayBatch, SimulationConfig, SimulationError, run
from engine.simulation.config import SECONDS_PER_DAY
from experiments.models import Experiment
from experiments.services import bandit_schedule
from serving.models import ApiToken, Event, Exposure, ServedRequest
from serving.services.interleaving import INTERLEAVED
from serving.services.serve import allocation_of
from serving.services.tokens import find_token
from simulation.models import SimulationRun
from simulation.services.runs import SimulationRefused, check_simulation, load_shoppers

EVENT_BATCH = 5000
# The token's scopes: ask for recommendations, send events, name the run in the requests.
SCOPES = tuple(scope.value for scope in (ApiToken.Scope.SERVE, ApiToken.Scope.INGEST, ApiToken.Scope.SIMULATE))
_SCOPES_TEXT = ", ".join(SCOPES[:-1]) + f" and {SCOPES[-1]}"
LOGGED_WITHIN = 30.0  # seconds the server may take to store the answers it buffered (it flushes every 0.1 s)
# (event type, id suffix, seconds after the session) of what follows an impression.
_FOLLOW_UPS = (("click", "c", 20), ("add_to_cart", "a", 60), ("purchase", "p", 120))


def loopback_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `url`; SimulationRefused unless it is http(s) to this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SimulationRefused(f"--http needs an http:// or https:// URL, got {url!r}")
    host = parts.hostname
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise SimulationRefused(f"cannot resolve {host!r}") from None
    outside = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if outside:
        raise SimulationRefused(
            f"refusing to send simulated traffic to {host} ({', '.join(outside)}): --http only targets this "
            "machine (localhost, 127.0.0.0/8, ::1), since a load test against a shared server hurts its users"
        )
    return parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80)


class _Client:
    """JSON over one kept-alive connection, reconnecting once when the server closed it."""

    def __init__(self, scheme: str, host: str, port: int, token: str, timeout: float = 30.0) -> None:
        def connect() -> http.client.HTTPConnection:
            if scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=timeout)
            return http.client.HTTPConnection(host, port, timeout=timeout)

        self._factory: Callable[[], http.client.HTTPConnection] = connect
        self._connection = self._factory()
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.requests = 0

    def post(self, path: str, body: Any) -> Any:
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                self._connection.request("POST", path, data, self._headers)
                response = self._connection.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._connection.close()
                self._connection = self._factory()
                if attempt == 2:
                    raise
        self.requests += 1
        if response.status >= 300:
            raise SimulationError(f"POST {path} answered {response.status}: {payload[:300]!r}")
        return json.loads(payload)

    def close(self) -> None:
        self._connection.close()


@dataclass
class HttpRunResult:
    simulation: SimulationRun
    requests: int  # recommendation requests (one per session)
    event_batches: int
    events_sent: int
    seconds: float


def run_http_simulation(
    experiment: Experiment,
    settings: dict[str, Any],
    url: str,
    token: str,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> HttpRunResult:
    """Simulate `settings` (as for `queue_simulation`) through the HTTP API at `url` (see the module docstring)."""
    scheme, host, port = loopback_target(url)
    check_simulation(experiment, settings)
    if not token:
        raise SimulationRefused(f"--http needs --token: an API token with the {_SCOPES_TEXT} scopes")
    if settings.get("population_scale", 1) != 1:
        raise SimulationRefused(
            "--http cannot take a population scale above 1: the server would see each replicated shopper as a "
            "stranger and could not personalise for them; run it in-process (without --http)"
        )
    found = find_token(token)  # the server shares this database (it runs on this machine)
    missing = [scope for scope in SCOPES if found is None or scope not in found.scopes]
    if missing:
        raise SimulationRefused(
            f"--http needs an API token with the {_SCOPES_TEXT} scopes; "
            + ("this one is unknown or revoked" if found is None else f"this one lacks {', '.join(missing)}")
        )
    data, shoppers = load_shoppers(experiment)
    days = int(settings.get("days", SimulationConfig.days))
    start = int(time.time()) - days * SECONDS_PER_DAY - 300
    config = SimulationConfig(**{**settings, "start": start})
    arms = tuple(experiment.arms.order_by("position"))
    names = [arm.name for arm in arms]
    allocation = allocation_of(experiment, arms)
    item_index = {item: j for j, item in enumerate(data.item_ids)}
    simulation = SimulationRun.objects.create(
        experiment=experiment, config={**settings, "http": url}, status="running", started_at=timezone.now(),
        message=f"sending to {url}",
    )  # fmt: skip
    prefix = simulation.user_prefix
    client = _Client(scheme, host, port, token)
    path = f"/api/v1/experiments/{experiment.key}/recommendations"
    served: dict[int, list[str]] = {}  # arm -> request ids of the day's sessions, in the order asked
    sent = batches = 0
    began = time.perf_counter()

    interleaved = experiment.design == Experiment.Design.INTERLEAVING
    team_arm = {"A": 0, "B": 1}  # engine arms of an interleaved run: 0 = team A (the control), 1 = team B

    adaptive = _HttpBandit(experiment, simulation, allocation, start) if bandit_schedule.is_bandit(experiment) else None

    def assign(user_ids: np.ndarray) -> np.ndarray:
        ids = np.array([prefix + u for u in user_ids.tolist()], dtype=object)
        if adaptive is not None:
            return adaptive.assign(ids)
        arm = bucketing.assign_many(allocation, experiment.salt, ids).arm
        return np.where(arm >= 0, 0, -1) if interleaved else arm

    def ask(user: int, query: str | None, expected: str) -> Any:
        body = {"user_id": prefix + data.user_ids[user], "k": config.k, "query": query or "",
                "simulation": simulation.pk}  # fmt: skip
        answer = client.post(path, body)
        if answer["arm"] != expected:
            raise SimulationError(
                f"the server served {body['user_id']} arm {answer['arm']!r}, the experiment's bucketing says "
                f"{expected!r}: assignment differs between the API and the bucketing"
            )
        return answer

    def recommend(arm: int, users: np.ndarray, queries: Sequence[str | None]) -> np.ndarray:
        lists = np.full((len(users), config.k), -1, dtype=np.int64)
        ids = served.setdefault(arm, [])
        for row, (user, query) in enumerate(zip(users.tolist(), queries, strict=True)):
            answer = ask(user, query, names[arm])
            ids.append(answer["request_id"])
            for position, item in enumerate(answer["items"][: config.k]):
                lists[row, position] = item_index.get(item["item_id"], -1)
        return lists

    def interleave(users: np.ndarray, queries: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """The server's interleaved list of each session and the engine arm of each slot (its item's team)."""
        lists = np.full((len(users), config.k), -1, dtype=np.int64)
        slots = np.full((len(users), config.k), -1, dtype=np.int64)
        ids = served.setdefault(0, [])
        for row, (user, query) in enumerate(zip(users.tolist(), queries, strict=True)):
            answer = ask(user, query, INTERLEAVED)
            ids.append(answer["request_id"])
            for position, item in enumerate(answer["items"][: config.k]):
                index = item_index.get(item["item_id"], -1)
                lists[row, position] = index
                slots[row, position] = team_arm[item["team"]] if index >= 0 else -1
        return lists, slots

    def send_events(batch: DayBatch) -> None:
        nonlocal sent, batches
        request_of = np.full(len(batch.sessions), None, dtype=object)
        for arm, ids in served.items():
            request_of[np.flatnonzero(batch.arm == arm)] = ids
        _await_day_logged([request_id for ids in served.values() for request_id in ids])
        served.clear()
        if adaptive is not None:
            adaptive.date_exposures(batch, data.user_ids)
        events = _follow_up_events(batch, request_of, prefix, data.user_ids, data.item_ids, experiment.key)
        for first in range(0, len(events), EVENT_BATCH):
            answer = client.post("/api/v1/events", events[first : first + EVENT_BATCH])
            if answer["rejected"]:
                raise SimulationError(f"the events endpoint rejected {answer['rejected']}: {answer['errors'][:3]}")
            sent += answer["received"]
            batches += 1

    rows = SimulationRun.objects.filter(pk=simulation.pk)

    def report(fraction: float, message: str) -> None:
        rows.update(progress=round(100 * fraction * 0.95), message=message[:300])
        if progress is not None:
            progress(fraction, message)

    def cancelled() -> bool:
        return bool(rows.filter(cancel_requested=True).exists())

    try:
        result = run(config, shoppers, recommend, assign, progress=report, should_stop=cancelled,
                     on_batch=send_events, keep_outcomes=False, deduplicate=False, interleaved=interleaved,
                     interleave_batch=interleave if interleaved else None,
                     before_day=adaptive.before_day if adaptive else None)  # fmt: skip
        if adaptive is not None and not result.cancelled:
            adaptive.before_day(result.days_completed, wait=False)  # the weights the last day's traffic leads to
    except Exception as error:
        rows.update(status="failed", finished_at=timezone.now(), message=f"failed: {error}"[:300],
                    error=f"{type(error).__name__}: {error}")  # fmt: skip
        raise
    finally:
        client.close()
    seconds = time.perf_counter() - began
    rows.update(message="marking the run's traffic and recomputing the rollups")
    logged = _await_logged(simulation, experiment, client.requests - batches)
    _mark(simulation, experiment)
    totals = result.arms
    rows.update(
        status="cancelled" if result.cancelled else "succeeded", finished_at=timezone.now(),
        progress=round(100 * result.days_completed / config.days) if result.cancelled else 100,
        message=(f"sent {client.requests:,} HTTP requests in {seconds:.1f} s "
                 f"({result.days_completed} of {config.days} days){logged}")[:300],
        sessions=sum(a.sessions for a in totals), impressions=sum(a.impressions for a in totals),
        clicks=sum(a.clicks for a in totals), purchases=sum(a.purchases for a in totals),
    )  # fmt: skip
    simulation.refresh_from_db()
    return HttpRunResult(simulation, client.requests - batches, batches, sent, seconds)


class _HttpBandit:
    """A bandit run over HTTP (module docstring): the run's own weight history, stored before each simulated
    day by the bandit service and served by the server to the run's users; the expected arm of each user
    (new users by the day's weights, returning ones keep their first arm) to check the server's answers."""

    def __init__(
        self, experiment: Experiment, simulation: SimulationRun, fixed: bucketing.Allocation, start: int
    ) -> None:
        self.experiment, self.simulation, self.fixed, self.start = experiment, simulation, fixed, start
        self.allocation = fixed
        self.arm_of: dict[str, int] = {}  # user id -> arm of their first exposure in this run

    def before_day(self, day: int, *, wait: bool = True) -> None:
        at = datetime.fromtimestamp(self.start + day * SECONDS_PER_DAY, tz=UTC)
        if day == 0:
            bandit_schedule.start_history(self.experiment, at, self.simulation.pk)
        else:  # the earlier days' rows are stored and their exposures dated (send_events runs first)
            bandit_results.update_weights(self.experiment.pk, at=at, simulation_id=self.simulation.pk)
        row = bandit_schedule.history(self.experiment.pk, self.simulation.pk)[-1]
        self.allocation = bucketing.Allocation(
            traffic=self.fixed.traffic, weights=tuple(row.weights), layer=self.fixed.layer
        )
        if wait:
            time.sleep(
                bandit_schedule.SWITCH_DELAY.total_seconds()
            )  # every serving process reloads its schedules by then

    def assign(self, user_ids: np.ndarray) -> np.ndarray:
        return bandit_schedule.assign_sticky(self.allocation, self.experiment.salt, user_ids, self.arm_of)

    def date_exposures(self, batch: DayBatch, user_ids: Sequence[str]) -> None:
        """Mark the day's new exposures as the run's and move each to its user's first simulated session
        of the day (the server stamped its own clock), so that the cohorts follow the simulated periods."""
        first: dict[str, datetime] = {}
        order = np.argsort(batch.sessions.timestamp, kind="stable")
        for j in order[batch.arm[order] >= 0].tolist():
            user = self.simulation.user_prefix + user_ids[int(batch.sessions.user[j])]
            first.setdefault(user, datetime.fromtimestamp(int(batch.sessions.timestamp[j]), tz=UTC))
        users = list(first)
        for chunk in range(0, len(users), 500):
            fresh = Exposure.objects.filter(experiment=self.experiment, simulation__isnull=True,
                                            user_id__in=users[chunk : chunk + 500])  # fmt: skip
            rows = list(fresh.only("pk", "user_id"))
            for row in rows:
                row.first_exposed_at, row.simulation_id = first[row.user_id], self.simulation.pk
            Exposure.objects.bulk_update(rows, ["first_exposed_at", "simulation"])


def _follow_up_events(
    batch: DayBatch,
    request_of: np.ndarray,
    prefix: str,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    experiment_key: str,
) -> list[dict[str, Any]]:
    """The day's clicks, add-to-carts and purchases as API events (the server logged the impressions)."""
    outcome, sessions = batch.outcomes, batch.sessions
    local = outcome.session - batch.session_offset
    events: list[dict[str, Any]] = []
    for (kind, suffix, delay), mask in zip(_FOLLOW_UPS, (outcome.clicked, outcome.carted, outcome.purchased),
                                           strict=True):  # fmt: skip
        for n in np.flatnonzero(mask).tolist():
            j = int(local[n])
            request_id, position = request_of[j], int(outcome.position[n])
            when = datetime.fromtimestamp(int(sessions.timestamp[j]) + delay, tz=UTC)
            event: dict[str, Any] = {
                "event_id": f"{request_id}:{position}:{suffix}", "type": kind,
                "user_id": prefix + user_ids[int(sessions.user[j])], "item_id": item_ids[int(outcome.item[n])],
                "request_id": request_id, "experiment": experiment_key, "position": position,
                "timestamp": when.isoformat(),
            }  # fmt: skip
            if kind == "purchase":
                event["revenue"] = f"{float(outcome.revenue[n]):.2f}"
            events.append(event)
    return events


def _like(simulation: SimulationRun) -> str:
    """LIKE pattern of the run's user ids (the prefix's wildcards escaped)."""
    return simulation.user_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _await_logged(simulation: SimulationRun, experiment: Experiment, requests: int, timeout: float = 60.0) -> str:
    """Wait until the server has stored a served request for each recommendation request sent.

    A server may log asynchronously (buffered, flushed in batches); marking before it flushed
    would leave the late rows counted as live. Returns "" or a note on what was still missing.
    """
    served = ServedRequest.objects.filter(experiment=experiment, user_id__startswith=simulation.user_prefix)
    deadline = time.monotonic() + timeout
    while (stored := served.count()) < requests and time.monotonic() < deadline:
        time.sleep(0.2)
    if stored < requests:
        return f"; only {stored:,} of {requests:,} requests were logged by the server after {timeout:.0f} s"
    return ""


def _await_day_logged(request_ids: list[str]) -> None:
    """Wait until the server has stored these answered requests (and, in the same transaction, their exposures
    and impressions): a server behind gunicorn buffers its serving logs for up to ~0.1 s, and the day's clicks
    are attributed through the stored requests, and the run's rows marked through them."""
    deadline = time.monotonic() + LOGGED_WITHIN
    while ServedRequest.objects.filter(request_id__in=request_ids).count() < len(request_ids):
        if time.monotonic() > deadline:
            raise SimulationError(f"the server has not stored its {len(request_ids):,} answers of the day "
                                  f"within {LOGGED_WITHIN:g} s")  # fmt: skip
        time.sleep(0.05)


def _mark(simulation: SimulationRun, experiment: Experiment) -> None:
    """Point the run's requests, exposures and events (its users' prefix) to the run, then recompute the
    rollups so they count as simulated traffic (a periodic fold may have counted them as live meanwhile)."""
    like = _like(simulation)
    with connection.cursor() as cursor:
        for model in (ServedRequest, Exposure, Event):
            cursor.execute(
                f"UPDATE {model._meta.db_table} SET simulation_id = %s WHERE experiment_id = %s "
                "AND user_id LIKE %s ESCAPE '\\'",
                [simulation.pk, experiment.pk, like],
            )
    recompute(experiment.pk, lag=timedelta(0))
