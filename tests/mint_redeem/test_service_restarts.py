"""Reliability: PostgreSQL and then Redis stopped and started again (the embedded servers themselves, for real)
in the middle of a run of mints and redemptions driven through the API (gunicorn, signed requests, a client
that retries with its Idempotency-Key) and executed on anvil by a real Celery worker.

While PostgreSQL is down the API answers a retryable 503 in its JSON envelope, never a 500; while Redis is
down requests still succeed (the work they queue is picked up by the sweeps). Once both are back: every
request ends in its right state (minted, burned), nothing is lost and nothing duplicated (one mint per
Idempotency-Key, each reference on chain exactly once, chain supply equal to the ledger), and the ledger
verifies and rebuilds identically, checked by the auditor's commands in fresh processes.

Sizes come from the environment (RESTART_MINTS, RESTART_REDEMPTIONS) so a longer run can be asked for."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests
from django.db import connections

from chains.evm import evm_chain, ref_bytes
from config import embedded
from ledger import selectors
from mint_redeem import services
from mint_redeem.models import MintRequest, Redemption
from tests.api_server import SignedHttp
from tests.conftest import database_url_for_tests
from tests.mint_redeem.test_api_crashes import servers  # noqa: F401 - the API-server fixture
from tests.mint_redeem.test_chain_chaos import SWEEPS, killable_worker  # noqa: F401 - the worker fixture
from tests.subprocesses import assert_ledger_verifies

from .conftest import holder_of

pytestmark = [pytest.mark.celery, pytest.mark.reliability]

MINTS = int(os.environ.get("RESTART_MINTS", "6"))
REDEMPTIONS = int(os.environ.get("RESTART_REDEMPTIONS", "2"))
DEADLINE_S = float(os.environ.get("RESTART_DEADLINE_S", "180"))

embedded_only = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL")),
    reason="restarts the embedded PostgreSQL and Redis; DATABASE_URL / CELERY_BROKER_URL point elsewhere")


class Client:
    """A market maker's client: each request retried with the same Idempotency-Key until it gets an answer
    that is not retryable (a 503 says "send it again"), as the API's error envelope tells it to."""

    def __init__(self, http: SignedHttp, deadline: float):
        self.http, self.deadline, self.refusals = http, deadline, []

    def post(self, path: str, payload: dict, *, key: str) -> dict:
        while True:
            assert time.monotonic() < self.deadline, f"{path} {key}: no answer in time"
            try:
                response = self.http.post(path, payload, key=key, timeout_s=30)
            except requests.ConnectionError:
                time.sleep(0.5)
                continue
            if response.status_code in (200, 201):
                return response.json()
            body = response.json()
            assert response.status_code == 503 and body["error"]["retryable"] is True, response.text
            self.refusals.append(body["error"]["code"])
            time.sleep(0.5)


def restart_postgresql(client: Client, payload: dict) -> None:
    """Stop the server (fast: every session's transaction rolled back, as in a crash or a failover), prove
    the API refuses cleanly while it is down, and start it again on the same data."""
    try:  # the stop too: whatever fails, the server is started again for the tests after this one
        embedded.stop_postgres()
        assert embedded._postmaster_info() is None
        refused = client.http.post("/api/v1/mints", payload, key="while-postgresql-is-down", timeout_s=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == {**refused.json()["error"], "code": "database_unavailable",
                                           "retryable": True}
        assert "Traceback" not in refused.text
    finally:
        embedded.postgres_urls()  # starts it again, at the same socket
        connections.close_all()  # this process's connections died with the old server


def restart_redis(client: Client, payload: dict, *, key: str, then=None) -> dict:
    """Stop Redis (SIGTERM: it saves its data set, queued messages included, as it stops), send a request
    while it is down and, if asked, `then(answer)` (both succeed: the work they queue waits for the sweeps),
    and start it again."""
    embedded.stop_redis()
    try:
        assert not embedded._redis_ping()
        answered = client.http.post(payload.pop("path"), payload, key=key, timeout_s=60)
        assert answered.status_code == 201, answered.text
        if then is not None:
            then(answered.json())
    finally:
        embedded.redis_url()  # starts it again, at the same socket
    return answered.json()


@embedded_only
@pytest.mark.timeout(DEADLINE_S + 180)
def test_mints_and_redemptions_survive_restarts_of_postgresql_and_redis(killable_worker, evm_market, mm,  # noqa: F811
                                                                        operations, servers):  # noqa: F811
    from config.celery import app

    evm = evm_chain("ethereum")
    token, wallet = evm_market.token, mm.wallets["ethereum"]
    client = Client(SignedHttp(mm.credentials, servers(database_url_for_tests()).url), time.monotonic() + DEADLINE_S)
    stop = threading.Event()

    supervised_restarts = []

    def beat() -> None:  # the beat's sweeps, sent while the broker is up (a real beat retries the same way)
        while not stop.wait(1.0):
            # What the process supervisor does in production (systemd's Restart=always): kombu 5.7 can end
            # the worker with "Unrecoverable error" when Redis goes away while it closes a channel
            # (AttributeError in the Redis transport's _connparams); the worker is started again.
            if killable_worker.process.poll() is not None:
                supervised_restarts.append(killable_worker.process.returncode)
                killable_worker.start()
            for name in SWEEPS:
                try:
                    app.send_task(name)
                except Exception:  # noqa: BLE001 - the broker is down: the next tick sends it again
                    break

    sweeper = threading.Thread(target=beat, daemon=True)
    sweeper.start()
    payload = {"product": "AAPLx", "chain": "ethereum", "quantity": "1", "wallet": wallet.pk, "funding": "in_kind"}
    try:
        mints: list[int] = []
        for n in range(MINTS):
            if n == MINTS // 3:
                restart_postgresql(client, payload)
            def receive(body: dict, n: int = n) -> None:
                # Operations record the custodian's confirmation; the worker mints on chain from there.
                services.mint_shares_receive(mint=MintRequest.objects.get(pk=body["id"]),
                                             custodian_confirmation=f"RESTART-{n}", user=operations)

            if n == 2 * MINTS // 3:  # asked for, and its shares recorded, while Redis is down
                body = restart_redis(client, {**payload, "path": "/api/v1/mints"}, key=f"restart-mint-{n}",
                                     then=receive)
            else:
                body = client.post("/api/v1/mints", payload, key=f"restart-mint-{n}")
                receive(body)
            mints.append(body["id"])

        holder = holder_of(mm)
        redemptions: list[int] = []
        while len(redemptions) < REDEMPTIONS:
            assert time.monotonic() < client.deadline, f"too few tokens minted; see {killable_worker.log_path}"
            if evm.balance_of(token, wallet.address) < 10**18:
                time.sleep(0.5)
                continue
            redemption = {"product": "AAPLx", "chain": "ethereum", "quantity": "1", "wallet": wallet.pk,
                          "payout": "in_kind"}
            key = f"restart-redemption-{len(redemptions)}"
            if redemptions:
                body = client.post("/api/v1/redemptions", redemption, key=key)
            else:  # the first one asked for while Redis is down
                body = restart_redis(client, {**redemption, "path": "/api/v1/redemptions"}, key=key)
            signed = evm.sign_call(signer=holder, token=token, function="redeem",
                                   args=[10**18, ref_bytes(f"redemption-{body['id']}")],
                                   nonce=evm.pending_nonce(holder.address))
            evm.send_raw(signed)
            assert evm.wait_for_receipt(signed.tx_hash).succeeded
            redemptions.append(body["id"])

        while True:
            minted = MintRequest.objects.filter(pk__in=mints, state="minted").count()
            burned = Redemption.objects.filter(pk__in=redemptions, state="burned").count()
            if (minted, burned) == (MINTS, REDEMPTIONS):
                break
            assert time.monotonic() < client.deadline, (
                f"{minted}/{MINTS} minted, {burned}/{REDEMPTIONS} burned (worker restarted by the supervisor "
                f"{len(supervised_restarts)} times); see {killable_worker.log_path}")
            time.sleep(0.5)
    finally:
        stop.set()
        sweeper.join(timeout=15)

    # Nothing duplicated: one mint per key (the refused one while PostgreSQL was down left nothing), each
    # reference on chain exactly once, and the chain's supply is the ledger's.
    assert MintRequest.objects.filter(participant=mm.participant).count() == MINTS
    assert Redemption.objects.filter(participant=mm.participant).count() == REDEMPTIONS
    contract = evm.token(token)
    assert sorted(log["args"]["ref"] for log in contract.events.Minted.get_logs(from_block=0)) == sorted(
        ref_bytes(f"mint-{pk}") for pk in mints)
    assert sorted(log["args"]["ref"] for log in contract.events.BurnedFromVault.get_logs(from_block=0)) == sorted(
        ref_bytes(f"redemption-{pk}") for pk in redemptions)
    outstanding = selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum")
    assert evm.total_supply(token) == outstanding.posted == (MINTS - REDEMPTIONS) * 10**18
    assert outstanding.pending_in == 0
    assert_ledger_verifies()

