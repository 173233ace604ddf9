"""Webhooks reach a real HTTP receiver, signed, retried with backoff, and can be redelivered."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from mint_redeem import webhooks
from mint_redeem.models import MintRequest, WebhookDelivery, WebhookEndpoint

from .conftest import wait_for
from .receivers import Receiver


@pytest.fixture
def make_receiver(settings):
    # Webhooks may not reach loopback; these tests admit it for their local receivers, and only they.
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    started = []

    def make(respond=None) -> Receiver:
        started.append(Receiver(respond))
        return started[-1]

    yield make
    for r in started:
        r.close()


@pytest.fixture
def receiver(make_receiver):
    return make_receiver()


def verify_signature(secret: str, headers: dict, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in headers["Issuer-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.mark.celery
def test_state_changes_are_delivered_signed(committed, celery_worker_process, market, mm, api, receiver):
    registered = api.post("/api/v1/webhooks", {"url": receiver.url})
    assert registered.status_code == 201, registered.content
    secret = registered.json()["secret"]
    assert "secret" not in api.get("/api/v1/webhooks").json()[0]

    mint = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "1",
                                      "wallet": mm.wallets["ethereum"].pk, "funding": "cash"}).json()
    api.post(f"/api/v1/mints/{mint['id']}/cancel", {"reason": "test"})
    got = wait_for(lambda: list(receiver.received), lambda r: len(r) >= 2, timeout_s=30)
    assert len(got) == 2
    payloads = [json.loads(body) for _headers, body in got]
    assert sorted(p["type"] for p in payloads) == ["mint.accepted", "mint.cancelled"]
    assert all(p["data"]["id"] == mint["id"] for p in payloads)
    for headers, body in got:
        assert verify_signature(secret, headers, body)
        assert not verify_signature("wrong-secret", headers, body)
    assert WebhookDelivery.objects.filter(status="delivered").count() == 2


def test_failures_back_off_then_redelivery_succeeds(db, market, mm, api, receiver):
    # In a transaction that never commits, no task is published: the test alone attempts deliveries.
    api.post("/api/v1/webhooks", {"url": receiver.url})
    api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "1",
                               "wallet": mm.wallets["ethereum"].pk, "funding": "cash"})
    delivery = WebhookDelivery.objects.get()
    receiver.fail_next = 2
    first = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
    second = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert second.next_attempt_at - first.next_attempt_at > (first.next_attempt_at - first.created_at) / 2
    assert webhooks.backoff_s(1) < webhooks.backoff_s(2) < webhooks.backoff_s(3)
    third = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert third.status == "delivered" and len(receiver.received) == 1
    # Delivered once: attempting again sends nothing.
    webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert len(receiver.received) == 1
    # Operations can redeliver from the admin.
    webhooks.delivery_redeliver(delivery=third)
    webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert len(receiver.received) == 2
    assert MintRequest.objects.count() == 1


def test_a_delivery_whose_task_was_lost_is_picked_up_by_the_beat(db, market, mm, api, receiver):
    from datetime import timedelta

    from django.utils import timezone

    from mint_redeem import tasks

    api.post("/api/v1/webhooks", {"url": receiver.url})
    api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "1",
                               "wallet": mm.wallets["ethereum"].pk, "funding": "cash"})
    delivery = WebhookDelivery.objects.get()
    assert delivery.next_attempt_at is not None  # due from the start, not only after a failure
    # As if the process died after commit: no task ever ran. Some time later the beat finds it.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert tasks.retry_webhooks() == 1  # queued again (the task this test's queue never runs)
    webhooks.delivery_attempt(delivery_id=delivery.pk)  # what that task does
    assert len(receiver.received) == 1


# --- how a delivery is sent ---------------------------------------------------------------------

def _endpoint_and_delivery(participant, url: str) -> WebhookDelivery:
    """An endpoint and a due delivery, written directly: no task is queued, so the test alone sends it."""
    from compliance import crypto

    endpoint = WebhookEndpoint.objects.create(participant=participant, url=url,
                                              secret_encrypted=crypto.encrypt(b"test-secret"))
    return WebhookDelivery.objects.create(endpoint=endpoint, event_id="evt-1", event_type="mint.accepted",
                                          payload={"type": "mint.accepted", "data": {"id": 1}})


def test_the_receiver_is_called_with_no_transaction_open_and_no_row_locked(committed, mm, make_receiver):
    from django.db import DatabaseError, connection, transaction

    seen = {}

    def look_from_another_connection(handler, body):
        # What another worker sees while the receiver takes its time: the attempt already counted
        # (committed) and the row free to lock (no transaction of the sender holds it).
        try:
            with transaction.atomic():
                row = WebhookDelivery.objects.select_for_update(nowait=True).get(pk=delivery.pk)
                seen["attempts"], seen["claimed"] = row.attempts, row.claimed_until is not None
        except DatabaseError as exc:
            seen["error"] = type(exc).__name__
        finally:
            connection.close()
        handler.send_response(204)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    receiver = make_receiver(look_from_another_connection)
    delivery = _endpoint_and_delivery(mm.participant, receiver.url)
    attempted = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert seen == {"attempts": 1, "claimed": True}
    assert attempted.status == "delivered" and attempted.claimed_until is None


def test_a_claimed_delivery_is_not_sent_again_until_its_claim_lapses(db, mm, receiver):
    from datetime import timedelta

    from django.utils import timezone

    delivery = _endpoint_and_delivery(mm.participant, receiver.url)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) is None  # another worker is sending it
    assert receiver.received == []
    # That worker died mid-send: once its claim lapses the delivery is sent, its attempt still counted.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() - timedelta(seconds=1),
                                                          attempts=1)
    sent = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert (sent.status, sent.attempts, len(receiver.received)) == ("delivered", 2, 1)


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_overall_deadline(db, mm, settings, make_receiver):
    import time

    settings.WEBHOOK_DEADLINE_S = 1.0

    def drip(handler, body):
        # Each byte well within any per-read timeout; the whole answer would take 8 s.
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(80):
            try:
                handler.wfile.write(b"X")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    receiver = make_receiver(drip)
    delivery = _endpoint_and_delivery(mm.participant, receiver.url)
    started = time.monotonic()
    attempted = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert time.monotonic() - started < 4
    assert (attempted.status, attempted.last_status_code) == ("pending", None)
    assert attempted.last_error == "no answer within 1 s"


def test_a_huge_answer_is_not_read_past_the_cap(db, mm, make_receiver):
    import time

    sent = {"bytes": 0}

    def endless(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Length", str(10 ** 12))
        handler.end_headers()
        chunk = b"0" * 65536
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                handler.wfile.write(chunk)
            except OSError:
                return  # the sender hung up
            sent["bytes"] += len(chunk)

    receiver = make_receiver(endless)
    delivery = _endpoint_and_delivery(mm.participant, receiver.url)
    started = time.monotonic()
    attempted = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert time.monotonic() - started < 5
    assert (attempted.status, attempted.last_status_code) == ("delivered", 200)
    # What the receiver got out before the sender hung up: socket buffers, not the terabyte announced.
    wait_for(lambda: sent["bytes"], lambda n: n > 0, timeout_s=5)
    assert sent["bytes"] < 64 * 1024 * 1024


def test_redirects_are_not_followed(db, mm, make_receiver):
    elsewhere = make_receiver()

    def redirect(handler, body):
        handler.send_response(307)
        handler.send_header("Location", elsewhere.url)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    receiver = make_receiver(redirect)
    delivery = _endpoint_and_delivery(mm.participant, receiver.url)
    attempted = webhooks.delivery_attempt(delivery_id=delivery.pk)
    assert (attempted.status, attempted.last_status_code, attempted.last_error) == ("pending", 307, "HTTP 307")
    assert len(receiver.received) == 1 and elsewhere.received == []


def test_deliveries_are_queued_on_the_webhook_queue_of_their_own():
    """By task name, whoever sends it: a slow receiver can hold up only the webhook worker."""
    import uuid

    from config.celery import app

    queue = f"webhooks-routing-{uuid.uuid4().hex[:8]}"
    original = app.conf.webhook_queue
    assert original != app.conf.task_default_queue
    app.conf.webhook_queue = queue
    try:
        with app.connection_for_write() as conn:
            redis_client = conn.default_channel.client  # the broker's lists, one per queue
            before = redis_client.llen(app.conf.task_default_queue)
            app.send_task("mint_redeem.deliver_webhook", args=[0], connection=conn)
            assert redis_client.llen(queue) == 1
            assert redis_client.llen(app.conf.task_default_queue) == before
            redis_client.delete(queue)
    finally:
        app.conf.webhook_queue = original


# --- the signing secret -------------------------------------------------------------------------

def test_the_secret_is_shown_once_never_stored_in_clear_and_not_replayed(db, mm, api, receiver, caplog):
    import logging

    from django.db import connection

    caplog.set_level(logging.DEBUG)
    registered = api.post("/api/v1/webhooks", {"url": receiver.url}, idempotency_key="register-hooks-1")
    assert registered.status_code == 201, registered.content
    secret = registered.json()["secret"]
    assert len(secret) >= 32

    replay = api.post("/api/v1/webhooks", {"url": receiver.url}, idempotency_key="register-hooks-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == {key: value for key, value in registered.json().items() if key != "secret"}

    # Nowhere in the database in clear: not the endpoint's row, not the stored response, not anywhere.
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        found = []
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{secret}%"])  # noqa: S608
            if cursor.fetchone()[0]:
                found.append(table)
    assert "compliance_idempotencyrecord" in tables and "mint_redeem_webhookendpoint" in tables
    assert found == []

    endpoint = WebhookEndpoint.objects.get()
    webhooks.delivery_attempt(delivery_id=WebhookDelivery.objects.create(
        endpoint=endpoint, event_id="evt-1", event_type="mint.accepted", payload={}).pk)
    headers, body = receiver.received[0]
    assert verify_signature(secret, headers, body)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert secret not in logged
