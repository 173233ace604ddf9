"""Two database roles: the owner, which migrates, and the application, which cannot rewrite the ledger.

The owner (DATABASE_OWNER_URL, the "owner" alias) owns every table and the ledger's functions. The
application (DATABASE_URL, the "default" alias: web, workers, every command but migrate) owns
nothing, so it can neither drop nor disable the append-only triggers (ALTER TABLE needs ownership),
and it has no INSERT, UPDATE, DELETE or TRUNCATE on the tables below: it reads them, and it writes
them only by calling ledger_append(), a SECURITY DEFINER function that runs as the owner, checks
every batch (stream versions, whole amounts, postings that sum to zero, pending transfers, balance
limits) and pins its search_path so a temporary table cannot stand in for a ledger table.

Why each table is closed to the application, and not only the log itself:
  ledger_event, ledger_posting  the log: what was appended stays as it was.
  ledger_head                   the chain head: the next append chains from it.
  ledger_balance                balances are the limits: a raised balance could be spent (a
                                non-negative account taken below zero by the log's own arithmetic).
  ledger_pending                a resolved transfer reopened could be posted twice.
  ledger_stream                 stream versions are the optimistic-concurrency check.
  ledger_account                the non-negative flag decides which balances may go below zero.
The application writes no table of the ledger directly (requests are deduplicated by the API's own
idempotency records, compliance.idempotency, which are ordinary application tables).

`grant_application_role` runs after every `manage.py migrate` (ledger/management/commands/migrate.py),
so tables a later migration creates are granted, and it is idempotent. Default privileges grant
them as well when the owner creates them some other way.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connections, transaction
from psycopg import sql

OWNER_ALIAS = "owner"

# The application reads these and writes them only through ledger_append() (see above).
APPEND_ONLY_THROUGH_FUNCTION = (
    "ledger_event", "ledger_posting", "ledger_head", "ledger_balance", "ledger_pending", "ledger_stream",
    "ledger_account", "ledger_journal",
)
# Tables of the ledger the application writes directly (see above).
APPLICATION_WRITABLE_LEDGER_TABLES: tuple[str, ...] = ()
APPLICATION_FUNCTIONS = ("ledger_append(jsonb)", "ledger_seal(uuid[])", "ledger_seal_waiting()",
                         "ledger_seal_after_holder()")


def owner_database() -> str:
    """The alias that connects as the owner: "owner" when DATABASE_OWNER_URL is set, else "default"."""
    return OWNER_ALIAS if OWNER_ALIAS in settings.DATABASES else "default"


def application_role() -> str | None:
    """The role the owner grants to; None when one role does both jobs."""
    return settings.DATABASE_APP_ROLE


def grant_application_role(*, using: str, role: str) -> None:
    """As the owner: DML on every table but the ledger's, read-only on the ledger, EXECUTE on its
    append function, and the same for tables created later (default privileges). Idempotent; what a
    partial migration has not created yet is skipped."""
    app = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(app),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(app),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}")
        .format(app),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}")
        .format(app),
    ]
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                       "AND relkind IN ('r', 'p') AND relname = ANY(%s) ORDER BY relname",
                       [list(APPEND_ONLY_THROUGH_FUNCTION)])
        tables = [name for (name,) in cursor.fetchall()]
        # Their sequences too: nothing but ledger_append() draws ids for these tables (reading one, as
        # pg_dump does, stays allowed).
        cursor.execute(
            "SELECT s.oid::regclass::text FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass "
            "AND d.objid = s.oid AND d.deptype IN ('a', 'i') JOIN pg_class t ON t.oid = d.refobjid "
            "WHERE s.relkind = 'S' AND t.relnamespace = 'public'::regnamespace AND t.relname = ANY(%s) "
            "ORDER BY 1", [tables])
        sequences = [name for (name,) in cursor.fetchall()]
        functions = []
        for function in APPLICATION_FUNCTIONS:
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"public.{function}"])
            if cursor.fetchone()[0]:
                functions.append(function)
        if tables:
            listed = sql.SQL(", ").join(sql.Identifier(name) for name in tables)
            statements += [sql.SQL("REVOKE ALL ON {} FROM {}").format(listed, app),
                           sql.SQL("GRANT SELECT ON {} TO {}").format(listed, app)]
        for name in sequences:
            statements += [sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(sql.SQL(name), app),
                           sql.SQL("GRANT SELECT ON SEQUENCE {} TO {}").format(sql.SQL(name), app)]
        statements += [sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(name), app) for name in functions]
        for statement in statements:
            cursor.execute(statement.as_string(connection.connection))
