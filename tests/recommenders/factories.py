"""Small real data sets in the database, and users with roles, for the app-level tests."""

from __future__ import annotations

import gzip
from pathlib import Path

from django.contrib.auth.models import Group, User

from recommenders.importers.online_retail import parse_online_retail
from recommenders.models import Dataset
from recommenders.services.datasets import save_dataset
from tests.support import ONLINE_RETAIL


def retail_sample(
    tmp_path: Path, rows: int = 3000, name: str = "retail-sample", holdout_fraction: float | None = None
) -> Dataset:
    """The first `rows` lines of the bundled Online Retail file, imported as a data set
    (with `holdout_fraction`, the last part of its time span is held out for simulation)."""
    sample = tmp_path / "online_retail_sample.csv"
    with gzip.open(ONLINE_RETAIL, "rt", encoding="utf-8", newline="") as source:
        sample.write_text("".join(next(source) for _ in range(rows + 1)), encoding="utf-8")
    return save_dataset(parse_online_retail(sample), name, holdout_fraction=holdout_fraction)


def user_with_role(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, password="pw-for-tests")
    if role:
        if not Group.objects.filter(name=role).exists():
            # A transactional test before this one flushed the tables, and with them the
            # groups that the data migration made; make them again the same way.
            from django.apps import apps

            from accounts.roles import sync_roles

            sync_roles(apps)
        user.groups.add(Group.objects.get(name=role))
    return user
