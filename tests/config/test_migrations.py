"""Migrations are history: each installs the same SQL on a fresh database today as it did on the
databases it upgraded when it shipped, so a fresh database and an upgraded one end the same.

That holds only if a migration carries its SQL as text written in a migration, never read from a file or
imported from a live module that later changes (ledger/sql/ holds the current text, for reading; a
change there goes into a new migration with a copy of the new text)."""

from __future__ import annotations

import ast
import hashlib
import re
from importlib import import_module
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from django.db import migrations
from django.db.migrations.loader import MigrationLoader

from tests.config.conftest import url_for
from tests.conftest import ROOT, database_url_for_tests
from tests.subprocesses import command_env, describe, manage

OUR_APPS = ("ledger", "compliance", "custody", "chains", "mint_redeem")

# sha256 of each function's body as PostgreSQL stores it (pg_proc.prosrc) right after the migration that
# installed it. A shipped migration never changes what it installs: if one of these fails, the SQL of a
# migration that has already run somewhere was edited. Put the change in a new migration instead.
INSTALLED_BODY_SHA256 = {
    ("ledger", "0002_append_function_and_triggers"): {
        "ledger_append": "109f2feb0414ec7887c7e00f1e06eaa698d8e97c73e9c2e7007f481fc7e4e18e",
        "ledger_refuse_change": "036b7e8d2a0290c2b65084b59e98f637b08d0c0f9ac74c41874db7d8292a3aab",
    },
    ("ledger", "0003_append_single_upsert"): {
        "ledger_append": "a30acf61618af3eab80ac5454e042f985c360686bd1c56f55ef39e84e5af8da9",
        "ledger_refuse_change": "036b7e8d2a0290c2b65084b59e98f637b08d0c0f9ac74c41874db7d8292a3aab",
    },
    ("ledger", "0005_append_as_owner"): {
        "ledger_append": "e11b482bc84b829b33819418c0088c2de9625b9987b42b371c46ab21945f3d69",
        "ledger_refuse_change": "036b7e8d2a0290c2b65084b59e98f637b08d0c0f9ac74c41874db7d8292a3aab",
    },
}

CATALOG_QUERIES = {
    "functions": "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p "
                 "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')",
    "triggers": "SELECT t.tgrelid::regclass::text || ' ' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND NOT t.tgisinternal",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": "SELECT c.conrelid::regclass::text || ' ' || c.conname, pg_get_constraintdef(c.oid) "
                   "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'",
    # Who may do what (the application role's grants, ledger/roles.py), on tables, sequences and functions.
    # (ACL entries sorted: their order records the order of the grants, not what they allow.)
    "privileges": "SELECT c.relkind::text || ' ' || c.oid::regclass::text, "
                  "(SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a) FROM pg_class c "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                  "AND c.relkind IN ('r', 'p', 'S', 'v', 'm') "
                  "UNION ALL SELECT 'f ' || p.oid::regprocedure::text, "
                  "(SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a) FROM pg_proc p "
                  "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
}


def our_migrations() -> dict[tuple[str, str], migrations.Migration]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {key: migration for key, migration in loader.disk_migrations.items() if key[0] in OUR_APPS}


def _statements(sql) -> list[str]:
    if sql == migrations.RunSQL.noop:
        return []
    if isinstance(sql, str):
        return [sql]
    return [item if isinstance(item, str) else item[0] for item in sql]  # a list of str or (sql, params)


def _string_literals(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_every_sql_a_migration_runs_is_written_out_in_a_migration():
    found = our_migrations()
    written = set().union(*(_string_literals(Path(import_module(m.__module__).__file__)) for m in found.values()))
    runs_sql = 0
    for (app, name), migration in sorted(found.items()):
        for operation in migration.operations:
            if not isinstance(operation, migrations.RunSQL):
                continue
            runs_sql += 1
            for statement in _statements(operation.sql) + _statements(operation.reverse_sql):
                assert statement in written, (
                    f"{app}.{name} runs SQL that is not written out in a migration (read from a file, imported "
                    f"from a module or built at import time): {statement[:120]!r}")
    assert runs_sql >= 6  # the check sees the ledger's SQL migrations


def test_the_sql_in_ledger_sql_is_what_the_latest_migration_installs():
    """ledger/sql/*.sql is the current text, for reading; it must not drift from the migrations."""
    latest: dict[str, str] = {}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for key in loader.graph.forwards_plan(loader.graph.leaf_nodes("ledger")[0]):
        if key[0] != "ledger":
            continue
        for operation in loader.disk_migrations[key].operations:
            if isinstance(operation, migrations.RunSQL):
                for statement in _statements(operation.sql):
                    for function in re.findall(r"CREATE OR REPLACE FUNCTION (\w+)", statement):
                        latest[function] = statement
    for path in sorted((ROOT / "ledger" / "sql").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        for function in re.findall(r"CREATE OR REPLACE FUNCTION (\w+)", text):
            assert latest.get(function) == text, (
                f"{path.relative_to(ROOT)} differs from the SQL the latest migration installs for {function}: "
                "write a new migration carrying the new text")


def test_each_function_ledger_sql_creates_once_is_the_text_a_migration_installs():
    """The sealing functions are created once (CREATE FUNCTION, several to a file), not replaced: each one
    in ledger/sql/ must appear, to the character, in the SQL a ledger migration runs."""
    migrated = "\n".join(statement for key, migration in our_migrations().items() if key[0] == "ledger"
                          for operation in migration.operations if isinstance(operation, migrations.RunSQL)
                          for statement in _statements(operation.sql))
    checked = 0
    for path in sorted((ROOT / "ledger" / "sql").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        for definition in re.findall(r"^CREATE FUNCTION .*?^\$fn\$;$", text, flags=re.S | re.M):
            checked += 1
            assert definition in migrated, (
                f"{path.relative_to(ROOT)}: {definition.splitlines()[0]!r} differs from what the ledger's "
                "migrations install: write a new migration carrying the new text")
    assert checked >= 4  # ledger_journal_guard, ledger_seal_locked, ledger_seal, ledger_seal_waiting


# --- a real database, migrated as a user would ---------------------------------------------------

def catalog(url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(url) as conn:
        return {name: dict(conn.execute(query).fetchall()) for name, query in CATALOG_QUERIES.items()}


def function_bodies_sha256(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                            "WHERE n.nspname = 'public' AND p.prokind = 'f'").fetchall()
    return {name: hashlib.sha256(body.encode()).hexdigest() for name, body in rows}


def migrate(url: str, *target: str) -> None:
    """`manage.py migrate` with DATABASE_URL = url (the application role's) and, when there are two
    roles, DATABASE_OWNER_URL = the owner's URL for the same database, as a deployment runs it."""
    from django.conf import settings

    database = urlsplit(url).path.lstrip("/")
    owner = {"DATABASE_OWNER_URL": url_for(database, owner=True)} if settings.DATABASE_OWNER_URL else {}
    result = manage("migrate", "--no-input", *target, env=command_env(DATABASE_URL=url, **owner), timeout_s=300)
    assert result.returncode == 0, describe(result)


def test_fresh_upgraded_and_downgraded_databases_hold_the_same_functions_and_triggers(scratch_database):
    test_database = catalog(database_url_for_tests())
    assert "ledger_append(jsonb)" in test_database["functions"]

    # Step by step from zero: each SQL migration installs the text it shipped with.
    for app, name in INSTALLED_BODY_SHA256:
        migrate(scratch_database, app, name)
        installed = function_bodies_sha256(scratch_database)
        for function, expected in INSTALLED_BODY_SHA256[(app, name)].items():
            assert installed.get(function) == expected, f"after {app}.{name}: {function} is not what it shipped"

    # On to the head: the same functions, triggers, indexes and constraints as pytest's test database.
    migrate(scratch_database)
    assert catalog(scratch_database) == test_database

    # Down to 0002 and back: a database migrated down holds what a fresh one migrated that far holds.
    first = next(iter(INSTALLED_BODY_SHA256))
    migrate(scratch_database, *first)
    at_0002 = function_bodies_sha256(scratch_database)
    for function, expected in INSTALLED_BODY_SHA256[first].items():
        assert at_0002.get(function) == expected, f"migrated down to {first[1]}: {function} is not what it shipped"
    migrate(scratch_database)
    assert catalog(scratch_database) == test_database
