"""Which answers an Idempotency-Key keeps, and what a duplicate sent while the first is running gets, on
real PostgreSQL over real HTTP. A request is held mid-transaction by a row lock the test takes on the
participant (the compliance gate locks that row), so every interleaving below happens every time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import idempotency
from compliance.models import IdempotencyRecord, NotionalUsage, Participant, Wallet
from custody.models import TokenProduct
from ledger.models import Event
from mint_redeem.models import MintRequest
from tests.api_server import RowLock, SignedHttp, blocked_backends, wait_until
from tests.conftest import database_url_for_tests

MINTS = "/api/v1/mints"


def mint_payload(mm, **overrides) -> dict:
    return {"product": "AAPLx", "chain": "ethereum", "quantity": "2", "wallet": mm.wallets["ethereum"].pk,
            "funding": "cash", **overrides}


def assert_one_mint(mm, body: dict) -> None:
    assert MintRequest.objects.filter(participant=mm.participant).count() == 1
    assert Event.objects.filter(stream_id=f"mint-{body['id']}").count() == 2  # requested, accepted
    assert NotionalUsage.objects.filter(participant=mm.participant).count() == 1


@pytest.fixture
def http(committed, live_server, market, mm):
    return SignedHttp(mm.credentials, live_server.url)


class Held:
    """The first of two requests with one key, held on the participant row; the second queued behind it."""

    def __init__(self, http, mm, key: str):
        self.database_url = database_url_for_tests()
        self.lock = RowLock(self.database_url, "compliance_participant", mm.participant.pk)
        self.first = http.post_in_background(MINTS, mint_payload(mm), key=key)
        [self.first_backend] = wait_until(self.lock.waiters, timeout_s=30,
                                          what="the first request to wait on the participant row")

    def queue_duplicate(self, http, mm, key: str) -> dict:
        second = http.post_in_background(MINTS, mint_payload(mm), key=key)
        # The duplicate waits on the first request's hold on the key, not on the participant row.
        wait_until(lambda: any(self.first_backend in blockers for _pid, blockers, _event
                               in blocked_backends(self.database_url)),
                   timeout_s=30, what="the duplicate to wait for the first request")
        return second


def finished(outcome: dict):
    outcome["thread"].join(timeout=60)
    assert "response" in outcome, outcome.get("error")
    return outcome["response"]


def test_a_concurrent_duplicate_waits_and_receives_the_first_answer(http, mm):
    held = Held(http, mm, "dup-1")
    try:
        second = held.queue_duplicate(http, mm, "dup-1")
    finally:
        held.lock.release()
    first, second = finished(held.first), finished(second)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert_one_mint(mm, first.json())


def test_a_refusal_of_the_moment_is_not_kept_and_frees_the_key_for_a_waiting_duplicate(http, mm):
    """The first request is refused because of the moment (the participant's KYC lapses while it waits):
    its claim is rolled back, the duplicate behind it runs the request itself (no 500, no stale answer),
    and once KYC is renewed the same key mints."""
    held = Held(http, mm, "moment-1")
    try:
        second = held.queue_duplicate(http, mm, "moment-1")
        held.lock.conn.execute("UPDATE compliance_participant SET kyc_expires_on = %s WHERE id = %s",
                               [timezone.localdate() - timedelta(days=1), mm.participant.pk])
    finally:
        held.lock.release(commit=True)
    for response in (finished(held.first), finished(second)):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "kyc_expired"
        assert response.json()["error"]["retryable"] is True
        assert "Idempotent-Replayed" not in response.headers
    assert not IdempotencyRecord.objects.filter(key="moment-1").exists()

    Participant.objects.filter(pk=mm.participant.pk).update(kyc_expires_on=timezone.localdate() + timedelta(days=30))
    retried = http.post(MINTS, mint_payload(mm), key="moment-1")
    assert retried.status_code == 201, retried.text
    assert_one_mint(mm, retried.json())


def test_a_duplicate_waits_a_bounded_time_then_is_told_to_come_back(http, mm, monkeypatch):
    monkeypatch.setattr(idempotency, "IDEMPOTENCY_WAIT", timedelta(seconds=1))
    held = Held(http, mm, "slow-1")
    try:
        impatient = http.post(MINTS, mint_payload(mm), key="slow-1")
    finally:
        held.lock.release()
    assert impatient.status_code == 409, impatient.text
    assert impatient.json()["error"]["code"] == "idempotency_request_in_flight"
    assert impatient.json()["error"]["retryable"] is True
    first = finished(held.first)
    assert first.status_code == 201, first.text
    replayed = http.post(MINTS, mint_payload(mm), key="slow-1")
    assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()
    assert_one_mint(mm, first.json())


# ------------------------------------------------------------------- which answers are kept


def pause_product(mm):
    TokenProduct.objects.filter(symbol="AAPLx").update(status=TokenProduct.Status.PAUSED)
    return lambda: TokenProduct.objects.filter(symbol="AAPLx").update(status=TokenProduct.Status.ACTIVE)


def exhaust_daily_cap(mm):
    Participant.objects.filter(pk=mm.participant.pk).update(daily_limit_cents=100_00)
    return lambda: Participant.objects.filter(pk=mm.participant.pk).update(daily_limit_cents=5_000_000_00)


def freeze_wallet(mm):
    Wallet.objects.filter(pk=mm.wallets["ethereum"].pk).update(frozen=True)
    return lambda: Wallet.objects.filter(pk=mm.wallets["ethereum"].pk).update(frozen=False)


@pytest.mark.parametrize(("refuse", "status", "code"), [
    (pause_product, 409, "minting_paused"),
    (exhaust_daily_cap, 422, "above_daily_limit"),
    (freeze_wallet, 403, "wallet_frozen"),
])
def test_a_refusal_that_depends_on_the_moment_is_not_replayed(market, mm, api, refuse, status, code):
    undo = refuse(mm)
    refused = api.post(MINTS, mint_payload(mm), idempotency_key="later-1")
    assert refused.status_code == status, refused.content
    assert refused.json()["error"]["code"] == code
    assert refused.json()["error"]["retryable"] is True
    again = api.post(MINTS, mint_payload(mm), idempotency_key="later-1")
    assert again.status_code == status and "Idempotent-Replayed" not in again
    undo()
    passed = api.post(MINTS, mint_payload(mm), idempotency_key="later-1")
    assert passed.status_code == 201, passed.content
    assert_one_mint(mm, passed.json())


@pytest.mark.parametrize(("payload", "code"), [
    ({"quantity": "0.0000000001"}, "invalid_quantity"),
    ({"funding": "barter"}, "invalid"),
    ({"wallet": "mine"}, "invalid"),
])
def test_a_refusal_of_the_body_itself_is_final_and_replayed(market, mm, api, payload, code):
    refused = api.post(MINTS, mint_payload(mm, **payload), idempotency_key="bad-1")
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["code"] == code
    assert refused.json()["error"]["retryable"] is False
    again = api.post(MINTS, mint_payload(mm, **payload), idempotency_key="bad-1")
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.json() == refused.json()
    assert not MintRequest.objects.exists()


def test_the_ledger_append_is_the_last_statement_of_a_request(market, mm, api, settings):
    """The append holds the ledger's global lock to the commit, so everything else the request writes or
    reads (the request row, the cap, webhook rows, the stored response) comes before it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from .test_gates_and_refusals import post_mint

    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]  # nothing is sent: the test never commits
    registered = api.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/issuer-hooks"})
    assert registered.status_code == 201, registered.content  # so the requests write webhook rows too
    for payload in (None, {"reason": "changed my mind"}):
        with CaptureQueriesContext(connection) as captured:
            if payload is None:
                response = post_mint(api, mm)
                mint_id = response.json()["id"]
            else:
                response = api.post(f"/api/v1/mints/{mint_id}/cancel", payload)
        assert response.status_code in (200, 201), response.content
        statements = [q["sql"] for q in captured.captured_queries]
        appends = [i for i, sql in enumerate(statements) if "ledger_append" in sql]
        assert appends, statements
        after = [sql for sql in statements[appends[0] + 1:] if not sql.startswith(("RELEASE SAVEPOINT", "COMMIT"))]
        assert after == [], after
