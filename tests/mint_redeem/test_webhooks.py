"""Webhooks reach a real HTTP receiver, signed, retried with backoff, and can be redelivered."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mint_redeem import webhooks
from mint_redeem.models import MintRequest, WebhookDelivery, WebhookEndpoint

from .conftest import wait_for


class Receiver:
    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


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
