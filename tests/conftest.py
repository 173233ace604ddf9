"""Test harness: real PostgreSQL (embedded unless DATABASE_URL says otherwise), real Redis, and a
real Celery worker process for tests that need one.

With two database roles (DATABASE_OWNER_URL set, as the embedded default is), the test database is
created and migrated by the owner role, as `manage.py migrate` would, and then every connection the
tests make runs as the application role (`SET ROLE`), so the code under test has the application's
privileges and no more. The harness's session user stays the owner: flushing tables between tests and
the tests that tamper with the ledger behind the application's back switch back to it
(`as_database_owner`). Processes the tests start (Celery worker, commands as run) log in as the
application role itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The role the tests run as when there are two roles (set by pytest_configure), else None.
APP_ROLE: str | None = None
# Triggers that refuse TRUNCATE (ledger/sql/immutability.sql), switched off for the harness's flush.
TRUNCATE_GUARDS = (("ledger_event", "ledger_event_no_truncate"), ("ledger_posting", "ledger_posting_no_truncate"))


def _connect_as_the_owner():
    """The test database is created and migrated on the default alias (pytest-django's way), so point
    it at the owner role for that; the "owner" alias goes, so nothing reaches the development
    database through it (code that asks for the owner's alias gets "default")."""
    global APP_ROLE
    from django.conf import settings

    owner = settings.DATABASES.pop("owner", None)
    if owner is None or settings.DATABASE_APP_ROLE is None:
        return
    APP_ROLE = settings.DATABASE_APP_ROLE
    default = settings.DATABASES["default"]
    for key in ("USER", "PASSWORD", "HOST", "PORT", "OPTIONS"):
        default[key] = owner[key]


def _set_application_role(sender, connection, **kwargs):
    from django.db import DEFAULT_DB_ALIAS

    if connection.alias == DEFAULT_DB_ALIAS:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {connection.ops.quote_name(APP_ROLE)}")


def _flush_with_triggers_off():
    """TransactionTestCase empties every table with TRUNCATE after each test, and the ledger's
    append-only triggers rightly refuse that. Let the test harness, and only it, flush with those
    triggers off, as the owner role (the application role may neither truncate nor alter tables)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if not statements:
            return statements
        return [
            *(["RESET ROLE"] if APP_ROLE else []),
            *(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}" for table, trigger in TRUNCATE_GUARDS),
            *statements,
            *(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}" for table, trigger in TRUNCATE_GUARDS),
            # The flush empties ledger_head too; put back the genesis row its migration created.
            "INSERT INTO ledger_head (id, position, hash) VALUES (1, 0, '\\x" + "00" * 32 + "'::bytea) "
            "ON CONFLICT (id) DO UPDATE SET position = 0, hash = EXCLUDED.hash",
            *([f"SET ROLE {self.quote_name(APP_ROLE)}"] if APP_ROLE else []),
        ]

    DatabaseOperations.sql_flush = sql_flush


def pytest_configure(config):
    _connect_as_the_owner()
    _flush_with_triggers_off()


@pytest.fixture(scope="session", autouse=True)
def fresh_test_chains():
    """The test database is new for each session; so are the test profile's own chains (the embedded
    anvils, reset to genesis), so the two start out agreeing and the chains' state files stay small.
    A chain at a configured RPC URL is never touched."""
    from django.conf import settings

    from config import embedded

    for chain in settings.EVM_CHAINS.values():
        embedded.anvil_reset_test_chain(chain["rpc_url"])
    for chain in getattr(settings, "SOLANA_CHAINS", {}).values():
        embedded.solana_reset_test_node(chain["rpc_url"])


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, then: every connection from here on runs as the application role."""
    if APP_ROLE is None:
        yield
        return
    from django.db import connections
    from django.db.backends.signals import connection_created

    with django_db_blocker.unblock():
        connections.close_all()
    connection_created.connect(_set_application_role, dispatch_uid="tests.application_role")
    try:
        yield
    finally:
        connection_created.disconnect(dispatch_uid="tests.application_role")
        with django_db_blocker.unblock():
            connections.close_all()


@contextlib.contextmanager
def as_database_owner(using: str = "default"):
    """Run the block as the owner role, the way an administrator could act behind the application's
    back, in one transaction (a savepoint when nested), so an error puts the application role back
    with everything else."""
    from django.db import connections, transaction

    connection = connections[using]
    with transaction.atomic(using=using):
        if APP_ROLE:
            with connection.cursor() as cursor:
                cursor.execute("RESET ROLE")
        yield
        if APP_ROLE:
            with connection.cursor() as cursor:
                cursor.execute(f"SET ROLE {connection.ops.quote_name(APP_ROLE)}")


def tamper(sql: str, params: list) -> None:
    """Change the log behind the append-only triggers' back, as only the owner can (it may disable
    them; the application role may not: tests/ledger/test_database_roles.py)."""
    from django.db import connection

    with as_database_owner(), connection.cursor() as cursor:
        for table in ("ledger_event", "ledger_posting"):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        for table in ("ledger_event", "ledger_posting"):
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def committed(transactional_db):
    """A database whose transactions really commit (for concurrency, Celery and HTTP-server tests).
    The flush after such a test empties every table, including the role groups a data migration
    created, so they are put back first."""
    from compliance.roles import sync_role_permissions

    sync_role_permissions()
    return transactional_db


def database_url_for_tests(*, owner: bool = False) -> str:
    """DATABASE_URL (or, with owner, DATABASE_OWNER_URL when there is one) with the database name
    swapped for the test database's (host, socket directory, credentials and options kept as they are)."""
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings
    from django.db import connection

    url = settings.DATABASE_OWNER_URL if owner and settings.DATABASE_OWNER_URL else settings.DATABASE_URL
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real `celery worker` process on the test database and a queue of this test session only."""
    from django.conf import settings

    from config.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    webhook_queue = f"{queue}-webhooks"
    app.conf.task_default_queue = queue
    app.conf.webhook_queue = webhook_queue  # what config.celery.route_task sends webhook deliveries to
    with django_db_blocker.unblock():
        db_url = database_url_for_tests()
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_OWNER_URL"},
        "ISSUER_ENV": "test",
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_DEFAULT_QUEUE": queue,
        "CELERY_WEBHOOK_QUEUE": webhook_queue,
        "DB_CONN_MAX_AGE": "0",
        # The webhook tests' receivers listen on loopback, which webhooks may not reach by default.
        "WEBHOOK_ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
    }
    log_path = ROOT / ".data" / f"celery-{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2",
         "--pool=prefork", f"--queues={queue},{webhook_queue}", f"--hostname={queue}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if worker.poll() is not None:
                raise RuntimeError(f"celery worker exited early; see {log_path}")
            replies = app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5)
            if replies:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not come up; see {log_path}")
        worker.log_path = log_path
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


@pytest.fixture
def operations(db):
    """A member of staff in the operations role (records funding, receipts, payouts)."""
    from compliance import roles
    from tests.compliance.factories import make_staff

    return make_staff(roles.OPERATIONS)


@pytest.fixture
def approver(db):
    """A member of staff in the approver role (the second pair of eyes)."""
    from compliance import roles
    from tests.compliance.factories import make_staff

    return make_staff(roles.APPROVER)
