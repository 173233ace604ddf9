"""Alpaca trading API adapter (alpaca-py). Orders are market DAY orders with fractional quantities
(Alpaca accepts up to 9 decimals, i.e. exactly our nano-shares). Fills come from the account
activities endpoint (activity type FILL), filtered by order id, because the order object only
carries the cumulative quantity and average price.

Credentials come from the environment (<PREFIX>_API_KEY, <PREFIX>_SECRET_KEY), never the database.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime
from decimal import Decimal, InvalidOperation

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from django.conf import settings

from custody.brokers.base import BrokerError, FillReport, OrderSnapshot
from custody.models import base_url_allowed
from ledger.units import NANO

_PAGE_SIZE = 100
_MAX_PAGES = 50
# Answers worth asking again: rate limited, or the broker's side failed before deciding. A repeated order
# submission is safe because Alpaca deduplicates on client_order_id (a repeat gets 422 and the first order).
_RETRY_STATUSES = [429, 500, 502, 503, 504]

# Alpaca order statuses -> ours. "done_for_day" and "replaced" are not final for our purposes:
# what was filled so far is decided by filled_qty.
_STATUS = {
    "new": "accepted", "accepted": "accepted", "pending_new": "accepted", "accepted_for_bidding": "accepted",
    "held": "accepted", "calculated": "accepted", "pending_cancel": "accepted", "pending_replace": "accepted",
    "replaced": "accepted", "done_for_day": "accepted", "stopped": "accepted", "suspended": "accepted",
    "partially_filled": "partially_filled", "filled": "filled",
    "canceled": "cancelled", "expired": "cancelled", "rejected": "rejected",
}


def quantity_to_nano(value) -> int:
    try:
        quantity = Decimal(str(value))
    except InvalidOperation:
        raise BrokerError(f"broker sent a non-numeric quantity {value!r}", code="broker_bad_response") from None
    if not quantity.is_finite() or quantity.adjusted() > 12:
        raise BrokerError(f"broker sent an impossible quantity {value!r}", code="broker_bad_response")
    nano = quantity * NANO
    if nano != nano.to_integral_value() or nano < 0:
        raise BrokerError(f"broker quantity {value!r} is not a whole number of nano-shares", code="broker_bad_response")
    return int(nano)


def nano_to_request_qty(quantity_nano: int) -> float:
    """alpaca-py's request model types qty as float; refuse any quantity a float would not carry exactly."""
    quantity = Decimal(quantity_nano) / NANO
    as_float = float(quantity)
    if Decimal(repr(as_float)) != quantity:
        raise BrokerError(f"quantity {quantity} cannot be sent exactly", code="invalid_order")
    return as_float


class _BoundedSession(requests.Session):
    """alpaca-py sends every request without a timeout, so a broker that accepts the connection and never
    answers would hold a Celery worker for good; and a transport failure (refused, reset, timed out) would
    escape as a `requests` exception the custody services do not know. Here every request has a deadline and
    every transport failure is a retryable BrokerError: the order stays `new` or unsynced, and the next sync
    asks again under the same client_order_id."""

    def __init__(self, timeout_s: float):
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            return super().request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise BrokerError(f"Alpaca did not answer: {type(exc).__name__}", code="broker_unavailable") from None


def _readable_answers_only(method):
    """An answer alpaca-py cannot read (a proxy's HTML page with status 200, JSON missing a field its model
    requires, a fill without its quantity) is the broker's fault, not a crash of ours: a BrokerError that
    records nothing. pydantic's ValidationError and requests' JSONDecodeError are ValueErrors."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (requests.RequestException, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BrokerError(f"Alpaca answered something unreadable: {type(exc).__name__}",
                              code="broker_bad_response") from None

    return call


class AlpacaBroker:
    def __init__(self, client: TradingClient, *, page_size: int = _PAGE_SIZE):
        self.client = client
        self.page_size = page_size
        # alpaca-py's client exposes neither setting: its session and retry policy are set on it directly.
        client._session = _BoundedSession(settings.BROKER_TIMEOUT_S)
        client._retry_codes = _RETRY_STATUSES
        client._retry_wait = settings.BROKER_RETRY_WAIT_S

    @classmethod
    def from_broker(cls, broker) -> AlpacaBroker:
        prefix = broker.credentials_env_prefix or "ALPACA"
        api_key, secret_key = os.environ.get(f"{prefix}_API_KEY"), os.environ.get(f"{prefix}_SECRET_KEY")
        if not api_key or not secret_key:
            raise BrokerError(f"credentials for broker {broker.code} are not configured ({prefix}_API_KEY / "
                              f"{prefix}_SECRET_KEY)", code="broker_credentials_missing")
        if broker.api_base_url and not base_url_allowed(broker.api_base_url):
            raise BrokerError(f"broker {broker.code}: base URL is not on the allowlist", code="base_url_refused")
        client = TradingClient(api_key=api_key, secret_key=secret_key, paper=not settings.BROKER_LIVE_TRADING,
                               url_override=broker.api_base_url or None)
        return cls(client)

    @_readable_answers_only
    def place_order(self, *, client_order_id: str, ticker: str, side: str, quantity_nano: int) -> OrderSnapshot:
        try:
            request = MarketOrderRequest(symbol=ticker, qty=nano_to_request_qty(quantity_nano),
                                         side=OrderSide(side), time_in_force=TimeInForce.DAY,
                                         client_order_id=client_order_id)
        except ValueError as exc:  # ours, not the broker's: never sent
            raise BrokerError(f"order cannot be sent: {exc}", code="invalid_order") from None
        try:
            order = self.client.submit_order(request)
        except APIError as exc:
            if exc.status_code == 422 and "client_order_id" in _message(exc):
                # Submitted before (a retry after a crash): the first order stands.
                return self.get_order(client_order_id=client_order_id)
            if exc.status_code in (403, 422):
                return OrderSnapshot(broker_order_id="", client_order_id=client_order_id, status="rejected",
                                     filled_quantity_nano=0, reason=_message(exc)[:500])
            raise BrokerError(f"Alpaca refused the order: {_message(exc)}", code="broker_unavailable") from None
        return self._snapshot(order, fills=[])

    @_readable_answers_only
    def get_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        try:
            order = self.client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                raise BrokerError(f"order {client_order_id} not found at Alpaca", code="order_not_found") from None
            raise BrokerError(f"Alpaca: {_message(exc)}", code="broker_unavailable") from None
        filled = quantity_to_nano(order.filled_qty or "0")
        fills = self._fills(order_id=str(order.id), after=order.submitted_at, filled_nano=filled) if filled else []
        return self._snapshot(order, fills=fills)

    @_readable_answers_only
    def cancel_order(self, *, client_order_id: str, broker_order_id: str = "") -> OrderSnapshot:
        order_id = broker_order_id or self.get_order(client_order_id=client_order_id).broker_order_id
        try:
            self.client.cancel_order_by_id(order_id)
        except APIError as exc:
            # 422: the order can no longer be cancelled (already filled or cancelled); report its state.
            if exc.status_code not in (404, 422):
                raise BrokerError(f"Alpaca: {_message(exc)}", code="broker_unavailable") from None
        return self.get_order(client_order_id=client_order_id)

    def _fills(self, *, order_id: str, after: datetime, filled_nano: int) -> list[FillReport]:
        fills: list[FillReport] = []
        page_token = None
        for _ in range(_MAX_PAGES):
            params = {"after": after.isoformat(), "direction": "asc", "page_size": self.page_size}
            if page_token:
                params["page_token"] = page_token
            try:
                page = self.client.get("/account/activities/FILL", params)
            except APIError as exc:
                raise BrokerError(f"Alpaca activities: {_message(exc)}", code="broker_unavailable") from None
            if not isinstance(page, list):
                raise BrokerError("Alpaca activities: expected a list", code="broker_bad_response")
            for activity in page:
                if activity.get("activity_type") != "FILL" or activity.get("order_id") != order_id:
                    continue
                fills.append(FillReport(
                    broker_fill_id=str(activity["id"]),
                    quantity_nano=quantity_to_nano(activity["qty"]),
                    price=Decimal(str(activity["price"])),
                    executed_at=datetime.fromisoformat(activity["transaction_time"].replace("Z", "+00:00")),
                ))
            if sum(f.quantity_nano for f in fills) >= filled_nano or len(page) < self.page_size:
                break
            page_token = page[-1]["id"]
        return fills

    def _snapshot(self, order, *, fills: list[FillReport]) -> OrderSnapshot:
        status = _STATUS.get(str(getattr(order.status, "value", order.status)), "accepted")
        return OrderSnapshot(broker_order_id=str(order.id), client_order_id=order.client_order_id, status=status,
                             filled_quantity_nano=quantity_to_nano(order.filled_qty or "0"), fills=fills)


def _message(exc: APIError) -> str:
    try:
        return str(exc.message)
    except Exception:  # noqa: BLE001 - a non-JSON error body
        return str(exc)[:500]
