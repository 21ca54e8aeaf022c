"""Results by segment (country, new vs returning, search vs browse): exact values on a hand-built
experiment, Holm against statsmodels, a simulation on real Online Retail data, the API and the page."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Sum
from statsmodels.stats.multitest import multipletests

from analysis.models import ArmRollup
from analysis.serializers import segment_breakdown_data
from analysis.services.rollups import fold
from analysis.services.segments import NOTE, SegmentBreakdown, SegmentLift, segment_results
from engine.stats import (
    Proportion,
    RatioSample,
    SampleMean,
    mean_test,
    proportion_test,
    ratio_test,
)
from experiments.models import Arm, Experiment
from recommenders.models import Dataset, Interaction, Item, UserAttribute, Variant
from serving.models import ServedRequest
from simulation.models import SimulationRun
from tests.experiments.factories import client_for, product_manager, simulated_retail_experiment
from tests.experiments.traffic import DAY1, expose, running_experiment, send
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db
STARTED = DAY1 - timedelta(days=1)
UK, DE, FR, ES = "United Kingdom", "Germany", "France", "Spain"

# The hand-built experiment: user -> (arm, country, impressions, clicks, add-to-carts, revenue of one purchase or
# None, interactions in the data set before the start, query of a served request or None for no request).
USERS: dict[str, tuple[str, str | None, int, int, int, str | None, bool, str | None]] = {
    "c1": ("control", UK, 2, 1, 0, "10.00", True, "mug"),
    "c2": ("control", UK, 2, 0, 0, None, True, ""),
    "c3": ("control", UK, 1, 1, 1, None, False, None),  # its only interaction comes after the start: new
    "c4": ("control", UK, 0, 0, 0, None, False, None),  # exposed, no events: zeros
    "c5": ("control", DE, 2, 1, 0, "20.00", True, None),
    "c6": ("control", DE, 1, 0, 0, None, False, None),
    "c7": ("control", FR, 1, 1, 0, None, False, None),
    "c8": ("control", None, 1, 0, 0, None, False, None),  # no country in the data set: unknown
    "c9": ("control", ES, 1, 0, 0, None, False, None),
    "t1": ("treatment", UK, 2, 2, 1, "30.00", True, "lamp"),
    "t2": ("treatment", UK, 2, 1, 0, "15.00", True, None),
    "t3": ("treatment", UK, 1, 1, 0, "12.50", False, "   "),  # a blank query is browsing
    "t4": ("treatment", UK, 0, 0, 0, None, False, None),
    "t5": ("treatment", DE, 2, 1, 0, "25.00", True, None),
    "t6": ("treatment", DE, 1, 1, 0, None, False, None),
    "t7": ("treatment", FR, 1, 0, 0, None, False, None),
    "t8": ("treatment", None, 0, 0, 0, None, False, None),
}
# Two simulated users of one shopper, s1 (United Kingdom, returning): "sim<run>:s1" and replica "sim<run>.2:s1".
SIMULATED = {"control": (1, 1, "5.00"), "treatment": (1, 0, None)}


def _hand_built() -> Experiment:
    experiment, control, treatment = running_experiment("segments-ab")
    experiment.primary_metric = "conversion_rate"
    experiment.analysis_method = "fixed_horizon"  # segments use the results' test: here the fixed-horizon one
    experiment.started_at = STARTED
    experiment.save()
    dataset = Dataset.objects.create(name="shop", source_format="csv")
    item = Item.objects.create(dataset=dataset, external_id="i1")
    variant = Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=dataset)
    Arm.objects.filter(experiment=experiment).update(variant=variant)
    arms = {"control": control, "treatment": treatment}
    run = SimulationRun.objects.create(experiment=experiment)
    events: list[Any] = []
    for user, (arm, country, imp, clk, atc, revenue, returning, query) in USERS.items():
        expose(experiment, arms[arm], user)
        if country:
            UserAttribute.objects.create(dataset=dataset, user_id=user, name="country", value=country)
        when = STARTED - timedelta(days=30) if returning else STARTED + timedelta(hours=1)
        if returning or user == "c3":
            Interaction.objects.create(dataset=dataset, user_id=user, item=item, event_type="purchase", timestamp=when)
        if query is not None:
            ServedRequest.objects.create(experiment=experiment, arm=arms[arm], user_id=user, exposed=True,
                                         arm_probability=0.5, query=query, k=10, served_at=DAY1)  # fmt: skip
        kinds = ["impression"] * imp + ["click"] * clk + ["add_to_cart"] * atc
        events += [(f"{user}-{i}", user, kind, DAY1) for i, kind in enumerate(kinds)]
        if revenue:
            events.append((f"{user}-p", user, "purchase", DAY1, revenue))
    UserAttribute.objects.create(dataset=dataset, user_id="s1", name="country", value=UK)
    Interaction.objects.create(dataset=dataset, user_id="s1", item=item, event_type="purchase",
                               timestamp=STARTED - timedelta(days=3))  # fmt: skip
    for arm, user in (("control", f"sim{run.pk}:s1"), ("treatment", f"sim{run.pk}.2:s1")):
        expose(experiment, arms[arm], user, simulation=run)
        imp, clk, revenue = SIMULATED[arm]
        kinds = ["impression"] * imp + ["click"] * clk
        events += [(f"{user}-{i}", user, kind, DAY1) for i, kind in enumerate(kinds)]
        if revenue:
            events.append((f"{user}-p", user, "purchase", DAY1, revenue))
    send(experiment, *events)
    fold(experiment.pk, lag=timedelta(0))
    return experiment


def _rows(breakdown: SegmentBreakdown, metric: str) -> dict[tuple[str, str], SegmentLift]:
    (block,) = [m for m in breakdown.metrics if m.metric == metric]
    return {(row.segment, row.arm): row for row in block.rows}


def test_country_segments_count_users_fold_small_countries_and_test_each_metric_by_hand() -> None:
    experiment = _hand_built()

    breakdown = segment_results(experiment, "country", min_users=4)

    assert breakdown.note == NOTE
    assert breakdown.empty_reason is None
    # United Kingdom: c1-c4 and sim:s1 / t1-t4 and sim.2:s1 (simulated users are their shopper's country);
    # Germany 2 + 2; France (2) and Spain (1) are under 4 users: "other"; c8 and t8 have no country.
    assert [(s.name, s.users, s.members) for s in breakdown.segments] == [
        (UK, 10, (UK,)), (DE, 4, (DE,)), ("other", 3, (FR, ES)), ("unknown", 2, ("unknown",))]  # fmt: skip
    assert [m.metric for m in breakdown.metrics] == [
        "conversion_rate", "add_to_cart_rate", "ctr", "revenue_per_user", "clicks_per_user"]  # fmt: skip
    assert [(m.primary, m.test) for m in breakdown.metrics][:3] == [
        (True, "fixed-horizon test"), (False, "fixed-horizon test"), (False, "fixed-horizon test")]  # fmt: skip
    conversion = _rows(breakdown, "conversion_rate")
    assert [(seg, arm, row.users) for (seg, arm), row in conversion.items()] == [
        (UK, "control", 5), (UK, "treatment", 5), (DE, "control", 2), (DE, "treatment", 2), ("other", "control", 2),
        ("other", "treatment", 1), ("unknown", "control", 1), ("unknown", "treatment", 1)]  # fmt: skip
    # The segments' users add up to the results' users per arm (as of the same fold).
    for arm, users in (("control", 10), ("treatment", 9)):
        rollup = ArmRollup.objects.filter(experiment=experiment, arm__name=arm).aggregate(n=Sum("exposed_users"))
        assert sum(row.users for (_, name), row in conversion.items() if name == arm) == users == rollup["n"]

    # Conversion, United Kingdom: purchasers c1, s1 of 5 against t1, t2, t3 of 5: lift 0.6 / 0.4 - 1 = +50 %.
    uk = conversion[(UK, "treatment")]
    expected = proportion_test(Proportion(5, 2), Proportion(5, 3), difference="log")
    assert uk.effect == pytest.approx(0.5, abs=1e-12)
    # Tested on the log ratio, shown as the relative lift (exp(.) - 1), as on the results page.
    assert (uk.effect, uk.ci_low, uk.ci_high, uk.p_value) == pytest.approx(
        (math.expm1(expected.effect), math.expm1(expected.ci_low), math.expm1(expected.ci_high), expected.p_value),
        abs=1e-12)  # fmt: skip
    assert (conversion[(UK, "control")].effect, conversion[(UK, "control")].error) == (None, None)
    # "other" has no purchaser in an arm: no log ratio, a reason instead of a crash.
    assert conversion[("other", "treatment")].effect is None
    assert "not enough data in this segment" in (conversion[("other", "treatment")].error or "")
    assert conversion[("other", "treatment")].p_value_adjusted is None

    # CTR, United Kingdom, per user (clicks, impressions): control (1,2) (0,2) (1,1) (0,0) (1,1);
    # treatment (2,2) (1,2) (1,1) (0,0) (0,1): sums, squares and cross products by hand.
    ctr = _rows(breakdown, "ctr")[(UK, "treatment")]
    expected = ratio_test(RatioSample(5, 3, 6, 3, 10, 4), RatioSample(5, 4, 6, 6, 10, 7), difference="log")
    assert ctr.effect == pytest.approx(1 / 3, abs=1e-12)
    assert (ctr.ci_low, ctr.ci_high, ctr.p_value) == pytest.approx(
        (math.expm1(expected.ci_low), math.expm1(expected.ci_high), expected.p_value), abs=1e-12)  # fmt: skip
    # Revenue per user, United Kingdom: control 10, 0, 0, 0, 5; treatment 30, 15, 12.50, 0, 0.
    revenue = _rows(breakdown, "revenue_per_user")[(UK, "treatment")]
    expected = mean_test(SampleMean(5, 15.0, 125.0), SampleMean(5, 57.5, 1281.25), difference="log")
    assert revenue.effect == pytest.approx(57.5 / 15 - 1, abs=1e-12)
    assert (revenue.ci_low, revenue.ci_high, revenue.p_value) == pytest.approx(
        (math.expm1(expected.ci_low), math.expm1(expected.ci_high), expected.p_value), abs=1e-12)  # fmt: skip


def test_holm_adjusts_each_metric_across_segments_as_statsmodels_does() -> None:
    experiment = _hand_built()

    breakdown = segment_results(experiment, "country", min_users=4)

    for block in breakdown.metrics:
        tested = [row for row in block.rows if row.p_value is not None]
        assert tested, block.metric
        expected = multipletests([row.p_value for row in tested], alpha=experiment.alpha, method="holm")[1]
        assert [row.p_value_adjusted for row in tested] == pytest.approx(list(expected), abs=1e-12)
    conversion = _rows(breakdown, "conversion_rate")
    p_uk = proportion_test(Proportion(5, 2), Proportion(5, 3), difference="log").p_value
    p_de = proportion_test(Proportion(2, 1), Proportion(2, 1), difference="log").p_value
    assert conversion[(UK, "treatment")].p_value_adjusted == pytest.approx(min(1.0, 2 * min(p_uk, p_de)), abs=1e-12)


def test_new_and_returning_users_follow_the_cuped_rule_and_simulated_users_their_shopper() -> None:
    experiment = _hand_built()

    breakdown = segment_results(experiment, "user_type")

    # Returning (an interaction before the start): c1, c2, c5, sim:s1 / t1, t2, t5, sim.2:s1.
    # New: c3 (first interaction after the start), c4, c6-c9 / t3, t4, t6-t8.
    assert [(s.name, s.users) for s in breakdown.segments] == [("new", 11), ("returning", 8)]
    conversion = _rows(breakdown, "conversion_rate")
    assert {key: row.users for key, row in conversion.items()} == {
        ("new", "control"): 6, ("new", "treatment"): 5, ("returning", "control"): 4,
        ("returning", "treatment"): 4}  # fmt: skip
    # Returning: purchasers c1, c5, s1 of 4 against t1, t2, t5 of 4; nobody is folded (min_users is for countries).
    assert conversion[("returning", "treatment")].effect == pytest.approx(0.0, abs=1e-12)


def test_search_users_had_a_served_request_with_a_query_and_traffic_filters_simulated_users() -> None:
    experiment = _hand_built()

    everyone = segment_results(experiment, "session_type")
    live = segment_results(experiment, "session_type", traffic="live")
    simulated = segment_results(experiment, "country", traffic="simulated", min_users=4)

    # Search: c1 ("mug") and t1 ("lamp"); c2's empty and t3's blank queries are browsing.
    assert [(s.name, s.users) for s in everyone.segments] == [("browse", 17), ("search", 2)]
    assert [(s.name, s.users) for s in live.segments] == [("browse", 15), ("search", 2)]
    # The two simulated users alone: the United Kingdom, under 4 users, folded into "other".
    assert [(s.name, s.users, s.members) for s in simulated.segments] == [("other", 2, (UK,))]


def test_empty_states_say_why_and_bad_arguments_are_refused() -> None:
    experiment, control, _ = running_experiment("no-data")
    assert segment_results(experiment, "session_type").empty_reason == (
        "no exposed users have been counted yet (results are as of the last fold)")  # fmt: skip
    assert "no data set" in (segment_results(experiment, "country").empty_reason or "")
    dataset = Dataset.objects.create(name="plain", source_format="csv")
    variant = Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=dataset)
    Arm.objects.filter(experiment=experiment).update(variant=variant)
    expose(experiment, control, "u1")
    fold(experiment.pk, lag=timedelta(0))
    breakdown = segment_results(experiment, "country")
    assert breakdown.empty_reason == (
        "none of the 1 exposed users has a country in the experiment's data set (only the Online Retail "
        "importer stores one)")  # fmt: skip
    assert (breakdown.segments, breakdown.metrics) == ((), ())
    assert segment_results(experiment, "user_type").empty_reason == (
        "the experiment has not started, so no user is new or returning yet")  # fmt: skip
    with pytest.raises(ValueError, match="dimension must be one of country, user_type, session_type"):
        segment_results(experiment, "age")
    with pytest.raises(ValueError, match="traffic must be one of"):
        segment_results(experiment, "country", traffic="bots")


def test_the_serialised_breakdown_has_every_field_of_the_dataclasses_and_is_json() -> None:
    experiment = _hand_built()
    breakdown = segment_results(experiment, "country", min_users=4)

    data = segment_breakdown_data(breakdown)

    json.dumps(data, allow_nan=False)
    assert set(data) == {f.name for f in fields(SegmentBreakdown)}
    assert set(data["metrics"][0]["rows"][0]) == {f.name for f in fields(SegmentLift)}
    assert data["segments"][0] == {"name": UK, "users": 10, "members": [UK]}
    first_treatment = data["metrics"][0]["rows"][1]
    assert first_treatment["effect"] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.slow
def test_a_simulation_on_online_retail_breaks_down_by_country_with_the_united_kingdom(
    tmp_path: Path, settings: Any
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    experiment = simulated_retail_experiment(tmp_path, key="retail-segments")

    breakdown = segment_results(experiment, "country")

    # Every simulated shopper ("sim<run>.<replica>:<customer>") is an Online Retail customer with a country;
    # most are British, and the few countries under 100 users are counted together.
    assert [segment.name for segment in breakdown.segments] == [UK, "other"]
    assert DE in breakdown.segments[1].members
    users = sum(int(row.exposed_users) for row in ArmRollup.objects.filter(experiment=experiment))
    assert sum(segment.users for segment in breakdown.segments) == users
    assert all(s.users >= 100 for s in breakdown.segments if s.name != "other")
    primary = breakdown.metrics[0]
    assert (primary.metric, primary.primary) == (experiment.primary_metric, True)
    uk = next(row for row in primary.rows if row.segment == UK and not row.is_control)
    assert uk.error is None
    assert uk.ci_low <= uk.effect <= uk.ci_high  # type: ignore[operator]
    for block in breakdown.metrics:
        tested = [row for row in block.rows if row.p_value is not None]
        if tested:
            expected = multipletests([row.p_value for row in tested], method="holm")[1]
            assert [row.p_value_adjusted for row in tested] == pytest.approx(list(expected), abs=1e-12)
    sessions = segment_results(experiment, "session_type")
    assert {segment.name for segment in sessions.segments} == {"search", "browse"}


def test_the_api_answers_the_breakdown_and_400_for_an_unknown_dimension() -> None:
    experiment = _hand_built()
    client = client_for(user_with_role("dana", "Data scientists"))

    answer = client.get(f"/api/v1/experiments/{experiment.key}/segments/?by=country")
    refused = client.get(f"/api/v1/experiments/{experiment.key}/segments/?by=age")
    bad_traffic = client.get(f"/api/v1/experiments/{experiment.key}/segments/?by=country&traffic=bots")

    assert answer.status_code == 200
    body = answer.json()
    assert body == segment_breakdown_data(segment_results(experiment, "country"))
    assert body["note"] == NOTE
    assert refused.status_code == 400
    assert refused.json() == {"by": ["unknown dimension 'age': use one of country, user_type, session_type"]}
    assert bad_traffic.status_code == 400
    assert client_for(user_with_role("nobody", None)).get(
        f"/api/v1/experiments/{experiment.key}/segments/").status_code == 403  # fmt: skip


def test_the_page_shows_tables_a_forest_plot_and_the_exploratory_banner() -> None:
    experiment = _hand_built()
    client = client_for(product_manager())

    page = client.get(f"/experiments/{experiment.key}/segments/?by=user_type")
    running_experiment("quiet")
    empty = client.get("/experiments/quiet/segments/?by=session_type")
    refused = client.get(f"/experiments/{experiment.key}/segments/?by=age")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="exploratory-banner"' in html
    assert "not a verdict" in html
    assert '<option value="user_type" selected>' in html
    assert 'data-figure="forest-conversion_rate-data"' in html
    assert 'id="segments-conversion_rate"' in html
    assert '<tr data-segment="returning" data-arm="treatment">' in html
    assert empty.status_code == 200
    assert 'id="no-segments"' in empty.content.decode()
    assert "No exposed users have been counted yet" in empty.content.decode()
    assert 'data-figure="forest' not in empty.content.decode()
    assert refused.status_code == 400
