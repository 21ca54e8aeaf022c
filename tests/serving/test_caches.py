"""The serving processes' caches (cachetools): what they keep, for how long, and how many."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cachetools import LRUCache, TTLCache
from django.utils import timezone

from experiments.services.lifecycle import transition
from serving.models import ApiToken
from serving.services import serve, tokens
from tests.experiments.factories import draft_experiment, product_manager, trained_variants

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_token_revoked_elsewhere_is_honoured_until_the_cache_forgets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(tokens, "_cache", TTLCache(maxsize=tokens.CACHE_SIZE, ttl=tokens.CACHE_SECONDS, timer=clock))
    token, secret = tokens.create_token("shop", ["serve"])
    assert tokens.find_token(secret) == token
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())  # by another process

    clock.now = tokens.CACHE_SECONDS - 0.1
    assert tokens.find_token(secret) == token
    clock.now = tokens.CACHE_SECONDS
    assert tokens.find_token(secret) is None


def test_serving_sees_a_changed_experiment_after_config_ttl_and_bounds_its_sticky_users(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    clock = Clock()
    monkeypatch.setattr(serve, "_configs", TTLCache(maxsize=serve.CONFIGS_MAX, ttl=serve.CONFIG_TTL, timer=clock))
    monkeypatch.setattr(serve, "_sticky", LRUCache(maxsize=3))
    trained_variants(tmp_path)
    owner = product_manager()
    experiment = draft_experiment(owner, key="cached", design="bandit", primary_metric="ctr", traffic_percent=100)
    transition(experiment, "start", owner)
    assert serve.serve("cached", "u1", 2)["exposed"] is True

    transition(experiment, "pause", owner)
    clock.now = serve.CONFIG_TTL - 0.1
    assert serve.serve("cached", "u2", 2)["exposed"] is True  # the process still holds the running config
    clock.now = serve.CONFIG_TTL
    assert serve.serve("cached", "u3", 2)["exposed"] is False
    transition(experiment, "resume", owner)
    clock.now = 2 * serve.CONFIG_TTL
    for user in ("u4", "u5", "u6", "u7"):
        serve.serve("cached", user, 2)
    assert sorted(user for _, user in serve._sticky) == ["u5", "u6", "u7"]  # the least recently served went first
