"""Experiments with hand-made traffic for the experiments tests: arms, exposures, events through the real
ingestion path, and random per-user traffic whose per-user arrays the tests compare the results with."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User

from experiments.models import Arm, Experiment
from serving.models import Exposure
from serving.services.events import ingest
from simulation.models import SimulationRun

DAY1 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
NO_LAG = timedelta(0)


def running_experiment(key: str = "rollup-ab") -> tuple[Experiment, Arm, Arm]:
    owner, _ = User.objects.get_or_create(username="owner")
    experiment = Experiment.objects.create(key=key, name=key, owner=owner, salt=key, status="running")
    control = Arm.objects.create(experiment=experiment, name="control", is_control=True, position=0)
    treatment = Arm.objects.create(experiment=experiment, name="treatment", position=1)
    return experiment, control, treatment


def expose(
    experiment: Experiment, arm: Arm, user: str, when: datetime = DAY1, simulation: SimulationRun | None = None
) -> None:
    Exposure.objects.create(experiment=experiment, arm=arm, user_id=user, bucket=0, first_exposed_at=when,
                            simulation=simulation)  # fmt: skip


def send(experiment: Experiment, *events: tuple[str, str, str, datetime] | tuple[str, str, str, datetime, str]) -> int:
    """Ingest (event_id, user, type, timestamp[, revenue]) events through the real ingestion path."""
    batch: list[dict[str, Any]] = []
    for event in events:
        raw: dict[str, Any] = {"event_id": event[0], "user_id": event[1], "type": event[2],
                               "timestamp": event[3].isoformat(), "experiment": experiment.key}  # fmt: skip
        if len(event) == 5:
            raw["revenue"] = event[4]
        batch.append(raw)
    result = ingest(batch)
    assert result.errors == []
    return result.stored


def simulate(experiment: Any, arms: Any, users_per_arm: int, seed: int = 7) -> dict[str, dict[str, np.ndarray]]:
    """Send random traffic through ingestion; return per-user arrays (zeros included) by arm name."""
    rng = random.Random(seed)
    events: list[tuple[str, ...]] = []
    per_arm: dict[str, dict[str, list[float]]] = {}
    for arm in arms:
        columns: dict[str, list[float]] = {"imp": [], "clk": [], "pur": [], "rev": [], "atc": []}
        boost = 0.25 if arm.is_control else 0.45
        for u in range(users_per_arm):
            user = f"{arm.name}-{u}"
            expose(experiment, arm, user)
            imp = rng.randint(0, 4)
            clk = sum(rng.random() < boost for _ in range(imp))
            atc = int(clk > 0 and rng.random() < 0.5)
            pur = int(atc and rng.random() < 0.6)
            rev = round(rng.uniform(5, 80), 2) if pur else 0.0
            when = DAY1 + timedelta(hours=u % 30)
            kinds = ["impression"] * imp + ["click"] * clk + ["add_to_cart"] * atc
            events += [(f"{user}-{k}", user, kind, when) for k, kind in enumerate(kinds)]
            if pur:
                events.append((f"{user}-p", user, "purchase", when, f"{rev:.2f}"))
            for name, value in zip(("imp", "clk", "pur", "rev", "atc"), (imp, clk, pur, rev, atc), strict=True):
                columns[name].append(value)
        per_arm[arm.name] = {k: np.array(v, dtype=float) for k, v in columns.items()}
    send(experiment, *events)  # type: ignore[arg-type]
    return per_arm
