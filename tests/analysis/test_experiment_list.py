"""The experiment list: search, status and owner filters, each experiment's verdict and latest decision."""

from __future__ import annotations

import pytest
from django.urls import reverse

from analysis.services.rollups import fold
from experiments.models import Decision, Experiment
from tests.experiments.factories import client_for, product_manager
from tests.experiments.traffic import NO_LAG, running_experiment, simulate
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_the_list_searches_filters_and_shows_verdicts_and_decisions() -> None:
    experiment, control, treatment = running_experiment("home-recs")
    Experiment.objects.filter(pk=experiment.pk).update(
        name="Home page recommendations", hypothesis="kNN beats best sellers"
    )
    simulate(experiment, (control, treatment), users_per_arm=80)
    fold(experiment.pk, lag=NO_LAG)
    stopped, _, _ = running_experiment("search-ranking")
    Experiment.objects.filter(pk=stopped.pk).update(status="stopped", name="Search ranking")
    reviewer = user_with_role("rev", "Reviewers")
    Decision.objects.create(experiment=stopped, reviewer=reviewer, outcome="iterate", rationale="too little traffic")
    client = client_for(product_manager())
    url = reverse("experiment_pages:list")

    page = client.get(url).content.decode()
    assert 'data-experiment="home-recs"' in page
    assert 'data-experiment="search-ranking"' in page
    results_badge = client.get(reverse("experiment_pages:results", args=["home-recs"])).content.decode()
    kind = results_badge.split('data-verdict="', 1)[1].split('"', 1)[0]
    assert f'data-verdict="{kind}"' in page  # the same badge as the results page
    assert 'data-decision="iterate"' in page
    assert "Iterate and rerun" in page

    found = client.get(url, {"q": "best sellers"}).content.decode()  # the hypothesis is searched too
    assert 'data-experiment="home-recs"' in found
    assert 'data-experiment="search-ranking"' not in found
    by_status = client.get(url, {"status": "stopped"}).content.decode()
    assert 'data-experiment="search-ranking"' in by_status
    assert 'data-experiment="home-recs"' not in by_status
    by_owner = client.get(url, {"owner": "nobody"}).content.decode()
    assert 'id="no-experiments"' in by_owner
    assert "owned by nobody" in by_owner
