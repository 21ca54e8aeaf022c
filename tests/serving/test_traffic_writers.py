"""Only shops write traffic: events and served recommendations need an API token with the right scope;
no signed-in person, whatever the role, can add clicks or purchases; a draft experiment takes none."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from accounts.roles import DATA_SCIENTISTS, PRODUCT_MANAGERS, REVIEWERS
from experiments.models import Experiment
from serving.models import Event
from serving.services.tokens import create_token
from tests.experiments.traffic import running_experiment
from tests.recommenders.factories import user_with_role

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 24, 9, tzinfo=UTC).isoformat()


def _purchase(event_id: str, key: str) -> dict[str, object]:
    return {"event_id": event_id, "user_id": "u1", "type": "purchase", "timestamp": WHEN, "experiment": key,
            "revenue": "1000000.00"}  # fmt: skip


@pytest.mark.parametrize("role", [REVIEWERS, DATA_SCIENTISTS, PRODUCT_MANAGERS])
def test_a_signed_in_person_cannot_write_events_or_ask_for_served_recommendations(role: str) -> None:
    experiment, _, _ = running_experiment()
    person = APIClient()
    person.force_login(user_with_role("someone", role))

    events = person.post("/api/v1/events", [_purchase("e1", experiment.key)], format="json")
    served = person.post(f"/api/v1/experiments/{experiment.key}/recommendations", {"user_id": "u1"}, format="json")

    assert (events.status_code, served.status_code) == (403, 403)
    assert "needs an API token with the 'ingest' scope" in events.json()["detail"]
    assert "needs an API token with the 'serve' scope" in served.json()["detail"]
    assert Event.objects.count() == 0


def test_basic_auth_is_not_accepted_and_a_serve_token_cannot_ingest() -> None:
    experiment, _, _ = running_experiment()
    user_with_role("rev", REVIEWERS).set_password("a long enough password")
    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"rev:a long enough password").decode())
    assert basic.post("/api/v1/events", [_purchase("e1", experiment.key)], format="json").status_code in (401, 403)
    _, secret = create_token("shop", ["serve"])
    shop = APIClient()
    shop.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert shop.post("/api/v1/events", [_purchase("e1", experiment.key)], format="json").status_code == 403
    assert Event.objects.count() == 0


def test_a_draft_experiment_accepts_no_events_and_the_others_of_the_batch_are_stored() -> None:
    running, _, _ = running_experiment("live")
    draft, _, _ = running_experiment("planned")
    Experiment.objects.filter(pk=draft.pk).update(status="draft")
    _, secret = create_token("shop", ["ingest"])
    shop = APIClient()
    shop.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    answer = shop.post("/api/v1/events", [_purchase("e1", "live"), _purchase("e2", "planned")], format="json")

    assert answer.status_code == 200
    body = answer.json()
    assert (body["received"], body["stored"]) == (2, 1)
    reason = "experiment 'planned' is a draft: it accepts no traffic until it is started"
    assert body["errors"] == [{"index": 1, "event_id": "e2", "error": reason}]
    assert list(Event.objects.values_list("event_id", "experiment__key")) == [("e1", "live")]
    assert running.status == "running"


def test_a_token_bound_to_an_experiment_writes_and_serves_for_it_only() -> None:
    bound_to, _, _ = running_experiment("rollup-ab")
    other, _, _ = running_experiment("other-ab")
    _, secret = create_token("shop-a", ["serve", "ingest"], [bound_to.key])
    shop = APIClient()
    shop.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    answer = shop.post("/api/v1/events", [_purchase("e1", bound_to.key), _purchase("e2", other.key)], format="json")
    assert answer.status_code == 200
    assert answer.json()["stored"] == 1
    assert answer.json()["errors"] == [{
        "index": 1, "event_id": "e2",
        "error": "this token may not write traffic for experiment 'other-ab': it is bound to 'rollup-ab'",
    }]  # fmt: skip
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e1"]
    refused = shop.post(f"/api/v1/experiments/{other.key}/recommendations", {"user_id": "u1"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("this token may not write traffic for experiment 'other-ab'")


def test_a_bound_tokens_event_with_only_a_request_id_counts_only_for_its_own_experiments() -> None:
    from serving.models import ServedRequest

    bound_to, bound_arm, _ = running_experiment("rollup-ab")
    other, other_arm, _ = running_experiment("other-ab")
    requests = {}
    for experiment, arm in ((bound_to, bound_arm), (other, other_arm)):
        requests[experiment.key] = ServedRequest.objects.create(
            experiment=experiment, arm=arm, user_id="u1", exposed=True, arm_probability=0.5, k=5,
            served_at=datetime(2026, 11, 24, 8, tzinfo=UTC),
        ).request_id  # fmt: skip
    _, secret = create_token("shop-e", ["ingest"], [bound_to.key])
    shop = APIClient()
    shop.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    clicks = [{"event_id": f"c-{key}", "user_id": "u1", "type": "click", "timestamp": WHEN, "item_id": "i1",
               "request_id": str(request_id)} for key, request_id in requests.items()]  # fmt: skip

    assert shop.post("/api/v1/events", clicks, format="json").json()["stored"] == 2
    assert dict(Event.objects.values_list("event_id", "experiment_id")) == {
        "c-rollup-ab": bound_to.pk,
        "c-other-ab": None,  # stored, but not counted in an experiment the token may not write for
    }


def test_binding_a_token_to_an_unknown_experiment_is_refused() -> None:
    from serving.services.tokens import TokenError

    with pytest.raises(TokenError, match="no experiment 'nope'"):
        create_token("shop-b", ["ingest"], ["nope"])


def test_a_revoked_token_stops_working_within_the_cache_time() -> None:
    import time

    from serving.services.tokens import CACHE_SECONDS, find_token, revoke_token

    _, secret = create_token("shop-c", ["ingest"])
    assert find_token(secret) is not None  # cached in this process from now on
    revoked_at = time.monotonic()
    assert revoke_token("shop-c")
    while find_token(secret) is not None:
        assert time.monotonic() - revoked_at < CACHE_SECONDS + 1, "still accepted after the cache time"
        time.sleep(0.05)
    assert CACHE_SECONDS <= 2.0


def test_an_address_guessing_tokens_gets_429_with_retry_after_even_with_a_right_token_then() -> None:
    from serving.services.tokens import FAILURE_LIMIT

    experiment, _, _ = running_experiment()
    _, secret = create_token("shop-d", ["ingest"])
    guesser = APIClient(REMOTE_ADDR="203.0.113.7")
    for n in range(FAILURE_LIMIT):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer abp_guess{n}")
        assert guesser.post("/api/v1/events", [_purchase(f"g{n}", experiment.key)], format="json").status_code == 401
    guesser.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    refused = guesser.post("/api/v1/events", [_purchase("e1", experiment.key)], format="json")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert "Too many unknown or revoked API tokens" in refused.json()["detail"]
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.2")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert elsewhere.post("/api/v1/events", [_purchase("e2", experiment.key)], format="json").status_code == 200
