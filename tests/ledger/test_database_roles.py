"""A database the application cannot rewrite (README). The application's role owns no table: it reads
the ledger and appends only by calling ledger_append(), which runs as the owner and checks the batch
itself. Whatever SQL the application sends, it cannot disable the append-only triggers, change or
delete what was appended, write postings or projections directly, or slip an unbalanced posting in.

Most of these need two roles (the embedded default; with only DATABASE_URL set there is one, and they
are skipped). The function's own checks hold for any caller and are tested either way."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from ledger import integrity, roles, selectors
from ledger.postings import Line, PendingOpen, PendingPost
from ledger.services import NewEvent, append
from tests import conftest
from tests.conftest import as_database_owner, database_url_for_tests

two_roles = pytest.mark.skipif(conftest.APP_ROLE is None, reason="needs DATABASE_OWNER_URL (two database roles)")
PERMISSION_DENIED = "42501"

# What the application might try, to rewrite the log or get around ledger_append().
REFUSED_TO_THE_APPLICATION = [
    "ALTER TABLE ledger_event DISABLE TRIGGER ALL",
    "ALTER TABLE ledger_posting DISABLE TRIGGER ledger_posting_no_update_delete",
    "DROP TRIGGER ledger_event_no_update_delete ON ledger_event",
    "UPDATE ledger_event SET data = '{}'::jsonb",
    "DELETE FROM ledger_event",
    "UPDATE ledger_posting SET posted_delta = 0",
    "DELETE FROM ledger_posting",
    "INSERT INTO ledger_posting (position, line_no, account_id, asset, posted_delta, pending_in_delta, "
    "pending_out_delta, posted_after, pending_in_after, pending_out_after) VALUES (1, 99, 1, 'USD', 5, 0, 0, 5, 0, 0)",
    "INSERT INTO ledger_event (position, event_id, stream_id, stream_version, event_type, schema_version, data, "
    "metadata, recorded_at, hash) VALUES (999999, gen_random_uuid(), 'x', 1, 't', 1, '{}', '{}', now(), '\\x00')",
    "TRUNCATE ledger_event",
    "TRUNCATE ledger_posting",
    "UPDATE ledger_head SET position = position + 1",
    "UPDATE ledger_balance SET posted = posted + 1",
    "INSERT INTO ledger_balance (account_id, asset, posted, pending_in, pending_out) VALUES (1, 'USD', 1, 0, 0)",
    "UPDATE ledger_pending SET state = 'pending'",
    "UPDATE ledger_stream SET version = 0",
    "UPDATE ledger_account SET non_negative = false",
    "SELECT 1 FROM ledger_pending FOR UPDATE",
    "SELECT nextval('ledger_posting_id_seq')",
    "SET session_replication_role = replica",
    "ALTER FUNCTION ledger_append(jsonb) SECURITY INVOKER",
    "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
]


@pytest.fixture
def application_login(django_db_setup, django_db_blocker):
    """A connection that logs in as the application role itself (not the harness's SET ROLE)."""
    with django_db_blocker.unblock():
        url = database_url_for_tests()
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def raw_batch(tag: str, *lines: list) -> str:
    """A batch for ledger_append as a caller that skips the Python checks would send it."""
    accounts = sorted({line[0] for line in lines})
    return json.dumps({
        "streams": [{"id": f"raw-{tag}", "expected": 0, "count": 1}],
        "accounts": [{"path": path, "non_negative": False} for path in accounts],
        "pending": [], "metadata": {},
        "events": [{"event_id": str(uuid.uuid4()), "stream": f"raw-{tag}", "ordinal": 1, "type": "test.moved",
                    "schema_version": 1, "data": {}, "body": "{}", "lines": [list(line) for line in lines]}],
    })


@two_roles
def test_the_tests_run_as_the_application_role(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        current, session = cursor.fetchone()
    assert current == conftest.APP_ROLE != session


@two_roles
@pytest.mark.parametrize("statement", REFUSED_TO_THE_APPLICATION)
def test_the_application_role_cannot_touch_the_log_or_its_guards(application_login, statement):
    assert application_login.execute("SELECT session_user").fetchone()[0] == conftest.APP_ROLE
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        application_login.execute(statement)
    assert refused.value.sqlstate == PERMISSION_DENIED


@two_roles
def test_appending_through_the_service_still_works_as_the_application_role(db, tag):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == conftest.APP_ROLE
    before = selectors.head()
    moved = append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                    postings=[Line(f"t/{tag}/a", "USD", -5), Line(f"t/{tag}/b", "USD", 5)])],
                   expected={f"s-{tag}": 0}, actor="system", idempotency_key=f"k-{tag}")
    append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                            postings=[PendingOpen(f"pf-{tag}", f"t/{tag}/m", f"t/{tag}/it", "shares:X", 50)])],
           actor="system")
    append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={}, postings=[PendingPost(f"pf-{tag}", 20)])],
           actor="system")
    assert selectors.head().position == before.position + 3
    assert moved.events[0].position == before.position + 1
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 5
    assert selectors.balance(account=f"t/{tag}/it", asset="shares:X").posted == 20
    assert integrity.verify(check_projections=False) == []


@two_roles
def test_the_application_role_may_call_ledger_append_and_it_checks_the_batch_itself(application_login):
    tag = uuid.uuid4().hex[:10]
    with application_login.transaction(force_rollback=True):
        with pytest.raises(psycopg.Error, match="do not sum to zero") as refused, application_login.transaction():
            application_login.execute("SELECT * FROM ledger_append(%s::jsonb)", [raw_batch(
                tag, [f"t/{tag}/a", "USD", "-5", "0", "0", None], [f"t/{tag}/b", "USD", "3", "0", "0", None])])
        assert refused.value.sqlstate == "LG002"
        rows = application_login.execute("SELECT * FROM ledger_append(%s::jsonb)", [raw_batch(
            tag, [f"t/{tag}/a", "USD", "-5", "0", "0", None], [f"t/{tag}/b", "USD", "5", "0", "0", None])]).fetchall()
        assert len(rows) == 1


@pytest.mark.parametrize("amounts", [
    ("0.5", "0.5", "-1"),      # sums to zero, but numeric(78,0) would store 1 + 1 - 1
    ("1.4", "-1.4", "0"),      # would be stored as 1 and -1: balanced, yet not what was sent
    ("1e2", "-100", "0"),
    ("NaN", "NaN", "0"),
    (None, "0", "0"),
])
def test_ledger_append_refuses_amounts_that_are_not_whole_numbers(db, tag, amounts):
    lines = [[f"t/{tag}/{name}", "USD", amount, "0", "0", None] for name, amount in zip("abc", amounts, strict=True)]
    head = selectors.head()
    with pytest.raises(DatabaseError, match="not a whole number") as refused, transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_append(%s::jsonb)", [raw_batch(tag, *lines)])
    assert refused.value.__cause__.sqlstate == "LG006"
    assert selectors.head() == head


def test_a_temporary_table_cannot_stand_in_for_the_ledger_head(db, tag):
    """ledger_append pins its search_path (pg_temp last): a caller's temporary ledger_head, which would
    otherwise come first, is not the one it chains from and moves."""
    real = selectors.head()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE ledger_head (id smallint PRIMARY KEY, position bigint, hash bytea)")
        cursor.execute("INSERT INTO ledger_head VALUES (1, 1000000, %s)", [b"\xff" * 32])
    recorded = append(events=[NewEvent(stream=f"s-{tag}", type="test.noted", data={"text": "t"})],
                      actor="system").events[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT position, hash FROM pg_temp.ledger_head")
        assert cursor.fetchone() == (1000000, b"\xff" * 32)
        cursor.execute("SELECT position, hash FROM public.ledger_head")
        position, chain_hash = cursor.fetchone()
        cursor.execute("DROP TABLE pg_temp.ledger_head")
    assert recorded.position == real.position + 1 == position
    assert recorded.hash == bytes(chain_hash)
    assert integrity.verify(check_projections=False) == []


@two_roles
def test_ledger_append_runs_as_the_owner_with_a_pinned_search_path(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosecdef, proconfig, pg_get_userbyid(proowner), "
                       "has_function_privilege(%s, p.oid, 'EXECUTE'), "
                       "EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
                       "FROM pg_proc p WHERE p.oid = 'public.ledger_append(jsonb)'::regprocedure",
                       [conftest.APP_ROLE])
        security_definer, config, owner, app_may_execute, public_may_execute = cursor.fetchone()
    assert security_definer
    assert config == ["search_path=pg_catalog, public, pg_temp"]
    assert owner != conftest.APP_ROLE
    assert app_may_execute and not public_may_execute


@two_roles
def test_every_ledger_table_is_read_only_to_the_application_or_named_writable(db):
    """A new ledger table gets the default privileges (read and write): this fails until it is put in
    one list or the other in ledger/roles.py."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                       "AND relkind IN ('r', 'p') AND relname LIKE 'ledger\\_%%'")
        tables = {name for (name,) in cursor.fetchall()}
        assert tables == set(roles.APPEND_ONLY_THROUGH_FUNCTION) | set(roles.APPLICATION_WRITABLE_LEDGER_TABLES)
        for table in sorted(tables):
            cursor.execute("SELECT " + ", ".join(f"has_table_privilege(%s, %s, '{p}')" for p in (
                "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")), [conftest.APP_ROLE, table] * 7)
            select, *writes = cursor.fetchone()
            assert select, table
            if table in roles.APPEND_ONLY_THROUGH_FUNCTION:
                assert not any(writes), table
            else:
                assert writes[:3] == [True, True, True], table


@two_roles
def test_other_tables_are_the_applications_to_write_and_so_are_tables_created_later(db, tag):
    tables = sorted({model._meta.db_table for model in apps.get_models() if model._meta.app_label != "ledger"})
    with connection.cursor() as cursor:
        for table in tables:
            # (One privilege per call: given a list, has_table_privilege says whether any is held.)
            cursor.execute("SELECT has_table_privilege(%(role)s, %(table)s, 'SELECT') "
                           "AND has_table_privilege(%(role)s, %(table)s, 'INSERT') "
                           "AND has_table_privilege(%(role)s, %(table)s, 'UPDATE') "
                           "AND has_table_privilege(%(role)s, %(table)s, 'DELETE') "
                           "AND pg_get_userbyid(relowner) <> %(role)s FROM pg_class WHERE oid = %(table)s::regclass",
                           {"role": conftest.APP_ROLE, "table": table})
            assert cursor.fetchone()[0], table
    # A table a later migration creates (as the owner) is the application's to write too.
    with as_database_owner(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE later_{tag} (id bigserial PRIMARY KEY, note text)")
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO later_{tag} (note) VALUES ('written by the application') RETURNING id")
        assert cursor.fetchone()[0] == 1
