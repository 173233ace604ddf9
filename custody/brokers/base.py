"""The broker adapter interface: what the custody services need from any broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol


class BrokerError(Exception):
    """The broker refused a request or answered something we cannot use."""

    code = "broker_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


@dataclass(frozen=True)
class FillReport:
    broker_fill_id: str
    quantity_nano: int
    price: Decimal
    executed_at: datetime
    fee_cents: int = 0


@dataclass(frozen=True)
class OrderSnapshot:
    """The broker's view of one order. `status` uses our BrokerOrder.Status values."""

    broker_order_id: str
    client_order_id: str
    status: str
    filled_quantity_nano: int
    fills: list[FillReport] = field(default_factory=list)
    reason: str = ""


class BrokerAdapter(Protocol):
    def place_order(self, *, client_order_id: str, ticker: str, side: str, quantity_nano: int) -> OrderSnapshot:
        """Submit a market order (DAY). Idempotent per client_order_id: a second call returns the first order."""

    def get_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        """The order's current state with every fill so far."""

    def cancel_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        """Ask the broker to cancel what is not yet filled; returns the state after the request."""
