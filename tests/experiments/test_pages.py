"""The experiment pages: wizard, power calculator, lifecycle buttons, ramp, results, report, exports,
decisions, role permissions and CSRF (Django test client against the real database)."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.roles import DATA_SCIENTISTS, REVIEWERS
from analysis.results_types import results_data
from analysis.services.results import experiment_results
from analysis.services.rollups import fold
from engine.stats import sample_size_proportions
from engine.verdicts import KINDS
from experiments.models import Decision, Experiment, ExperimentChange
from experiments.services.lifecycle import transition
from tests.experiments.factories import client_for, draft_experiment, product_manager, trained_variants, wizard_data
from tests.experiments.traffic import NO_LAG, running_experiment, simulate
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_a_product_manager_creates_an_experiment_with_the_wizard(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    client = client_for(product_manager())
    page = client.get(reverse("experiment_pages:create"))
    assert page.status_code == 200
    assert b"pop@1 \xc2\xb7 popularity" in page.content
    assert b'id="power-calculator"' in page.content
    assert b'name="auto_pause"' in page.content

    response = client.post(reverse("experiment_pages:create"), wizard_data(auto_pause="on"))

    assert response.status_code == 302
    assert response["Location"] == reverse("experiment_pages:detail", args=["home-knn"])
    experiment = Experiment.objects.get(key="home-knn")
    assert (experiment.status, experiment.traffic_percent, experiment.secondary_metrics, experiment.auto_pause) == (
        "draft",
        50.0,
        ["conversion_rate"],
        True,
    )
    assert [(a.name, a.variant.label, a.is_control) for a in experiment.arms.order_by("position")] == [
        ("control", "pop@1", True), ("knn", "knn@1", False)]  # fmt: skip
    detail = client.get(response["Location"]).content.decode()
    n = sample_size_proportions(0.015, 0.1).n_per_arm
    assert f"{n:,}" in detail
    assert 'id="action-start"' in detail
    assert "create" in detail


def test_the_wizard_shows_field_errors_and_creates_nothing(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    client = client_for(product_manager())
    draft_experiment(User.objects.get(username="pm"), key="taken")

    response = client.post(reverse("experiment_pages:create"), wizard_data(
        key="taken", traffic_percent="150", control="4", **{"arm-1-variant": ""}))  # fmt: skip

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-field="traffic_percent"' in page  # the form's own range check
    response = client.post(reverse("experiment_pages:create"), wizard_data(key="taken", control="4"))
    page = response.content.decode()
    assert "exists already" in page
    assert "exactly one arm must be the control" in page
    assert Experiment.objects.count() == 1


def test_the_power_calculator_answers_users_and_days_or_explains_why_not() -> None:
    client = client_for(product_manager())
    url = reverse("experiment_pages:plan")
    answer = client.get(url, {"baseline_rate": 0.1, "minimum_detectable_effect": 0.1, "expected_daily_users": 1000,
                              "traffic_percent": 50, "arms": 3}).json()  # fmt: skip
    n = sample_size_proportions(0.1, 0.1).n_per_arm
    assert answer["n_per_arm"] == n
    assert answer["total_users"] == 3 * n
    assert answer["days"] == -(-n // (1000 * 0.5 / 3))  # ceil: the slowest arm gets a third of half the users
    bad = client.get(url, {"baseline_rate": 0.95, "minimum_detectable_effect": 0.2})
    assert bad.status_code == 400
    assert "outside (0, 1)" in bad.json()["errors"]["__all__"][0]
    missing = client.get(url, {"baseline_rate": 0.1})
    assert missing.status_code == 400
    assert "minimum_detectable_effect" in missing.json()["errors"]


def test_start_ramp_and_the_audit_trail_from_the_experiment_page(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    pm = product_manager()
    draft_experiment(pm, traffic_percent=20.0)
    client = client_for(pm)

    client.post(reverse("experiment_pages:action", args=["recs-ab", "start"]))
    down = client.post(reverse("experiment_pages:ramp", args=["recs-ab"]), {"traffic_percent": "10"}, follow=True)
    up = client.post(reverse("experiment_pages:ramp", args=["recs-ab"]), {"traffic_percent": "40"}, follow=True)

    experiment = Experiment.objects.get(key="recs-ab")
    assert (experiment.status, experiment.traffic_percent) == ("running", 40.0)
    assert (
        "ramp-down" in down.content.decode()
        or "would drop" in down.content.decode()
        or "refused" in down.content.decode()
    )
    page = up.content.decode()
    assert "Traffic share set to 40 %" in page
    assert 'id="ramp"' in page
    assert list(ExperimentChange.objects.filter(experiment=experiment).values_list("action", flat=True)) == [
        "create", "start", "ramp"]  # fmt: skip
    again = client.post(reverse("experiment_pages:action", args=["recs-ab", "start"]), follow=True)
    assert "cannot start recs-ab: it is running" in again.content.decode()


def test_reviewers_and_data_scientists_cannot_create_or_run_experiments(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    draft_experiment(product_manager())
    for role in (REVIEWERS, DATA_SCIENTISTS):
        client = client_for(user_with_role(f"user-{role[:4]}", role))
        assert client.get(reverse("experiment_pages:create")).status_code == 403
        assert client.post(reverse("experiment_pages:action", args=["recs-ab", "start"])).status_code == 403
        assert (
            client.post(reverse("experiment_pages:ramp", args=["recs-ab"]), {"traffic_percent": 90}).status_code == 403
        )
        page = client.get(reverse("experiment_pages:detail", args=["recs-ab"])).content.decode()
        assert 'id="action-start"' not in page
    assert Experiment.objects.get(key="recs-ab").status == "draft"
    assert client_for(user_with_role("nobody", None)).get(reverse("experiment_pages:list")).status_code == 403


def test_forms_refuse_posts_without_the_csrf_token(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    pm = product_manager()
    draft_experiment(pm)
    client = Client(enforce_csrf_checks=True)
    client.force_login(pm)
    assert client.post(reverse("experiment_pages:action", args=["recs-ab", "start"])).status_code == 403
    assert Experiment.objects.get(key="recs-ab").status == "draft"


def experiment_with_traffic(status: str = "running", users: int = 80) -> Experiment:
    experiment, control, treatment = running_experiment("page-ab")
    simulate(experiment, (control, treatment), users_per_arm=users)
    fold(experiment.pk, lag=NO_LAG)
    Experiment.objects.filter(pk=experiment.pk).update(status=status)
    experiment.refresh_from_db()
    return experiment


def test_the_results_dashboard_shows_the_numbers_verdicts_and_chart_data() -> None:
    experiment = experiment_with_traffic()
    results = results_data(experiment_results(experiment))
    page = client_for(product_manager()).get(reverse("experiment_pages:results", args=["page-ab"])).content.decode()

    control = next(arm for arm in results["arms"] if arm["is_control"])
    assert f"{control['ctr'] * 100:.2f} %" in page
    comparison = results["comparisons"][0]
    assert comparison["verdict_label"] in page
    assert f'data-verdict="{KINDS[comparison["verdict"]]}"' in page
    for chart in ("chart-cumulative-ctr", "chart-forest", "chart-exposures", "chart-revenue", "chart-lift"):
        assert f'id="{chart}"' in page
    marker = 'id="chart-exposures-data" type="application/json">'
    start = page.index(marker) + len(marker)
    figure = json.loads(page[start : page.index("</script>", start)])
    assert [trace["name"] for trace in figure["data"]] == ["control", "treatment"]
    assert sum(figure["data"][0]["y"]) == control["users"]
    assert "plotly/plotly.min.js" in page
    assert "cdn" not in page.lower()


def test_the_results_page_and_report_say_where_the_always_valid_test_is_tightest() -> None:
    experiment = experiment_with_traffic()
    client = client_for(product_manager())
    results_url = reverse("experiment_pages:results", args=["page-ab"])
    report_url = reverse("experiment_pages:report", args=["page-ab"])

    for url in (results_url, report_url):
        page = " ".join(html.unescape(client.get(url).content.decode()).split())
        assert (
            "The verdict uses the always-valid sequential test, chosen when the experiment was designed: it may be "
            "read at any time, also after an early stop, and the interval beside it is that test's confidence "
            'sequence<span id="sequential-tuning"> (it is tightest at 30,000 users (default: no plan))</span>.'
        ) in page

    # 1.5 % -> 1.65 % at alpha 0.05 and power 0.8 needs 108,093 users per arm (statsmodels' NormalIndPower:
    # 108,092.67), so with equal weights the two arms have 216,186 users when the plan is met.
    Experiment.objects.filter(pk=experiment.pk).update(baseline_rate=0.015, minimum_detectable_effect=0.1)
    n_star = 216_186
    for url in (results_url, report_url):
        page = html.unescape(client.get(url).content.decode())
        assert (
            f'<span id="sequential-tuning"> (it is tightest at {n_star:,} users (the plan\'s sample size))</span>'
            in page
        )
    document = json.loads(client.get(reverse("experiment_pages:export-json", args=["page-ab"])).content)
    sequential = document["results"]["comparisons"][0]["sequential"]
    assert (sequential["n_star"], sequential["n_star_source"]) == (n_star, "plan")


def test_an_experiment_without_traffic_explains_what_to_do() -> None:
    running_experiment("quiet")
    page = client_for(product_manager()).get(reverse("experiment_pages:results", args=["quiet"])).content.decode()
    assert 'id="no-traffic"' in page
    assert "/api/v1/experiments/quiet/recommendations" in page


def test_a_sample_ratio_mismatch_shows_a_banner() -> None:
    experiment, control, treatment = running_experiment("srm-ab")
    from tests.experiments.traffic import expose

    for i in range(300):
        expose(experiment, control if i % 5 else treatment, f"u{i}")  # 80 / 20 under 50 / 50 weights
    fold(experiment.pk, lag=NO_LAG)
    page = client_for(product_manager()).get(reverse("experiment_pages:results", args=["srm-ab"])).content.decode()
    assert 'id="srm-warning"' in page
    assert "Sample ratio mismatch" in page


def test_a_reviewer_reads_the_report_exports_it_and_records_a_decision() -> None:
    experiment = experiment_with_traffic(status="stopped")
    reviewer = user_with_role("rita", REVIEWERS)
    client = client_for(reviewer)

    report = client.get(reverse("experiment_pages:report", args=["page-ab"])).content.decode()
    assert 'id="decision-form"' in report
    assert 'id="offline-metrics"' in report
    assert 'id="summary"' in report

    exported = client.get(reverse("experiment_pages:export-csv", args=["page-ab"]))
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    results = results_data(experiment_results(experiment))
    assert exported["Content-Disposition"] == 'attachment; filename="page-ab-results.csv"'
    assert len(rows) == 2 * 5
    ctr = next(r for r in rows if r["arm"] == "treatment" and r["metric"] == "ctr")
    treatment = next(a for a in results["arms"] if a["name"] == "treatment")
    assert float(ctr["value"]) == pytest.approx(treatment["ctr"])
    assert ctr["verdict"] == results["comparisons"][0]["verdict"]
    document = json.loads(client.get(reverse("experiment_pages:export-json", args=["page-ab"])).content)
    assert document["experiment"]["key"] == "page-ab"
    assert document["results"]["arms"] == results["arms"]

    missing = client.post(reverse("experiment_pages:decide", args=["page-ab"]), {"outcome": "ship", "rationale": " "})
    assert missing.status_code == 400
    assert Decision.objects.count() == 0
    decision_data = {"outcome": "ship", "winning_arm": "treatment", "rationale": "CTR up, guardrails fine"}
    done = client.post(reverse("experiment_pages:decide", args=["page-ab"]), decision_data, follow=True)
    assert "Decision recorded" in done.content.decode()
    assert "CTR up, guardrails fine" in done.content.decode()
    decision = Decision.objects.get()
    assert (decision.outcome, decision.winning_arm.name, decision.reviewer) == ("ship", "treatment", reviewer)
    change = ExperimentChange.objects.get(experiment=experiment, action="decision")
    assert change.user == reviewer
    assert change.after["outcome"] == "ship"


def test_decisions_wait_until_the_experiment_stops_and_are_for_reviewers_only() -> None:
    experiment_with_traffic(status="running")
    reviewer = client_for(user_with_role("rita", REVIEWERS))
    refused = reviewer.post(
        reverse("experiment_pages:decide", args=["page-ab"]), {"outcome": "ship", "rationale": "early"}
    )
    assert refused.status_code == 400
    assert "stop it before deciding" in refused.content.decode()
    pm = client_for(product_manager())
    assert (
        pm.post(reverse("experiment_pages:decide", args=["page-ab"]), {"outcome": "ship", "rationale": "x"}).status_code
        == 403
    )
    assert 'id="decision-form"' not in pm.get(reverse("experiment_pages:report", args=["page-ab"])).content.decode()
    assert Decision.objects.count() == 0


def test_the_home_page_lists_running_experiments_with_their_verdict_and_each_roles_start(tmp_path: Path) -> None:
    experiment_with_traffic(status="running")
    page = client_for(product_manager()).get(reverse("home")).content.decode()
    assert 'id="running-experiments"' in page
    assert "page-ab" in page
    assert 'id="start-experiment"' in page
    reviewer_page = client_for(user_with_role("rita", REVIEWERS)).get(reverse("home")).content.decode()
    assert 'id="start-experiment"' not in reviewer_page
    assert "Reviewers" in reviewer_page


def test_simulation_is_refused_with_the_reason_when_the_data_set_has_no_holdout(tmp_path: Path) -> None:
    trained_variants(tmp_path)
    pm = product_manager()
    transition(draft_experiment(pm), "start", pm)
    response = client_for(pm).post(reverse("experiment_pages:simulate", args=["recs-ab"]),
                                   {"users": 100, "days": 2, "seed": 1}, follow=True)  # fmt: skip
    assert "has no held-out period to simulate from" in response.content.decode()


def test_results_show_live_simulated_or_all_traffic_and_refuse_anything_else() -> None:
    experiment_with_traffic()  # live users only
    client = client_for(product_manager())
    url = reverse("experiment_pages:results", args=["page-ab"])
    live = client.get(url, {"traffic": "live"}).content.decode()
    simulated = client.get(url, {"traffic": "simulated"}).content.decode()
    assert 'id="summary"' in live
    assert "Chance to win (CTR)" in live  # the Bayesian column is on the primary metric
    assert 'id="no-traffic"' in simulated
    assert '<option value="simulated" selected>' in simulated
    exported = client.get(reverse("experiment_pages:export-csv", args=["page-ab"]), {"traffic": "simulated"})
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert {row["users"] for row in rows} == {"0"}
    assert client.get(url, {"traffic": "bots"}).status_code == 400


def test_product_managers_cancel_a_queued_simulation_and_delete_a_finished_one() -> None:
    from simulation.models import SimulationRun

    experiment, _, _ = running_experiment("sim-page")
    queued = SimulationRun.objects.create(experiment=experiment, config={"days": 2})
    finished = SimulationRun.objects.create(experiment=experiment, config={"days": 2}, status="succeeded")
    reviewer = client_for(user_with_role("rita", REVIEWERS))
    assert reviewer.post(reverse("experiment_pages:simulation-cancel", args=["sim-page", queued.pk])).status_code == 403
    pm = client_for(product_manager())
    page = pm.get(reverse("experiment_pages:detail", args=["sim-page"])).content.decode()
    assert 'id="cancel-simulation"' in page

    pm.post(reverse("experiment_pages:simulation-cancel", args=["sim-page", queued.pk]))
    deleted = pm.post(reverse("experiment_pages:simulation-delete", args=["sim-page", finished.pk]), follow=True)

    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert not SimulationRun.objects.filter(pk=finished.pk).exists()
    assert f"Simulation {finished.pk} and all its traffic were deleted." in deleted.content.decode()
