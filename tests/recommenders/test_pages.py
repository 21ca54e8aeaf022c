"""The data scientists' variant pages: list, register form, variant page, comparison; roles and CSRF."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS
from recommenders import serving
from recommenders.algorithms import registry
from recommenders.models import Dataset, Evaluation, TrainingRun, Variant
from recommenders.services.training import run_evaluation, run_training
from recommenders.tasks import queue_evaluation
from tests.recommenders.factories import retail_sample, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    serving.clear_cache()


@pytest.fixture
def scientist() -> User:
    return user_with_role("dana", DATA_SCIENTISTS)


@pytest.fixture
def ds(scientist: User) -> Client:
    client = Client()
    client.force_login(scientist)
    return client


@pytest.fixture
def shop() -> Dataset:
    """A data set row without interactions: enough for pages that only read variants and runs."""
    return Dataset.objects.create(name="shop", source_format="csv", user_count=3, item_count=4)


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(user_with_role(role.split()[0].lower(), role))
    return client


def figure(html: str, script_id: str) -> dict[str, Any]:
    """The Plotly figure a page hands to abplatform.js in <script type="application/json" id=...>."""
    match = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no figure {script_id} on the page"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def register_through_form(client: Client, algorithm: str, dataset: str, **fields: Any) -> Any:
    return client.post(f"/variants/new/?algorithm={algorithm}&dataset={dataset}", fields)


# ---- list -------------------------------------------------------------------------------


def test_an_empty_list_tells_a_data_scientist_how_to_register_one(ds: Client) -> None:
    html = ds.get("/variants/").content.decode()

    assert "No variants yet" in html
    assert 'id="register-variant" href="/variants/new/"' in html
    assert 'href="/variants/new/">Register one here</a>' in html


def test_the_list_links_each_variant_shows_its_metrics_and_offers_comparison(ds: Client, shop: Dataset) -> None:
    evaluated = Variant.objects.create(name="knn", version=1, algorithm="item_knn", dataset=shop, status="trained")
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)
    _evaluation(evaluated, ndcg=0.1234, precision=0.0567)

    html = ds.get("/variants/").content.decode()

    assert '<a href="/variants/knn/1/">knn</a>' in html
    assert '<td class="num ndcg">0.1234</td>' in html
    assert '<td class="num precision">0.0567</td>' in html
    assert "not evaluated" in html  # pop
    assert f'<input type="checkbox" name="v" value="{evaluated.pk}"' in html
    assert 'id="compare-form"' in html
    assert 'action="/variants/compare/"' in html


def test_product_managers_and_reviewers_see_no_register_button(shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)
    for role in (PRODUCT_MANAGERS, REVIEWERS):
        html = client_for(role).get("/variants/").content.decode()
        assert "pop" in html
        assert "register-variant" not in html


def test_pages_need_a_login() -> None:
    response = Client().get("/variants/new/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/variants/new/")


# ---- register form ----------------------------------------------------------------------


def test_registering_starts_by_choosing_algorithm_and_data_set(ds: Client, shop: Dataset) -> None:
    html = ds.get("/variants/new/").content.decode()

    assert 'id="choose-algorithm"' in html
    assert '<option value="hybrid">hybrid</option>' in html
    assert '<option value="shop">shop</option>' in html
    assert "register-form" not in html


def test_without_a_data_set_the_register_page_says_to_import_one(ds: Client) -> None:
    html = ds.get("/variants/new/").content.decode()
    assert "No data set to train on yet" in html
    assert "python manage.py import_dataset" in html


def test_an_unknown_algorithm_is_a_field_error(ds: Client, shop: Dataset) -> None:
    response = ds.get("/variants/new/?algorithm=magic&dataset=shop")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Select a valid choice. magic is not one of the available choices." in html
    assert "register-form" not in html


def test_the_form_has_the_algorithms_parameters_with_their_defaults(ds: Client, shop: Dataset) -> None:
    html = ds.get("/variants/new/?algorithm=ease&dataset=shop").content.decode()

    assert 'id="register-form"' in html
    assert "csrfmiddlewaretoken" in html
    assert re.search(r'<input type="number" name="param_l2" value="500.0" step="any"', html)
    assert "float, default 500.0" in html
    assert re.search(r'<input type="number" name="param_max_items" value="20000"', html)
    assert re.search(r'<input type="checkbox" name="param_use_values"', html)

    html = ds.get("/variants/new/?algorithm=popularity&dataset=shop").content.decode()
    assert "`half_life_days` = 0 counts every interaction equally" in html  # the Params docstring


@pytest.mark.parametrize("algorithm", [name for name in registry.names() if name != "hybrid"])
def test_submitting_the_form_unchanged_registers_the_defaults(algorithm: str, ds: Client, shop: Dataset) -> None:
    html = ds.get(f"/variants/new/?algorithm={algorithm}&dataset=shop").content.decode()
    # What a browser sends for the untouched form: every value as rendered, ticked boxes as "on".
    fields = dict(re.findall(r'<input type="(?:number|text)" name="(param_\w+)" value="([^"]*)"', html))
    fields |= {name: "on" for name in re.findall(r'<input type="checkbox" name="(param_\w+)"[^>]* checked', html)}
    assert fields

    response = register_through_form(ds, algorithm, "shop", name=f"plain-{algorithm}".replace("_", "-"), **fields)

    assert response.status_code == 302
    assert Variant.objects.get().params == {}


def test_bad_parameters_come_back_as_field_errors(ds: Client, shop: Dataset) -> None:
    response = register_through_form(ds, "ease", "shop", name="my ease!", param_l2="-1", param_max_items="lots")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid “slug”" in html  # the name
    assert "Enter a whole number." in html  # max_items
    assert Variant.objects.count() == 0

    response = register_through_form(ds, "ease", "shop", name="my-ease", param_l2="-1")

    html = response.content.decode()
    assert re.search(r'name="param_l2" value="-1".*?<p class="error">must be positive</p>', html, re.S)
    assert Variant.objects.count() == 0


def test_registering_queues_training_and_opens_the_variant_page(
    ds: Client, shop: Dataset, scientist: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = register_through_form(
            ds, "popularity", "shop", name="pop", description="Best sellers", param_half_life_days="30", train_now="on"
        )

    variant = Variant.objects.get()
    assert (response.status_code, response["Location"]) == (302, "/variants/pop/1/")
    assert (variant.params, variant.description, variant.author, variant.status) == (
        {"half_life_days": 30.0},
        "Best sellers",
        scientist,
        "training",
    )
    assert TrainingRun.objects.get().requested_by == scientist
    assert len(callbacks) == 1  # the task is sent once the registration commits
    page = ds.get("/variants/pop/1/").content.decode()
    assert "Registered pop@1 and queued its training." in page
    assert 'id="training-progress"' in page


def test_registering_without_training_leaves_a_draft(ds: Client, shop: Dataset) -> None:
    response = register_through_form(ds, "popularity", "shop", name="pop")

    assert response.status_code == 302
    assert Variant.objects.get().status == "draft"
    assert TrainingRun.objects.count() == 0


def test_a_hybrid_of_trained_variants_is_registered_through_the_form(ds: Client, tmp_path: Path) -> None:
    dataset = retail_sample(tmp_path, rows=2000)
    pop, ease = (
        _trained(ds, "popularity", dataset.name, name="pop"),
        _trained(ds, "ease", dataset.name, name="ease", param_l2="50"),
    )
    evaluation = queue_evaluation(ease, k=10, send=False)
    run_evaluation(evaluation.pk)
    evaluation.refresh_from_db()

    form = ds.get(f"/variants/new/?algorithm=hybrid&dataset={dataset.name}").content.decode()

    assert 'id="hybrid-components"' in form
    assert '<tr class="component" data-variant="ease@1">' in form
    assert f"{evaluation.metrics['ndcg']:.4f}" in form  # the component's offline NDCG@10 beside its slider
    assert re.search(rf'type="range" name="weight_{ease.pk}" value="0.5"', form)
    assert re.search(r'<label id="learn-weights"><input type="checkbox" name="param_learn_weights"', form)

    response = register_through_form(
        ds, "hybrid", dataset.name, name="blend", components=[str(pop.pk), str(ease.pk)],
        **{f"weight_{pop.pk}": "0.25", f"weight_{ease.pk}": "0.75"}, param_normalisation="minmax",
    )  # fmt: skip

    assert response.status_code == 302
    hybrid = Variant.objects.get(name="blend")
    assert hybrid.params["components"] == [
        {"algorithm": "popularity", "params": {}, "weight": 0.25},
        {"algorithm": "ease", "params": {"l2": 50.0}, "weight": 0.75},
    ]
    run_training(TrainingRun.objects.create(variant=hybrid).pk)
    assert Variant.objects.get(pk=hybrid.pk).status == "trained"
    page = ds.get("/variants/blend/1/").content.decode()
    rows = re.findall(
        r"<tr><td>(\w+)</td><td><code>(.*?)</code></td>\s*<td class=\"num\">(.*?)</td><td class=\"num\">(.*?)</td>",
        page,
    )
    assert rows == [("popularity", "{}", "0.25", "0.25"), ("ease", "{&quot;l2&quot;: 50.0}", "0.75", "0.75")]
    assert 'id="fit-notes"' not in page  # the weights are all the hybrid noted, and the table shows them

    register_through_form(ds, "hybrid", dataset.name, name="learned", components=[str(pop.pk), str(ease.pk)],
                          param_learn_weights="on")  # fmt: skip
    assert Variant.objects.get(name="learned").params["learn_weights"] is True


def test_a_hybrid_without_components_is_refused_on_the_components_field(ds: Client, shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop, status="trained")

    response = register_through_form(ds, "hybrid", "shop", name="blend")

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'id="hybrid-components".*?<p class="error">expected a non-empty list of \{algorithm', html, re.S)
    assert Variant.objects.filter(name="blend").count() == 0


def test_a_hybrid_with_nothing_trained_says_to_train_components_first(ds: Client, shop: Dataset) -> None:
    html = ds.get("/variants/new/?algorithm=hybrid&dataset=shop").content.decode()
    assert 'id="no-components"' in html
    assert "No trained variant on shop yet" in html


# ---- variant page ----------------------------------------------------------------------


def test_the_variant_page_shows_facts_versions_runs_and_evaluations(ds: Client, tmp_path: Path) -> None:
    dataset = retail_sample(tmp_path, rows=2000)
    _trained(ds, "ease", dataset.name, name="ease", param_l2="50")
    second = _trained(ds, "ease", dataset.name, name="ease", param_l2="80", description="stronger")
    evaluation = queue_evaluation(second, split="temporal", ratio=0.8, k=10, send=False)
    run_evaluation(evaluation.pk)
    evaluation.refresh_from_db()

    html = ds.get("/variants/ease/2/").content.decode()

    assert '<dd id="fact-algorithm">ease</dd>' in html
    assert "&quot;l2&quot;: 80.0" in html
    assert "stronger" in html
    assert '<a href="/variants/ease/1/">v1</a>' in html  # version history
    assert re.search(r'id="training-runs".*?Succeeded.*?trained', html, re.S)
    assert f'<td class="num ndcg">{evaluation.metrics["ndcg"]:.4f}</td>' in html
    assert f'<td class="num precision">{evaluation.metrics["precision"]:.4f}</td>' in html
    assert "Global temporal cut-off" in html
    assert "records no loss per epoch" in html
    assert "loss-chart" not in html
    assert 'id="train-button"' in html
    assert 'id="evaluate-form"' in html


def test_an_active_run_shows_a_progress_bar_polling_the_api(ds: Client, shop: Dataset) -> None:
    variant = Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop, status="training")
    run = TrainingRun.objects.create(variant=variant, status="running", progress=40, message="fitting")

    html = ds.get("/variants/pop/1/").content.decode()

    poll_url = f"/api/v1/training-runs/{run.pk}/"
    assert f'id="training-progress" data-poll-url="{poll_url}"' in html
    assert '<progress max="100" value="40"></progress>' in html
    job = ds.get(poll_url).json()
    assert (job["status"], job["progress"], job["message"]) == ("running", 40, "fitting")


def test_a_deep_models_page_charts_its_loss_per_epoch(ds: Client, shop: Dataset) -> None:
    variant = Variant.objects.create(name="mlp", version=1, algorithm="deep_mlp", dataset=shop, status="trained")
    history = {"loss": [0.69, 0.52, 0.41], "val_loss": [0.7, 0.6, 0.58]}
    TrainingRun.objects.create(variant=variant, status="succeeded", progress=100, fit_report={"history": history})

    html = ds.get("/variants/mlp/1/").content.decode()

    assert 'id="loss-chart" data-figure="loss-figure"' in html
    traces = figure(html, "loss-figure")["data"]
    assert [(t["name"], t["x"], t["y"]) for t in traces] == [
        ("loss", [1, 2, 3], [0.69, 0.52, 0.41]),
        ("val_loss", [1, 2, 3], [0.7, 0.6, 0.58]),
    ]
    assert "plotly/plotly.min.js" in html


def test_an_untrained_variant_says_what_to_do_next(ds: Client, shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)

    html = ds.get("/variants/pop/1/").content.decode()

    assert "Not trained yet." in html
    assert "Press <strong>Train</strong>" in html
    assert "No offline evaluation yet." in html
    assert "plotly.min.js" not in html
    assert ds.get("/variants/pop/2/").status_code == 404


def test_train_and_evaluate_buttons_queue_jobs(ds: Client, shop: Dataset, scientist: User) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)

    assert ds.post("/variants/pop/1/train/")["Location"] == "/variants/pop/1/"
    response = ds.post("/variants/pop/1/evaluate/", {"split": "leave_last_out", "ratio": "0.75", "k": "20"})

    assert response["Location"] == "/variants/pop/1/"
    assert TrainingRun.objects.get().requested_by == scientist
    assert Evaluation.objects.values_list("split", "k", "requested_by").get() == ("leave_last_out", 20, scientist.pk)
    html = ds.get("/variants/pop/1/").content.decode()
    assert 'id="evaluation-progress"' in html
    assert 'id="training-progress"' in html


def test_evaluate_with_bad_settings_queues_nothing_and_says_why(ds: Client, shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)

    response = ds.post("/variants/pop/1/evaluate/", {"split": "random", "ratio": "2", "k": "10"}, follow=True)

    assert Evaluation.objects.count() == 0
    html = response.content.decode()
    assert "Evaluation not queued" in html
    assert "Ensure this value is less than or equal to 0.99." in html
    assert ds.get("/variants/pop/1/train/").status_code == 405  # state changes only by POST


@pytest.mark.parametrize("role", [PRODUCT_MANAGERS, REVIEWERS])
def test_other_roles_may_look_but_not_register_train_or_evaluate(role: str, shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)
    client = client_for(role)

    html = client.get("/variants/pop/1/").content.decode()
    assert "pop" in html
    assert "train-button" not in html
    assert "evaluate-form" not in html
    assert client.get("/variants/new/").status_code == 403
    assert register_through_form(client, "popularity", "shop", name="other").status_code == 403
    assert client.post("/variants/pop/1/train/").status_code == 403
    assert (
        client.post("/variants/pop/1/evaluate/", {"split": "stratified", "ratio": "0.75", "k": "10"}).status_code == 403
    )
    assert (Variant.objects.count(), TrainingRun.objects.count(), Evaluation.objects.count()) == (1, 0, 0)


def test_forms_are_csrf_protected(scientist: User, shop: Dataset) -> None:
    Variant.objects.create(name="pop", version=1, algorithm="popularity", dataset=shop)
    client = Client(enforce_csrf_checks=True)
    client.force_login(scientist)

    assert client.post("/variants/pop/1/train/").status_code == 403
    assert client.post("/variants/pop/1/evaluate/", {"split": "stratified"}).status_code == 403
    assert register_through_form(client, "popularity", "shop", name="other").status_code == 403
    assert TrainingRun.objects.count() == Evaluation.objects.count() == 0
    assert Variant.objects.count() == 1


# ---- comparison -------------------------------------------------------------------------


def test_the_comparison_charts_metrics_and_curves_of_real_evaluations(ds: Client, tmp_path: Path) -> None:
    dataset = retail_sample(tmp_path, rows=2000)
    pop = _trained(ds, "popularity", dataset.name, name="pop")
    ease = _trained(ds, "ease", dataset.name, name="ease", param_l2="50")
    evaluations = {}
    for variant in (pop, ease):
        evaluation = queue_evaluation(variant, k=10, send=False)
        run_evaluation(evaluation.pk)
        evaluations[variant.label] = Evaluation.objects.get(pk=evaluation.pk).metrics

    html = ds.get(f"/variants/compare/?v={pop.pk}&v={ease.pk}").content.decode()

    bars = figure(html, "compare-bars-figure")["data"]
    assert [trace["name"] for trace in bars] == ["ease@1 (k=10)", "pop@1 (k=10)"]
    assert bars[0]["x"] == ["Precision", "Recall", "NDCG", "MAP", "MRR", "Hit rate"]
    assert bars[0]["y"][2] == evaluations["ease@1"]["ndcg"]
    assert bars[1]["y"][0] == evaluations["pop@1"]["precision"]
    for metric in ("precision", "recall", "ndcg"):
        curves = figure(html, f"curve-{metric}-figure")["data"]
        assert [c["name"] for c in curves] == ["ease@1", "pop@1"]
        assert curves[0]["x"] == list(range(1, 51))
        assert curves[0]["y"] == evaluations["ease@1"]["at_k"][metric]
    assert 'id="compare-bars"' in html
    assert 'id="metric-curves"' in html
    assert f"{evaluations['ease@1']['ndcg']:.4f}" in html  # the table
    assert "mixed-setups" not in html


def test_comparison_empty_states_and_mixed_setups(ds: Client, shop: Dataset) -> None:
    a = Variant.objects.create(name="a", version=1, algorithm="popularity", dataset=shop, status="trained")
    b = Variant.objects.create(name="b", version=1, algorithm="popularity", dataset=shop, status="trained")
    c = Variant.objects.create(name="c", version=1, algorithm="popularity", dataset=shop)

    assert "No variants chosen" in ds.get("/variants/compare/").content.decode()
    html = ds.get(f"/variants/compare/?v={a.pk}&v=junk").content.decode()
    assert "None of these variants has been evaluated yet" in html
    assert "compare-bars" not in html

    _evaluation(a, ndcg=0.2, precision=0.1, k=10)
    _evaluation(b, ndcg=0.3, precision=0.2, k=5)
    html = ds.get(f"/variants/compare/?v={a.pk}&v={b.pk}&v={c.pk}").content.decode()

    assert 'id="mixed-setups"' in html  # k differs
    assert re.search(r'id="unevaluated">Not evaluated, so left out: <a href="/variants/c/1/">c@1</a>', html)
    assert "evaluate again to draw them" in html  # these evaluations stored no curves
    assert [t["y"][2] for t in figure(html, "compare-bars-figure")["data"]] == [0.2, 0.3]


def test_pages_use_a_handful_of_queries(ds: Client, shop: Dataset, django_assert_max_num_queries: Any) -> None:
    variants = [
        Variant.objects.create(name=f"v{i}", version=1, algorithm="popularity", dataset=shop, status="trained")
        for i in range(8)
    ]
    for variant in variants:
        _evaluation(variant, ndcg=0.1, precision=0.1)
        TrainingRun.objects.create(variant=variant, status="succeeded")
    ids = "&".join(f"v={v.pk}" for v in variants)
    for url in ("/variants/", "/variants/v1/1/", f"/variants/compare/?{ids}"):
        with django_assert_max_num_queries(12):
            assert ds.get(url).status_code == 200


# ---- helpers ----------------------------------------------------------------------------


def _trained(client: Client, algorithm: str, dataset: str, **fields: Any) -> Variant:
    """Register through the form (no training queued), then train in this process."""
    assert register_through_form(client, algorithm, dataset, **fields).status_code == 302
    variant = Variant.objects.filter(name=fields["name"]).order_by("-version").first()
    assert variant is not None
    run_training(TrainingRun.objects.create(variant=variant).pk)
    variant.refresh_from_db()
    assert variant.status == "trained"
    return variant


def _evaluation(variant: Variant, *, ndcg: float, precision: float, k: int = 10) -> Evaluation:
    metrics = {"k": k, "ndcg": ndcg, "precision": precision, "recall": 0.05, "map": 0.02, "mrr": 0.2,
               "hit_rate": 0.4, "coverage": 0.3, "novelty": 4.0, "gini": 0.9, "n_users": 3}  # fmt: skip
    return Evaluation.objects.create(variant=variant, status="succeeded", progress=100, k=k, metrics=metrics)
