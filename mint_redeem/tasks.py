"""Celery tasks: thin wrappers that call services. Each is idempotent and safe to run again."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from mint_redeem import jobs, services, webhooks
from mint_redeem.lifecycle import AUTOMATIC_STATES
from mint_redeem.models import MintRequest, Redemption, WebhookDelivery

logger = logging.getLogger(__name__)

ACTOR = "task:advance_requests"
RETRY_GRACE = timedelta(seconds=30)
MINT_AUTOMATIC_STATES = AUTOMATIC_STATES["mint"]
REDEMPTION_AUTOMATIC_STATES = AUTOMATIC_STATES["redemption"]


@shared_task(name=jobs.ADVANCE_REQUEST, acks_late=True)
def advance_request(kind: str, request_id: int) -> str:
    if kind == "mint":
        request = services.mint_advance(mint=MintRequest.objects.get(pk=request_id), actor=ACTOR)
    else:
        request = services.redemption_advance(redemption=Redemption.objects.get(pk=request_id), actor=ACTOR)
    return request.state


@shared_task(name="mint_redeem.advance_due")
def advance_due() -> int:
    """Beat: move every request whose next step is automatic (orders at the open, fills, settlement)."""
    count = 0
    for mint_id in MintRequest.objects.filter(state__in=MINT_AUTOMATIC_STATES).values_list("pk", flat=True):
        try:
            services.mint_advance(mint=MintRequest(pk=mint_id), actor=ACTOR)
            count += 1
        except Exception:
            logger.exception("mint %s could not advance", mint_id)
    redemptions = Redemption.objects.filter(state__in=REDEMPTION_AUTOMATIC_STATES).values_list("pk", flat=True)
    for redemption_id in redemptions:
        try:
            services.redemption_advance(redemption=Redemption(pk=redemption_id), actor=ACTOR)
            count += 1
        except Exception:
            logger.exception("redemption %s could not advance", redemption_id)
    return count


@shared_task(name=jobs.DELIVER_WEBHOOK, acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """Routed to the webhook queue by name (config.celery.route_task)."""
    delivery = webhooks.delivery_attempt(delivery_id=delivery_id)
    if delivery is None:
        return "not attempted"  # delivered, given up, or another attempt holds it (and schedules the next)
    if delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at is not None:
        deliver_webhook.apply_async((delivery_id,), eta=delivery.next_attempt_at)
    return delivery.status


@shared_task(name="mint_redeem.retry_webhooks")
def retry_webhooks() -> int:
    """Beat: a safety net for deliveries whose task was lost (process died after commit, worker restart).
    A grace period keeps it from racing the task queued on commit; a race would be harmless anyway
    (delivery_attempt claims the delivery and skips delivered and claimed ones)."""
    due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING,
                                         next_attempt_at__lte=timezone.now() - RETRY_GRACE)
    ids = list(due.values_list("pk", flat=True)[:500])
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)


@shared_task(name="mint_redeem.publish_reserves")
def publish_reserves() -> int:
    """Beat: each new attestation's reserves to the products' ReserveFeed contracts, through the outbox."""
    from mint_redeem.reserve_feed import reserve_feed_publish_recent

    return reserve_feed_publish_recent()
