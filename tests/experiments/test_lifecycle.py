"""Experiment lifecycle: allowed and forbidden transitions, locked fields, ramps, layers, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.models import Experiment, ExperimentChange
from experiments.services.lifecycle import ArmSpec, ExperimentError, TransitionError, transition, update_experiment
from tests.experiments.factories import draft_experiment, product_manager, trained_variants

pytestmark = pytest.mark.django_db


@pytest.fixture
def pm(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    trained_variants(tmp_path)
    return product_manager()


def test_full_lifecycle_freezes_arms_and_is_audited(pm) -> None:  # type: ignore[no-untyped-def]
    experiment = draft_experiment(pm)
    for action in ("start", "pause", "resume", "stop", "conclude", "archive"):
        experiment = transition(experiment, action, pm)
    assert experiment.status == "archived"
    assert all(arm.training_run_id is not None for arm in experiment.arms.all())
    actions = list(ExperimentChange.objects.filter(experiment=experiment).values_list("action", flat=True))
    assert actions == ["create", "start", "pause", "resume", "stop", "conclude", "archive"]
    start = ExperimentChange.objects.get(experiment=experiment, action="start")
    assert (start.user, start.before["status"], start.after["status"]) == (pm, "draft", "running")


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [((), "pause"), ((), "stop"), ((), "conclude"), (("start",), "start"), (("start",), "conclude"),
     (("start", "stop"), "resume"), (("start", "stop", "conclude"), "start"), (("start",), "archive")],
)  # fmt: skip
def test_forbidden_transitions_are_refused_and_change_nothing(pm, path: tuple[str, ...], forbidden: str) -> None:  # type: ignore[no-untyped-def]
    experiment = draft_experiment(pm)
    for action in path:
        experiment = transition(experiment, action, pm)
    changes = ExperimentChange.objects.count()
    with pytest.raises(TransitionError, match=f"cannot {forbidden} recs-ab: it is {experiment.status}"):
        transition(experiment, forbidden, pm)
    experiment.refresh_from_db()
    assert ExperimentChange.objects.count() == changes


def test_drafts_are_editable_and_running_experiments_lock_arms_and_metrics(pm) -> None:  # type: ignore[no-untyped-def]
    experiment = draft_experiment(pm, traffic_percent=10.0)
    update_experiment(experiment, {"primary_metric": "conversion_rate"}, pm,
                      arms=[ArmSpec("control", "pop@1", 1, True), ArmSpec("knn", "knn@1", 3)])  # fmt: skip
    experiment = transition(experiment, "start", pm)

    with pytest.raises(TransitionError, match="primary_metric can only change in a draft"):
        update_experiment(experiment, {"primary_metric": "ctr"}, pm)
    with pytest.raises(TransitionError, match="arms can only change in a draft"):
        update_experiment(experiment, {}, pm, arms=[ArmSpec("control", "pop@1", 1, True), ArmSpec("knn", "knn@1", 1)])
    with pytest.raises(ExperimentError, match="can only ramp up"):
        update_experiment(experiment, {"traffic_percent": 5.0}, pm)

    update_experiment(experiment, {"traffic_percent": 50.0, "hypothesis": "kNN finds complements"}, pm)
    experiment.refresh_from_db()
    assert (experiment.traffic_percent, experiment.primary_metric) == (50.0, "conversion_rate")
    assert [a.weight for a in experiment.arms.all()] == [1.0, 3.0]
    edit = ExperimentChange.objects.filter(experiment=experiment).latest("id")
    assert (edit.before["traffic_percent"], edit.after["traffic_percent"]) == (10.0, 50.0)


def test_bad_configuration_gets_field_errors(pm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExperimentError) as error:
        draft_experiment(pm, key="bad key", traffic_percent=120.0, primary_metric="happiness")
    assert set(error.value.errors) == {"key", "traffic_percent", "primary_metric"}
    assert Experiment.objects.count() == 0


def test_starting_needs_trained_arms_and_one_control(pm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from recommenders.models import Variant

    experiment = draft_experiment(pm)
    Variant.objects.filter(name="knn").update(status="draft")
    experiment.arms.get(name="knn").variant.training_runs.update(status="failed")
    with pytest.raises(TransitionError, match="arm knn: knn@1 has no successful training run"):
        transition(experiment, "start", pm)
    assert Experiment.objects.get().status == "draft"


def test_experiments_in_one_layer_get_disjoint_ranges(pm) -> None:  # type: ignore[no-untyped-def]
    first = transition(draft_experiment(pm, key="a", layer="home", layer_share_percent=50.0), "start", pm)
    second = transition(draft_experiment(pm, key="b", layer="home", layer_share_percent=30.0), "start", pm)
    assert ((first.layer_start, first.layer_end), (second.layer_start, second.layer_end)) == ((0, 5000), (5000, 8000))
    with pytest.raises(TransitionError, match="layer 'home' has 20% free, the experiment reserves 30%"):
        transition(draft_experiment(pm, key="c", layer="home", layer_share_percent=30.0), "start", pm)
    transition(first, "stop", pm)  # a stopped experiment frees its range
    third = transition(Experiment.objects.get(key="c"), "start", pm)
    assert (third.layer_start, third.layer_end) == (0, 3000)
