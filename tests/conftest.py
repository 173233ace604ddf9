"""Test harness: real PostgreSQL (embedded unless DATABASE_URL says otherwise), real Redis, and a
real Celery worker process for tests that need one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _flush_with_triggers_off():
    """TransactionTestCase empties every table with TRUNCATE after each test, and the ledger's
    append-only triggers rightly refuse that. Let the test harness, and only it, flush with
    triggers off (session_replication_role needs a superuser, which test databases have)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if not statements:
            return statements
        return [
            "SET session_replication_role = replica",
            *statements,
            "SET session_replication_role = DEFAULT",
            # The flush empties ledger_head too; put back the genesis row its migration created.
            "INSERT INTO ledger_head (id, position, hash) VALUES (1, 0, '\\x" + "00" * 32 + "'::bytea) "
            "ON CONFLICT (id) DO UPDATE SET position = 0, hash = EXCLUDED.hash",
        ]

    DatabaseOperations.sql_flush = sql_flush


def pytest_configure(config):
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


@pytest.fixture
def committed(transactional_db):
    """A database whose transactions really commit (for concurrency, Celery and HTTP-server tests).
    The flush after such a test empties every table, including the role groups a data migration
    created, so they are put back first."""
    from compliance.roles import sync_role_permissions

    sync_role_permissions()
    return transactional_db


def database_url_for_tests() -> str:
    """DATABASE_URL with the database name swapped for the test database's (host, socket directory,
    credentials and options kept as they are)."""
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings
    from django.db import connection

    parts = urlsplit(settings.DATABASE_URL)
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
        **os.environ,
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
