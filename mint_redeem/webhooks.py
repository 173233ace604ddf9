"""Signed webhooks: every state change of a participant's request, POSTed as JSON.

Signature (Stripe-style, so receivers can use familiar code): header
`Issuer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Receivers should
recompute it, compare in constant time and refuse timestamps older than a few minutes. Deliveries are
retried with exponential backoff; the event `id` lets receivers ignore duplicates.

Where a webhook may go, and how long and how much of an answer it waits for: webhook_transport.
Deliveries run as the `mint_redeem.deliver_webhook` task, on a queue of their own (CELERY_WEBHOOK_QUEUE).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from compliance import crypto
from config.api import DomainError
from ledger.units import NANO
from mint_redeem import jobs, webhook_transport
from mint_redeem.models import WebhookDelivery, WebhookEndpoint

SIGNATURE_HEADER = "Issuer-Signature"
MAX_ATTEMPTS = 12
BACKOFF_BASE_S = 5
# Longer than any attempt can take (the deadline, plus slack for recording it), so a claim is only ever
# taken over from a worker that died mid-attempt.
CLAIM_SLACK = timedelta(seconds=50)


def request_payload(request) -> dict:
    from mint_redeem.models import MintRequest

    payload = {
        "id": request.pk,
        "kind": "mint" if isinstance(request, MintRequest) else "redemption",
        "state": request.state,
        "product": request.product.symbol,
        "chain": request.chain,
        "quantity": str(Decimal(request.quantity_nano) / NANO),
        "token_base_units": str(request.token_base_units),
        "notional_cents": request.notional_cents,
    }
    return payload


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def endpoint_register(*, participant, url: str) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown once, stored encrypted).

    The URL must be https (http too where WEBHOOK_ALLOW_HTTP), and every address its host resolves to
    now must be one webhooks may reach (webhook_transport); deliveries check again, as DNS changes."""
    webhook_transport.check_url(url)
    secret = secrets.token_urlsafe(32)
    limit = settings.WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT
    with transaction.atomic():
        # Two registrations at once would both count below the limit; one at a time per participant
        # (an advisory lock, so mints, which lock the participant's row, never wait on this).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                           [f"webhook-endpoints:{participant.pk}"])
        if WebhookEndpoint.objects.filter(participant_id=participant.pk, active=True).count() >= limit:
            raise DomainError(f"at most {limit} active webhook endpoints per participant",
                              code="too_many_webhook_endpoints", http_status=409)
        endpoint = WebhookEndpoint.objects.create(participant=participant, url=url,
                                                  secret_encrypted=crypto.encrypt(secret.encode()))
    return endpoint, secret


def delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """POST the delivery once and record the outcome and when to try again. Returns the delivery as
    recorded, or None if it was not attempted (delivered, given up, or being attempted elsewhere).

    Three steps, so no transaction or row lock is held while a receiver takes its time: claim the
    delivery (count the attempt, lease it) and commit; send; record the outcome if the claim is still
    ours. A worker that dies mid-send leaves a lease that expires, and the attempt counted."""
    claimed = _claim(delivery_id)
    if claimed is None:
        return None
    outcome = _send(claimed)
    return _record_outcome(delivery_id=delivery_id, attempt=claimed.attempts, outcome=outcome)


def _claim(delivery_id: int) -> WebhookDelivery | None:
    now = timezone.now()
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("endpoint")
                    .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
                    .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).first())
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.claimed_until = now + timedelta(seconds=settings.WEBHOOK_DEADLINE_S) + CLAIM_SLACK
        delivery.save(update_fields=["attempts", "claimed_until"])
    return delivery


def _send(delivery: WebhookDelivery) -> webhook_transport.Outcome:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    secret = crypto.decrypt(delivery.endpoint.secret_encrypted).decode()
    headers = {"Content-Type": "application/json", "User-Agent": "issuer-webhooks/1",
               SIGNATURE_HEADER: sign(secret, int(time.time()), body), "Issuer-Event-Id": delivery.event_id}
    return webhook_transport.post(delivery.endpoint.url, body=body, headers=headers,
                                  deadline_s=settings.WEBHOOK_DEADLINE_S,
                                  max_response_bytes=settings.WEBHOOK_MAX_RESPONSE_BYTES)


def _record_outcome(*, delivery_id: int, attempt: int, outcome: webhook_transport.Outcome) -> WebhookDelivery:
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != WebhookDelivery.Status.PENDING or delivery.attempts != attempt:
            return delivery  # our lease ran out and another attempt took over: its outcome counts
        delivery.claimed_until = None
        delivery.last_status_code = outcome.status_code
        if outcome.ok:
            delivery.last_error = ""
            delivery.status = WebhookDelivery.Status.DELIVERED
            delivery.delivered_at = timezone.now()
            delivery.next_attempt_at = None
        else:
            delivery.last_error = outcome.error or f"HTTP {outcome.status_code}"
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = WebhookDelivery.Status.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = timezone.now() + timedelta(seconds=backoff_s(delivery.attempts))
        delivery.save()
    return delivery


def backoff_s(attempts: int) -> int:
    return min(BACKOFF_BASE_S * 2 ** (attempts - 1), 3600)


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Operations send a delivery again (after the receiver fixed its endpoint)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.PENDING,
                                                          next_attempt_at=timezone.now())
    jobs.enqueue_on_commit(jobs.DELIVER_WEBHOOK, delivery.pk)
    return WebhookDelivery.objects.get(pk=delivery.pk)
