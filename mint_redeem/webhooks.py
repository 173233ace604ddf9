"""Signed webhooks: every state change of a participant's request, POSTed as JSON.

Signature (Stripe-style, so receivers can use familiar code): header
`Issuer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Receivers should
recompute it, compare in constant time and refuse timestamps older than a few minutes. Deliveries are
retried with exponential backoff; the event `id` lets receivers ignore duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance import crypto
from config.api import DomainError
from ledger.units import NANO
from mint_redeem import jobs
from mint_redeem.models import WebhookDelivery, WebhookEndpoint

SIGNATURE_HEADER = "Issuer-Signature"
TIMEOUT_S = 10
MAX_ATTEMPTS = 12
BACKOFF_BASE_S = 5


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
    """Register an endpoint; returns it and its signing secret (shown once, stored encrypted)."""
    if settings.ISSUER_ENV == "production" and not url.startswith("https://"):
        raise DomainError("webhook URLs must use https", code="invalid_webhook_url")
    if not url.startswith(("https://", "http://")) or len(url) > 500:
        raise DomainError("a webhook URL must be an http(s) URL of at most 500 characters", code="invalid_webhook_url")
    secret = secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(participant=participant, url=url,
                                              secret_encrypted=crypto.encrypt(secret.encode()))
    return endpoint, secret


def delivery_attempt(*, delivery_id: int) -> WebhookDelivery:
    """POST the delivery once; record the outcome and when to try again."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("endpoint")
                    .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).first())
        if delivery is None:
            return WebhookDelivery.objects.get(pk=delivery_id)  # delivered, given up, or being attempted
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "issuer-webhooks/1",
                   SIGNATURE_HEADER: sign(crypto.decrypt(delivery.endpoint.secret_encrypted).decode(),
                                          int(time.time()), body),
                   "Issuer-Event-Id": delivery.event_id}
        delivery.attempts += 1
        try:
            response = requests.post(delivery.endpoint.url, data=body, headers=headers, timeout=TIMEOUT_S,
                                     allow_redirects=False)
            delivery.last_status_code = response.status_code
            ok = 200 <= response.status_code < 300
            delivery.last_error = "" if ok else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            ok = False
            delivery.last_error = type(exc).__name__
        if ok:
            delivery.status = WebhookDelivery.Status.DELIVERED
            delivery.delivered_at = timezone.now()
            delivery.next_attempt_at = None
        elif delivery.attempts >= MAX_ATTEMPTS:
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
