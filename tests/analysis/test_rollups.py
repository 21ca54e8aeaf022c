"""Rollups: incremental folds equal a full recompute, row for row; folding twice changes nothing."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from analysis.models import ArmRollup, DailyRollup, RollupState, UserRollup
from analysis.results_types import results_data
from analysis.services.results import experiment_results
from analysis.services.rollups import experiments_to_fold, fold, recompute
from analysis.tasks import fold_rollups_task
from experiments.models import Experiment
from serving.models import Event
from simulation.models import SimulationRun
from tests.experiments.traffic import DAY1, DAY2, NO_LAG, expose, running_experiment, send


def snapshot(experiment: Experiment) -> dict[str, list[tuple[Any, ...]]]:
    fields = [f.name for f in ArmRollup._meta.fields if f.name not in ("id", "experiment")]
    return {
        "arm": sorted(ArmRollup.objects.filter(experiment=experiment).values_list("arm_id", *fields[1:])),
        "user": sorted(
            UserRollup.objects.filter(experiment=experiment).values_list(
                "arm_id", "user_id", "impressions", "clicks", "add_to_carts", "purchases", "revenue"
            )
        ),
        "daily": sorted(
            DailyRollup.objects.filter(experiment=experiment).values_list(
                "arm_id",
                "simulated",
                "day",
                "new_users",
                "impressions",
                "clicks",
                "add_to_carts",
                "purchases",
                "revenue",
            )
        ),
        "state": list(
            RollupState.objects.filter(pk=experiment.pk).values_list(
                "event_watermark", "exposure_watermark", "folded_events", "unattributed_events"
            )
        ),
    }


@pytest.mark.django_db
def test_incremental_folds_equal_a_recompute_row_for_row() -> None:
    experiment, control, treatment = running_experiment()
    expose(experiment, control, "a")
    expose(experiment, treatment, "b")
    send(experiment, ("1", "a", "impression", DAY1), ("2", "a", "click", DAY1), ("3", "b", "impression", DAY1),
         ("4", "stranger", "click", DAY1))  # fmt: skip
    fold(experiment.pk, lag=NO_LAG)

    # Between folds: a repeat (dropped by ingestion), more events of known users, a new user.
    expose(experiment, treatment, "c", DAY2)
    assert send(experiment, ("2", "a", "click", DAY1), ("5", "a", "impression", DAY2), ("6", "a", "click", DAY2),
                ("7", "b", "purchase", DAY2, "19.99"), ("8", "c", "impression", DAY2)) == 4  # fmt: skip
    fold(experiment.pk, lag=NO_LAG)
    send(experiment, ("9", "b", "purchase", DAY2, "5.01"), ("10", "c", "click", DAY2), ("11", "c", "add_to_cart", DAY2))
    fold(experiment.pk, lag=NO_LAG)
    incremental = snapshot(experiment)
    fold(experiment.pk, lag=NO_LAG)
    assert snapshot(experiment) == incremental  # a second fold in a row changes nothing

    recompute(experiment.pk, lag=NO_LAG)
    assert snapshot(experiment) == incremental

    # And the values are the ones counted by hand: a = 2 imp 2 clicks; b = 1 imp, 2 purchases 25.00; c = 1/1/1 atc.
    arms = {row.arm_id: row for row in ArmRollup.objects.filter(experiment=experiment)}
    c, t = arms[control.pk], arms[treatment.pk]
    assert (c.exposed_users, c.active_users, c.impressions, c.clicks, c.impressions_sq, c.clicks_sq) == (
        1,
        1,
        2,
        2,
        4,
        4,
    )
    assert (c.clicks_x_impressions, c.clickers, c.purchasers) == (4, 1, 0)
    assert (t.exposed_users, t.active_users, t.impressions, t.clicks, t.purchases, t.revenue) == (
        2, 2, 2, 1, 2, Decimal("25.00"))  # fmt: skip
    assert (t.impressions_sq, t.clicks_sq, t.clicks_x_impressions, t.revenue_sq) == (2, 1, 1, Decimal("625.0000"))
    assert (t.clickers, t.adders, t.purchasers) == (1, 1, 1)
    assert list(
        DailyRollup.objects.filter(arm=treatment).order_by("day").values_list("day", "new_users", "impressions",
                                                                               "purchases", "revenue")
    ) == [(date(2026, 11, 24), 1, 1, 0, Decimal("0.00")), (date(2026, 11, 25), 1, 1, 2, Decimal("25.00"))]  # fmt: skip
    assert incremental["state"][0][2:] == (10, 1)  # 10 attributed events, the stranger's click unattributed


@pytest.mark.django_db
def test_live_and_simulated_users_fold_into_rows_of_their_own_that_add_up_to_the_arm() -> None:
    experiment, control, treatment = running_experiment()
    simulation = SimulationRun.objects.create(experiment=experiment)
    expose(experiment, control, "live-a")
    expose(experiment, control, "sim1:a", simulation=simulation)
    expose(experiment, treatment, "sim1:b", DAY2, simulation=simulation)
    send(experiment, ("1", "live-a", "impression", DAY1), ("2", "live-a", "click", DAY1),
         ("3", "sim1:a", "impression", DAY1), ("4", "sim1:a", "impression", DAY2))  # fmt: skip
    fold(experiment.pk, lag=NO_LAG)
    send(experiment, ("5", "sim1:a", "click", DAY2), ("6", "sim1:b", "purchase", DAY2, "3.50"),
         ("7", "live-a", "impression", DAY2))  # fmt: skip
    fold(experiment.pk, lag=NO_LAG)
    incremental = snapshot(experiment)
    recompute(experiment.pk, lag=NO_LAG)
    assert snapshot(experiment) == incremental

    rows = {
        (row.arm_id, row.simulated): (row.exposed_users, row.impressions, row.clicks, row.impressions_sq,
                                      row.clicks_x_impressions, row.purchasers, row.revenue)
        for row in ArmRollup.objects.filter(experiment=experiment)
    }  # fmt: skip
    assert rows == {
        (control.pk, False): (1, 2, 1, 4, 2, 0, Decimal("0.00")),
        (control.pk, True): (1, 2, 1, 4, 2, 0, Decimal("0.00")),
        (treatment.pk, True): (1, 0, 0, 0, 0, 1, Decimal("3.50")),
    }
    daily = DailyRollup.objects.filter(experiment=experiment, arm=control).order_by("day", "simulated")
    assert list(daily.values_list("day", "simulated", "new_users", "impressions", "clicks")) == [
        (date(2026, 11, 24), False, 1, 1, 1),
        (date(2026, 11, 24), True, 1, 1, 0),
        (date(2026, 11, 25), False, 0, 1, 0),
        (date(2026, 11, 25), True, 0, 1, 1),
    ]

    users = {t: [arm["users"] for arm in results_data(experiment_results(experiment, traffic=t))["arms"]]
             for t in ("live", "simulated", "all")}  # fmt: skip
    assert users == {"live": [1, 0], "simulated": [1, 1], "all": [2, 1]}
    every = results_data(experiment_results(experiment, traffic="all"))
    assert (every["arms"][0]["impressions"], every["arms"][0]["clicks"], every["traffic"]) == (4, 2, "all")
    assert [d["impressions"] for d in every["daily"]["control"]] == [2, 2]
    with pytest.raises(ValueError, match="traffic must be one of all, live, simulated, got 'fake'"):
        experiment_results(experiment, traffic="fake")


@pytest.mark.django_db
def test_events_younger_than_the_lag_wait_for_the_next_fold() -> None:
    experiment, control, _ = running_experiment()
    expose(experiment, control, "a")
    send(experiment, ("1", "a", "click", DAY1))

    waiting = fold(experiment.pk)  # default lag: the event was received a moment ago
    assert waiting.events == 0
    assert waiting.event_watermark < Event.objects.get(event_id="1").pk
    assert not ArmRollup.objects.filter(experiment=experiment, clicks__gt=0).exists()

    done = fold(experiment.pk, lag=NO_LAG)
    assert done.events == 1
    assert ArmRollup.objects.get(experiment=experiment, arm=control).clicks == 1


@pytest.mark.django_db
def test_small_chunks_fold_the_same_rows_as_one_step() -> None:
    experiment, control, treatment = running_experiment()
    for i in range(6):
        expose(experiment, (control, treatment)[i % 2], f"u{i}")
    send(experiment, *[(str(i), f"u{i % 6}", ("impression", "click")[i % 2], DAY1) for i in range(30)])
    fold(experiment.pk, lag=NO_LAG, chunk=4)
    chunked = snapshot(experiment)
    recompute(experiment.pk, lag=NO_LAG)
    assert snapshot(experiment) == chunked
    assert sum(ArmRollup.objects.filter(experiment=experiment).values_list("impressions", flat=True)) == 15


@pytest.mark.django_db
def test_the_periodic_task_folds_every_experiment_with_new_events(settings: Any) -> None:
    first, control, _ = running_experiment("first")
    second, other, _ = running_experiment("second")
    expose(first, control, "a")
    expose(second, other, "a")
    send(first, ("1", "a", "click", DAY1))
    send(second, ("2", "a", "click", DAY1))
    assert sorted(experiments_to_fold()) == sorted([first.pk, second.pk])

    folded = fold_rollups_task(lag_seconds=0)
    assert folded == {str(first.pk): 1, str(second.pk): 1}
    assert experiments_to_fold() == []
    assert fold_rollups_task(lag_seconds=0) == {}
    assert "fold-rollups" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.django_db
def test_the_fold_rollups_command_folds_and_recomputes_one_experiment() -> None:
    experiment, control, _ = running_experiment()
    expose(experiment, control, "a")
    send(experiment, ("1", "a", "click", DAY1), ("2", "nobody", "click", DAY1))

    out = io.StringIO()
    call_command("fold_rollups", "--lag", "0", stdout=out)
    call_command("fold_rollups", "--experiment", experiment.key, "--recompute", "--lag", "0", stdout=out)

    assert out.getvalue().splitlines()[0].startswith("rollup-ab: 2 events (1 unattributed), 1 exposures folded")
    assert out.getvalue().splitlines()[1].startswith("rollup-ab: 2 events (1 unattributed), 1 exposures folded")
    assert ArmRollup.objects.get(arm=control).clicks == 1
    with pytest.raises(CommandError, match="needs --experiment"):
        call_command("fold_rollups", "--recompute")
