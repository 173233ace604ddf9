"""A simulated broker for `make run` and tests: deterministic fills at a reference price set per
security, fees in basis points with a minimum, fractional shares, and a configurable latency.

It plays an external system, so it keeps its own book (SimulatedOrder) apart from our BrokerOrder.
An order fills `sim_latency_ms` after submission, in two fills when it is larger than one share
(half, then the rest), at the reference price of the moment it was submitted. Where a price has a
`liquidity_nano`, no more than that fills and the rest of the order expires, as a DAY order's does at
the close (reported as cancelled, as Alpaca reports an expired order).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from custody.brokers.base import BrokerError, FillReport, OrderSnapshot
from ledger.units import NANO

_NAMESPACE = uuid.UUID("8d2f7f3e-5b7c-4a55-9a3f-0c6f3c1d2a10")


def fee_cents(*, quantity_nano: int, price: Decimal, fee_bps: Decimal) -> int:
    """Fee on a fill's notional, rounded up to the cent (a broker never undercharges by rounding)."""
    notional_cents = Decimal(quantity_nano) * price * 100 / NANO
    return int((notional_cents * fee_bps / Decimal(10_000)).to_integral_value(rounding=ROUND_CEILING))


class SimulatedBroker:
    def __init__(self, broker, *, clock: Callable[[], datetime] = timezone.now):
        self.broker = broker
        self.clock = clock

    def place_order(self, *, client_order_id: str, ticker: str, side: str, quantity_nano: int) -> OrderSnapshot:
        from custody.models import SimulatedOrder, SimulatedPrice

        existing = SimulatedOrder.objects.filter(broker=self.broker, client_order_id=client_order_id).first()
        if existing is not None:
            return self._snapshot(existing)
        if side not in ("buy", "sell"):
            raise BrokerError(f"unknown side {side!r}", code="invalid_order")
        if quantity_nano <= 0:
            raise BrokerError("quantity must be positive", code="invalid_order")
        price, liquidity = (SimulatedPrice.objects.filter(broker=self.broker, security__ticker=ticker)
                            .values_list("price", "liquidity_nano").first() or (None, None))
        if price is None:
            raise BrokerError(f"simulated broker {self.broker.code} has no reference price for {ticker}",
                              code="no_reference_price")
        now = self.clock()
        try:
            with transaction.atomic():
                order = SimulatedOrder.objects.create(
                    broker=self.broker,
                    broker_order_id=str(uuid.uuid5(_NAMESPACE, f"{self.broker.code}:{client_order_id}")),
                    client_order_id=client_order_id, ticker=ticker, side=side, quantity_nano=quantity_nano,
                    price=price, fee_bps=self.broker.sim_fee_bps, min_fee_cents=self.broker.sim_min_fee_cents,
                    submitted_at=now, fills_at=now + timedelta(milliseconds=self.broker.sim_latency_ms),
                    fillable_nano=liquidity)
        except IntegrityError:
            order = SimulatedOrder.objects.get(broker=self.broker, client_order_id=client_order_id)
        return self._snapshot(order)

    def get_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        return self._snapshot(self._find(client_order_id))

    def cancel_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        from custody.models import SimulatedOrder

        with transaction.atomic():
            order = SimulatedOrder.objects.select_for_update().get(pk=self._find(client_order_id).pk)
            now = self.clock()
            if order.cancelled_at is None and now < order.fills_at:
                order.cancelled_at = now
                order.save(update_fields=["cancelled_at"])
        return self._snapshot(order)

    def _find(self, client_order_id: str):
        from custody.models import SimulatedOrder

        order = SimulatedOrder.objects.filter(broker=self.broker, client_order_id=client_order_id).first()
        if order is None:
            raise BrokerError(f"order {client_order_id} not found", code="order_not_found")
        return order

    def _snapshot(self, order) -> OrderSnapshot:
        if order.cancelled_at is not None:
            return OrderSnapshot(broker_order_id=order.broker_order_id, client_order_id=order.client_order_id,
                                 status="cancelled", filled_quantity_nano=0, reason="cancelled by request")
        if self.clock() < order.fills_at:
            return OrderSnapshot(broker_order_id=order.broker_order_id, client_order_id=order.client_order_id,
                                 status="accepted", filled_quantity_nano=0)
        fills = []
        filled = order.quantity_nano if order.fillable_nano is None else min(order.quantity_nano, order.fillable_nano)
        parts = [filled] if filled <= 10**9 else [filled // 2, filled - filled // 2]
        for index, part in enumerate((p for p in parts if p), start=1):
            fee = fee_cents(quantity_nano=part, price=order.price, fee_bps=order.fee_bps)
            if index == 1:
                fee = max(fee, order.min_fee_cents)
            fills.append(FillReport(broker_fill_id=f"{order.broker_order_id}-{index}", quantity_nano=part,
                                    price=order.price, executed_at=order.fills_at, fee_cents=fee))
        if filled < order.quantity_nano:
            return OrderSnapshot(broker_order_id=order.broker_order_id, client_order_id=order.client_order_id,
                                 status="cancelled", filled_quantity_nano=filled, fills=fills,
                                 reason="expired at the close with part unfilled (DAY order)")
        return OrderSnapshot(broker_order_id=order.broker_order_id, client_order_id=order.client_order_id,
                             status="filled", filled_quantity_nano=order.quantity_nano, fills=fills)
