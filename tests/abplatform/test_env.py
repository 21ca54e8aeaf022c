"""Settings come from typed environment readers that refuse bad values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from abplatform.env import (
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
)
from tests.support import REPO


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)]
)
def test_env_bool_reads_the_usual_spellings(raw: str, expected: bool) -> None:
    assert env_bool("FLAG", not expected, environ={"FLAG": raw}) is expected


def test_env_bool_refuses_anything_else_naming_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"FLAG='maybe' is not a boolean"):
        env_bool("FLAG", False, environ={"FLAG": "maybe"})


def test_env_bool_uses_the_default_when_unset() -> None:
    assert env_bool("FLAG", True, environ={}) is True


def test_env_int_refuses_text_and_values_out_of_range() -> None:
    with pytest.raises(ImproperlyConfigured, match="PORT='eighty' is not a whole number"):
        env_int("PORT", 80, environ={"PORT": "eighty"})
    with pytest.raises(ImproperlyConfigured, match="PORT=0 is below the minimum 1"):
        env_int("PORT", 80, minimum=1, environ={"PORT": "0"})
    assert env_int("PORT", 80, minimum=1, environ={"PORT": " 8080 "}) == 8080


def test_env_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ImproperlyConfigured, match="use one of development, production"):
        env_choice("MODE", "development", ("development", "production"), environ={"MODE": "staging"})


def test_env_str_without_default_is_required() -> None:
    with pytest.raises(ImproperlyConfigured, match="Set the environment variable SECRET"):
        env_str("SECRET", environ={})


def test_env_list_splits_on_commas_and_drops_blanks() -> None:
    assert env_list("HOSTS", environ={"HOSTS": " a.com, ,b.com "}) == ["a.com", "b.com"]


def test_env_float_reads_numbers_within_bounds() -> None:
    assert env_float("RATE", 0.0, minimum=0, maximum=1, environ={"RATE": " 0.25 "}) == 0.25
    assert env_float("RATE", 0.1, environ={}) == 0.1
    for raw, message in (("lots", "RATE='lots' is not a number"), ("1.5", r"RATE=1.5 is outside \[0, 1\]"),
                         ("nan", r"RATE=nan is outside")):  # fmt: skip
        with pytest.raises(ImproperlyConfigured, match=message):
            env_float("RATE", 0.0, minimum=0, maximum=1, environ={"RATE": raw})


def test_env_networks_reads_cidrs_and_bare_addresses_and_refuses_names() -> None:
    raw = "10.1.2.3/8, 192.0.2.7,::1"
    assert env_networks("ALLOW", environ={"ALLOW": raw}) == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]
    assert env_networks("ALLOW", ["127.0.0.0/8"], environ={}) == ["127.0.0.0/8"]
    assert env_networks("ALLOW", ["127.0.0.0/8"], environ={"ALLOW": ""}) == []  # set but empty: nobody
    with pytest.raises(ImproperlyConfigured, match="ALLOW: 'localhost' is not an IP network"):
        env_networks("ALLOW", environ={"ALLOW": "localhost"})


def test_env_database_reads_postgres_urls_and_socket_hosts() -> None:
    pg = env_database("DB", environ={"DB": "postgres://app:secret@db.internal:5433/shop"})
    assert pg is not None
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql",
        "shop",
        "app",
        "db.internal",
        5433,
    )
    socket = env_database("DB", environ={"DB": "postgres://postgres@%2Fsrv%2Fpg:5432/shop"})
    assert socket is not None
    assert (socket["HOST"], socket["NAME"]) == ("/srv/pg", "shop")


def test_env_database_is_none_when_unset_so_the_embedded_server_is_used() -> None:
    assert env_database("DB", environ={}) is None
    assert env_database("DB", environ={"DB": ""}) is None


def test_env_database_refuses_other_schemes_and_urls_without_a_name() -> None:
    with pytest.raises(ImproperlyConfigured, match="DB has the scheme 'mysql'; the platform runs on PostgreSQL only"):
        env_database("DB", environ={"DB": "mysql://root@localhost/shop"})
    with pytest.raises(ImproperlyConfigured, match="DB has the scheme 'sqlite'"):
        env_database("DB", environ={"DB": "sqlite:////tmp/x.sqlite3"})
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        env_database("DB", environ={"DB": "postgres://root@localhost"})


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ABPLATFORM_ENV"))}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "ABPLATFORM_ENV": "production",
    "DJANGO_SECRET_KEY": "p7Jw2-q9Zx_LmN4vR8tY1sK6bH3dF0gC5eA-uI2oP7wQ9zX4cV8nM1",
    "DJANGO_ALLOWED_HOSTS": "ab.example.com",
}


def test_production_settings_pass_check_deploy() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "Set the environment variable DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_debug() -> None:
    result = _manage("check", **PRODUCTION, DJANGO_DEBUG="true")
    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is refused when ABPLATFORM_ENV=production" in result.stderr


def test_a_bad_value_stops_start_up_with_the_variable_name() -> None:
    result = _manage("check", DJANGO_DEBUG="perhaps")
    assert result.returncode != 0
    assert "DJANGO_DEBUG='perhaps' is not a boolean" in result.stderr
