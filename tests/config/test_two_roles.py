"""Configuration of the two database roles (README, "A database the application cannot rewrite"):
DATABASE_URL is the application's, DATABASE_OWNER_URL (optional) the owner's, which `manage.py
migrate` uses; the embedded default sets up both; without DATABASE_OWNER_URL one role does it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import psycopg
import pytest

from tests import conftest
from tests.config.conftest import url_for
from tests.conftest import ROOT
from tests.subprocesses import command_env, describe, manage

SHOW_DATABASES = ("from django.conf import settings; import json; print(json.dumps({'aliases': sorted(settings.DATABASES), "
                  "'users': {a: d['USER'] for a, d in settings.DATABASES.items()}, 'app_role': settings.DATABASE_APP_ROLE}))")


def show_databases(env: dict[str, str]) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "DATABASE_OWNER_URL", "CELERY_BROKER_URL", "ISSUER_ENV"}}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + SHOW_DATABASES], cwd=ROOT,
                            env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_an_owner_url_one_role_does_everything():
    shown = show_databases({"ISSUER_ENV": "test", "CELERY_BROKER_URL": "redis://b.invalid/0",
                            "DATABASE_URL": "postgresql://issuer@db.invalid:5432/issuer"})
    assert shown == {"aliases": ["default"], "users": {"default": "issuer"}, "app_role": None}


def test_with_an_owner_url_migrate_has_its_own_connection_and_the_application_role_is_named():
    shown = show_databases({"ISSUER_ENV": "test", "CELERY_BROKER_URL": "redis://b.invalid/0",
                            "DATABASE_URL": "postgresql://app@db.invalid:5432/issuer",
                            "DATABASE_OWNER_URL": "postgresql://owner@db.invalid:5432/issuer"})
    assert shown == {"aliases": ["default", "owner"], "users": {"default": "app", "owner": "owner"}, "app_role": "app"}


def test_the_embedded_default_sets_up_an_owner_and_an_application_role():
    from config import embedded

    shown = show_databases({"ISSUER_ENV": "development"})
    assert shown == {"aliases": ["default", "owner"],
                     "users": {"default": embedded.APP_ROLE, "owner": embedded.OWNER_ROLE}, "app_role": embedded.APP_ROLE}
    app_url, owner_url = embedded.postgres_urls()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        roles = dict(conn.execute("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(%s)",
                                  [[embedded.OWNER_ROLE, embedded.APP_ROLE]]).fetchall())
        database_owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                                      ).fetchone()[0]
    assert roles == {embedded.OWNER_ROLE: False, embedded.APP_ROLE: False}  # neither is a superuser
    assert database_owner == embedded.OWNER_ROLE
    assert urlsplit(app_url).username == embedded.APP_ROLE


# Appends one event of a type of its own (so it does not follow the project's event schemas) and prints
# the head's position.
APPEND_AND_SHOW_HEAD = """
from ledger import selectors
from ledger.events import EventData, event_type
from ledger.services import NewEvent, append

class Noted(EventData):
    text: str

event_type("ops.noted", version=1)(Noted)
append(events=[NewEvent(stream="ops-1", type="ops.noted", data={"text": "appended"})], actor="system")
print(selectors.head().position)
"""


@pytest.mark.skipif(conftest.APP_ROLE is None, reason="needs DATABASE_OWNER_URL (two database roles)")
def test_one_role_deployments_still_migrate_and_append(scratch_database):
    """DATABASE_URL alone (here the owner's): migrate, append and verify as before; nothing is granted."""
    database = urlsplit(scratch_database).path.lstrip("/")
    one_role = command_env(DATABASE_URL=url_for(database, owner=True))
    one_role.pop("DATABASE_OWNER_URL", None)
    migrated = manage("migrate", "--no-input", "ledger", env=one_role, timeout_s=300)  # the ledger is enough here
    assert migrated.returncode == 0, describe(migrated)
    assert "Granted the application role" not in migrated.stdout
    appended = manage("shell", "-c", APPEND_AND_SHOW_HEAD, env=one_role)
    assert appended.returncode == 0 and appended.stdout.strip().endswith("1"), describe(appended)
    verified = manage("ledger", "verify", "--skip-projections", env=one_role)
    assert verified.returncode == 0, describe(verified)
    with psycopg.connect(scratch_database) as conn:  # the application role was given nothing here
        assert not conn.execute("SELECT has_table_privilege(%s, 'ledger_event', 'SELECT') "
                                "OR has_function_privilege(%s, 'ledger_append(jsonb)', 'EXECUTE')",
                                [conftest.APP_ROLE, conftest.APP_ROLE]).fetchone()[0]


@pytest.mark.skipif(conftest.APP_ROLE is None, reason="needs DATABASE_OWNER_URL (two database roles)")
def test_migrate_runs_as_the_owner_and_grants_the_application_role(scratch_database):
    database = urlsplit(scratch_database).path.lstrip("/")
    two_roles = command_env(DATABASE_URL=scratch_database, DATABASE_OWNER_URL=url_for(database, owner=True))
    migrated = manage("migrate", "--no-input", env=two_roles, timeout_s=300)
    assert migrated.returncode == 0, describe(migrated)
    assert f"Granted the application role {conftest.APP_ROLE} its privileges." in migrated.stdout
    # The application's own connection (DATABASE_URL only, as web and workers have it) appends.
    application = command_env(DATABASE_URL=scratch_database)
    application.pop("DATABASE_OWNER_URL", None)
    appended = manage("shell", "-c", APPEND_AND_SHOW_HEAD, env=application)
    assert appended.returncode == 0 and appended.stdout.strip().endswith("1"), describe(appended)
    with psycopg.connect(scratch_database) as conn:
        owner, app_user = conn.execute("SELECT pg_get_userbyid(relowner), current_user FROM pg_class "
                                       "WHERE oid = 'ledger_event'::regclass").fetchone()
    assert app_user == conftest.APP_ROLE != owner
    # Migrating as the application role, which owns nothing, fails: that is why migrate has its own URL.
    as_application = manage("migrate", "--no-input", "--database", "default", "ledger", "0004", env=two_roles)
    assert as_application.returncode != 0
