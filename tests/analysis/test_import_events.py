"""`manage.py import_events`: imported experiments from a CSV log and from the real Open Bandit Dataset."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from scipy import stats

from analysis.models import ArmRollup
from analysis.results_types import results_data
from analysis.services.results import experiment_results
from engine.stats import RatioSample, ratio_test
from experiments.models import Experiment, ExperimentChange
from serving.models import Event, Exposure
from tests.support import SHARED_DATA, skip_unless

OPEN_BANDIT = SHARED_DATA / "open-bandit-dataset"
HEADER = "timestamp,user,arm,item,position,event_type,propensity,revenue\n"
LOG = HEADER + (
    "2026-11-20T10:00:00Z,u1,baseline,85123A,1,impression,0.5,\n"
    "2026-11-20T10:00:05Z,u1,baseline,85123A,1,click,0.5,\n"
    "2026-11-20T11:00:00Z,u2,knn,22423,2,impression,0.5,\n"
    "2026-11-20T11:00:00Z,u2,knn,22423,2,impression,0.5,\n"
    "2026-11-21T09:30:00Z,u2,knn,22423,,purchase,,12.50\n"
)


def _import(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_events", str(path), *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.create(username="alice")


def test_a_csv_log_becomes_a_stopped_imported_experiment_and_reimporting_stores_nothing_twice(
    tmp_path: Path, owner: User
) -> None:
    log = tmp_path / "traffic.csv"
    log.write_text(LOG)

    output = _import(log, "--experiment", "homepage", "--owner", "alice", "--control", "baseline")
    again = _import(log, "--experiment", "homepage")

    assert "5 events stored, 0 already there, 2 new users" in output
    assert "0 events stored, 5 already there, 0 new users" in again
    experiment = Experiment.objects.get(key="homepage")
    assert (experiment.source, experiment.status) == ("imported", "stopped")
    assert (experiment.started_at.isoformat(), experiment.stopped_at.isoformat()) == (
        "2026-11-20T10:00:00+00:00", "2026-11-21T09:30:00+00:00")  # fmt: skip
    assert list(experiment.arms.values_list("name", "is_control", "variant")) == [
        ("baseline", True, None), ("knn", False, None)]  # fmt: skip
    assert sorted(Exposure.objects.values_list("user_id", "arm__name", "first_exposed_at__hour")) == [
        ("u1", "baseline", 10), ("u2", "knn", 11)]  # fmt: skip
    # The two identical impression lines are two events (a log may repeat a line); the import, not.
    assert Event.objects.filter(user_id="u2", type="impression").count() == 2
    assert Event.objects.get(type="purchase").position is None
    assert ExperimentChange.objects.filter(experiment=experiment, action="import").count() == 2
    knn = ArmRollup.objects.get(experiment=experiment, arm__name="knn")  # folded by the command
    assert (knn.exposed_users, knn.impressions, knn.purchases, str(knn.revenue)) == (1, 2, 1, "12.50")
    assert results_data(experiment_results(experiment))["arms"][1]["revenue_per_user"] == 12.5


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2026-11-20T10:00:00Z,u9,baseline,1,1,like,0.5,", "event_type must be one of"),
        ("yesterday,u9,baseline,1,1,click,0.5,", "timestamp 'yesterday' is neither ISO 8601 nor epoch seconds"),
        ("2026-11-20T10:00:00Z,u9,baseline,1,0,click,0.5,", "position must be a whole number from 1 to 1000"),
        ("2026-11-20T10:00:00Z,u9,baseline,1,1,click,1.5,", "propensity must be in (0, 1]"),
        ("2026-11-20T10:00:00Z,u9,baseline,1,1,purchase,,-3", "revenue must be a non-negative amount"),
        ("2026-11-20T10:00:00Z,u1,knn,1,1,click,0.5,", "user 'u1' is in arm 'knn' here but in 'baseline' at"),
        ("2026-11-20T10:00:00Z,u9,baseline,1,1,click", "6 fields, the header has 8"),
    ],
)
def test_a_bad_line_refuses_the_whole_file_with_its_line_and_reason(
    tmp_path: Path, owner: User, line: str, reason: str
) -> None:
    log = tmp_path / "traffic.csv"
    log.write_text(LOG + line + "\n")

    with pytest.raises(CommandError) as error:
        _import(log, "--experiment", "homepage", "--owner", "alice")

    assert f"{log}, line 7: {reason}" in str(error.value)
    assert not Experiment.objects.exists()
    assert not Event.objects.exists()


def test_a_user_imported_before_into_another_arm_is_refused(tmp_path: Path, owner: User) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(LOG)
    second.write_text(
        HEADER + "2026-11-22T10:00:00Z,u3,knn,1,1,impression,,\n2026-11-22T10:00:00Z,u1,knn,1,1,click,,\n"
    )
    _import(first, "--experiment", "homepage", "--owner", "alice")

    with pytest.raises(CommandError, match=r"second.csv, line 3: user 'u1' is in arm 'knn' here but was imported"):
        _import(second, "--experiment", "homepage")
    assert Event.objects.count() == 5
    assert not Exposure.objects.filter(user_id="u3").exists()


def test_a_platform_experiment_or_a_missing_owner_is_refused(tmp_path: Path, owner: User) -> None:
    log = tmp_path / "traffic.csv"
    log.write_text(LOG)
    with pytest.raises(CommandError, match="does not exist; name its owner"):
        _import(log, "--experiment", "homepage")
    Experiment.objects.create(key="served", name="served", owner=owner, salt="s")
    with pytest.raises(CommandError, match="served by the platform"):
        _import(log, "--experiment", "served")
    (tmp_path / "bad.csv").write_text("timestamp,user,event_type\n")
    with pytest.raises(CommandError, match=r"bad.csv, line 1: missing column\(s\) arm"):
        _import(tmp_path / "bad.csv", "--experiment", "x", "--owner", "alice")


def test_the_open_bandit_men_campaign_gives_the_published_counts_and_the_engines_verdict(owner: User) -> None:
    skip_unless((OPEN_BANDIT / "bts" / "men" / "men.csv").exists(), f"{OPEN_BANDIT} is not present")

    output = _import(OPEN_BANDIT, "--format", "open-bandit", "--campaign", "men", "--experiment", "obd-men",
                     "--owner", "alice")  # fmt: skip

    assert "20,115 events stored" in output  # 2 x 10,000 impressions + 46 + 69 clicks
    results = results_data(experiment_results(Experiment.objects.get(key="obd-men")))
    arms = {arm["name"]: arm for arm in results["arms"]}
    assert (arms["random"]["is_control"], arms["bts"]["is_control"]) == (True, False)
    assert (arms["random"]["users"], arms["random"]["impressions"], arms["random"]["clicks"]) == (10_000, 10_000, 46)
    assert (arms["bts"]["users"], arms["bts"]["impressions"], arms["bts"]["clicks"]) == (10_000, 10_000, 69)
    assert arms["random"]["ctr"] == 0.0046
    assert arms["bts"]["ctr"] == 0.0069
    assert results["srm"]["mismatch"] is False

    # One impression per unit: the delta-method CTR test is Welch's t-test on 0/1 clicks per impression.
    control = np.r_[np.ones(46), np.zeros(10_000 - 46)]
    treatment = np.r_[np.ones(69), np.zeros(10_000 - 69)]
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    (comparison,) = results["comparisons"]
    ctr = comparison["metrics"]["ctr"]["absolute"]
    assert ctr["p_value"] == pytest.approx(welch.pvalue, abs=1e-6)
    assert ctr["effect"] == pytest.approx(0.0023, abs=1e-12)
    # The verdict: the fixed-horizon test (an imported log is complete) of the log ratio 69 / 46, p = 0.033,
    # with that same test's interval shown on the relative-lift scale (+50 %, exp(.) - 1): it excludes 0, as
    # the p-value says.
    relative = ratio_test(RatioSample.from_values(control, np.ones(10_000)),
                          RatioSample.from_values(treatment, np.ones(10_000)), difference="log")  # fmt: skip
    assert comparison["verdict_basis"] == "fixed_horizon"
    assert comparison["verdict_effect"] == pytest.approx(0.5, abs=1e-12)
    assert comparison["verdict_p_value"] == pytest.approx(relative.p_value, rel=1e-9)
    assert (comparison["verdict_ci_low"], comparison["verdict_ci_high"]) == pytest.approx(
        (math.expm1(relative.ci_low), math.expm1(relative.ci_high)), rel=1e-9
    )
    assert comparison["verdict_p_value"] == pytest.approx(0.0327, abs=1e-4)
    assert 0 < comparison["verdict_ci_low"] < 0.5 < comparison["verdict_ci_high"]
    assert comparison["verdict"] == "treatment wins"
    # Clicks per user equals CTR here; the full Holm family (CTR and clicks per user) is not significant.
    assert comparison["metrics"]["ctr"]["p_value_adjusted"] == pytest.approx(2 * relative.p_value, rel=1e-9)
    assert comparison["metrics"]["conversion_rate"]["absolute"] is None  # no purchases in the data
    assert Event.objects.filter(type="click", arm__name="bts").exclude(propensity=None).count() == 69
