"""Buying and selling the shares behind a request: the order, fill and settle steps that mints and
redemptions share.

An order is claimed in the transaction that moves the request to `order_placed`, under the request's
row lock, before the broker hears of it (custody.order_create). Only after that commit is the order
sent (custody.order_submit). So a cancel that wins the lock first leaves nothing to send, and a cancel
that comes after the claim finds the request in `order_placed`, which cannot be cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction

from custody import calendar
from custody import services as custody_services
from custody.models import BrokerOrder, Fill
from mint_redeem.models import ProductTerms
from mint_redeem.services.transitions import lock, transition


@dataclass(frozen=True)
class OrderOutcome:
    """What an order came to once the broker is done with it (filled, or ended with part or none filled)."""

    order: BrokerOrder
    quantity_nano: int
    gross_cents: int
    broker_fee_cents: int
    settlement_date: date | None


def may_place_order(request, terms: ProductTerms, now: datetime) -> bool:
    """Orders wait for a second person's approval where one is needed, and for the market to open."""
    if request.needs_approval and request.approved_by_id is None:
        return False
    return not (terms.market_hours_only and not calendar.is_market_open(now))


def order_claim(request, *, terms: ProductTerms, side: str, quantity_nano: int, client_order_id: str, actor: str,
                update_fields: dict | None = None) -> BrokerOrder:
    """In the caller's transaction, with `request` locked: write the order and move the request to
    order_placed. The caller sends the order after commit."""
    order = custody_services.order_create(broker=terms.broker, security=request.product.security, side=side,
                                          quantity_nano=quantity_nano, client_order_id=client_order_id, actor=actor)
    transition(request, "place_order", actor=actor, refs={"order_id": order.pk},
               update_fields={"broker_order": order, **(update_fields or {})})
    return order


def order_follow(*, order_id: int, actor: str) -> OrderOutcome | None:
    """Bring the order up to date from the broker (outside any request lock: the broker may be slow);
    None while it can still fill."""
    order = BrokerOrder.objects.select_related("broker__custodian", "security").get(pk=order_id)
    custody_services.order_sync(order=order, actor=actor)
    order.refresh_from_db()
    if order.status != BrokerOrder.Status.FILLED and order.status not in BrokerOrder.TERMINAL:
        return None
    fills = list(Fill.objects.filter(order=order))
    return OrderOutcome(order=order, quantity_nano=sum(f.quantity_nano for f in fills),
                        gross_cents=sum(f.gross_cents for f in fills),
                        broker_fee_cents=sum(f.fee_cents for f in fills),
                        settlement_date=max((f.settlement_date for f in fills), default=None))


def on_order_done(request, *, actor: str, then: Callable[[object, OrderOutcome], None]) -> None:
    """Once the request's order is done at the broker, call `then(locked request, outcome)` in one
    transaction, if the request still waits for that order (another run may have taken the step)."""
    outcome = order_follow(order_id=request.broker_order_id, actor=actor)
    if outcome is None:
        return
    with transaction.atomic():
        request = lock(request)
        if request.state == "order_placed":
            then(request, outcome)


def fills_settled(*, order_ids: list[int]) -> bool:
    """Every fill of these orders has settled at the custodian."""
    return not Fill.objects.filter(order_id__in=order_ids).exclude(status=Fill.Status.SETTLED).exists()


def settlement_dates(*, order_ids: list[int]) -> list[date]:
    return list(Fill.objects.filter(order_id__in=order_ids).values_list("settlement_date", flat=True))
