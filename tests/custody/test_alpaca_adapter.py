"""The Alpaca adapter against recorded responses in Alpaca's documented format, served by a real
local HTTP server through alpaca-py's own transport (requests)."""

from __future__ import annotations

import json
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from alpaca.trading.client import TradingClient

from custody import services
from custody.brokers import BrokerError, get_adapter
from custody.brokers.alpaca import AlpacaBroker
from custody.models import Broker, BrokerOrder
from ledger.selectors import balance

FIXTURES = Path(__file__).parent / "fixtures" / "alpaca"
ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


class AlpacaStub(ThreadingHTTPServer):
    """Serves the recorded responses; `order_state` picks which recorded order the API returns."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.order_state = "accepted"
        self.submitted: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict, dict]] = []
        self.reject_with: tuple[int, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: AlpacaStub

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body=None):
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _record(self, body=None):
        url = urlparse(self.path)
        self.server.requests.append((self.command, url.path, parse_qs(url.query), dict(self.headers)))
        return url, body

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        url, _ = self._record(body)
        if url.path != "/v2/orders":
            return self._send(404, {"code": 40410000, "message": "not found"})
        if self.server.reject_with:
            status, name = self.server.reject_with
            return self._send(status, fixture(name))
        if body["client_order_id"] in self.server.submitted:
            return self._send(422, fixture("error_duplicate_client_order_id.json"))
        self.server.submitted[body["client_order_id"]] = body
        return self._send(200, {**fixture("order_accepted.json"), "client_order_id": body["client_order_id"],
                                "qty": body["qty"]})

    def do_GET(self):
        url, _ = self._record()
        query = parse_qs(url.query)
        if url.path == "/v2/orders:by_client_order_id":
            client_order_id = query["client_order_id"][0]
            if client_order_id not in self.server.submitted:
                return self._send(404, fixture("error_order_not_found.json"))
            return self._send(200, {**fixture(f"order_{self.server.order_state}.json"),
                                    "client_order_id": client_order_id})
        if url.path == "/v2/account/activities/FILL":
            # The recorded activity log, served the way Alpaca pages it (page_size, page_token = last id).
            activities = fixture("activities_fill_page1.json") + fixture("activities_fill_page2.json")
            if self.server.order_state == "partially_filled":
                activities = activities[:2]
            size = int(query.get("page_size", ["100"])[0])
            start = 0
            if "page_token" in query:
                start = [a["id"] for a in activities].index(query["page_token"][0]) + 1
            return self._send(200, activities[start:start + size])
        return self._send(404, {"code": 40410000, "message": "not found"})

    def do_DELETE(self):
        url, _ = self._record()
        if url.path == f"/v2/orders/{ORDER_ID}":
            if self.server.order_state == "filled":
                return self._send(422, fixture("error_not_cancelable.json"))
            self.server.order_state = "canceled"
            return self._send(204)
        return self._send(404, {"code": 40410000, "message": "not found"})


@pytest.fixture
def alpaca_server():
    server = AlpacaStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alpaca_broker(alpaca_server, custodian, aapl, monkeypatch, settings):
    # The recorded-response server stands in for Alpaca's origin, so it is the one on the allowlist.
    settings.BROKER_API_BASE_URLS = [alpaca_server.url]
    monkeypatch.setenv("ALPACA_TEST_API_KEY", "PKTEST0000000000")
    monkeypatch.setenv("ALPACA_TEST_SECRET_KEY", "secret-test-key")
    return Broker.objects.create(code="alpaca", name="Alpaca", kind=Broker.Kind.ALPACA, custodian=custodian,
                                 api_base_url=alpaca_server.url, credentials_env_prefix="ALPACA_TEST")


def adapter(server, page_size=2):
    client = TradingClient(api_key="PKTEST0000000000", secret_key="secret-test-key", url_override=server.url)
    return AlpacaBroker(client, page_size=page_size)


def test_place_order_sends_exact_fractional_quantity_and_credentials(alpaca_server):
    snapshot = adapter(alpaca_server).place_order(client_order_id="mint-42-buy", ticker="AAPL", side="buy",
                                                  quantity_nano=2_500_000_000)
    assert (snapshot.broker_order_id, snapshot.status, snapshot.filled_quantity_nano) == (ORDER_ID, "accepted", 0)
    method, path, _, headers = alpaca_server.requests[0]
    assert (method, path) == ("POST", "/v2/orders")
    assert headers["APCA-API-KEY-ID"] == "PKTEST0000000000"
    body = alpaca_server.submitted["mint-42-buy"]
    assert (body["symbol"], body["side"], body["type"], body["time_in_force"], Decimal(str(body["qty"]))) == (
        "AAPL", "buy", "market", "day", Decimal("2.5"))


def test_resubmission_returns_the_first_order(alpaca_server):
    broker = adapter(alpaca_server)
    broker.place_order(client_order_id="mint-42-buy", ticker="AAPL", side="buy", quantity_nano=2_500_000_000)
    again = broker.place_order(client_order_id="mint-42-buy", ticker="AAPL", side="buy", quantity_nano=2_500_000_000)
    assert again.broker_order_id == ORDER_ID and len(alpaca_server.submitted) == 1


def test_rejection_is_reported(alpaca_server):
    alpaca_server.reject_with = (403, "error_insufficient_buying_power.json")
    snapshot = adapter(alpaca_server).place_order(client_order_id="x", ticker="AAPL", side="buy", quantity_nano=10**9)
    assert snapshot.status == "rejected" and "buying power" in snapshot.reason


def test_fills_are_read_from_paginated_activities(alpaca_server):
    broker = adapter(alpaca_server)
    broker.place_order(client_order_id="mint-42-buy", ticker="AAPL", side="buy", quantity_nano=2_500_000_000)
    alpaca_server.order_state = "filled"
    snapshot = broker.get_order(client_order_id="mint-42-buy")
    assert snapshot.status == "filled" and snapshot.filled_quantity_nano == 2_500_000_000
    assert [(f.quantity_nano, f.price) for f in snapshot.fills] == [
        (1_000_000_001, Decimal("245.27")), (1_499_999_999, Decimal("245.2833"))]
    assert snapshot.fills[0].broker_fill_id == "20251010103105112::8efc7b9a-8b2b-4000-9955-d36e7db0df74"
    activity_calls = [r for r in alpaca_server.requests if r[1] == "/v2/account/activities/FILL"]
    assert len(activity_calls) == 2 and activity_calls[1][2]["page_token"]


def test_unknown_order_and_sub_nano_quantities(alpaca_server):
    with pytest.raises(BrokerError) as exc:
        adapter(alpaca_server).get_order(client_order_id="mint-404")
    assert exc.value.code == "order_not_found"
    from custody.brokers.alpaca import quantity_to_nano

    with pytest.raises(BrokerError):
        quantity_to_nano("0.0000000001")


def test_missing_credentials_refused(alpaca_server, custodian, monkeypatch):
    monkeypatch.delenv("NOPE_API_KEY", raising=False)
    broker = Broker(code="alp2", kind=Broker.Kind.ALPACA, custodian=custodian, credentials_env_prefix="NOPE")
    with pytest.raises(BrokerError) as exc:
        get_adapter(broker)
    assert exc.value.code == "broker_credentials_missing"


def test_order_lifecycle_through_services(alpaca_server, alpaca_broker, aapl):
    """Partially filled, then filled: each fill recorded once, settling T+1 over Columbus Day 2025
    (trade Friday 10 Oct; Monday 13 Oct the exchange is open but banks are closed -> Tuesday 14 Oct)."""
    order = services.order_place(broker=alpaca_broker, security=aapl, side="buy", quantity_nano=2_500_000_000,
                                 client_order_id="mint-42-buy", actor="task:mint")
    assert order.status == "accepted" and order.broker_order_id == ORDER_ID

    alpaca_server.order_state = "partially_filled"
    (first,) = services.order_sync(order=order, actor="task:sync")
    order.refresh_from_db()
    assert order.status == "partially_filled" and order.filled_quantity_nano == 1_000_000_001
    assert (first.trade_date, first.settlement_date) == (date(2025, 10, 10), date(2025, 10, 14))
    assert first.gross_cents == 24527  # 1.000000001 x 245.27 = 245.27000024527 USD

    alpaca_server.order_state = "filled"
    (second,) = services.order_sync(order=order, actor="task:sync")
    assert services.order_sync(order=order, actor="task:sync") == []
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity_nano == 2_500_000_000
    assert balance(account="in_transit/alpaca/AAPL", asset="shares:AAPL").pending_in == 2_500_000_000

    assert services.fills_settle_due(today=date(2025, 10, 13), actor="task:settle") == 0
    assert services.fills_settle_due(today=date(2025, 10, 14), actor="task:settle") == 2
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 2_500_000_000


def test_cancel_through_services(alpaca_server, alpaca_broker, aapl):
    order = services.order_place(broker=alpaca_broker, security=aapl, side="buy", quantity_nano=2_500_000_000,
                                 client_order_id="mint-43-buy", actor="task:mint")
    order = services.order_cancel(order=order, actor="user:1")
    assert order.status == BrokerOrder.Status.CANCELLED
    assert ("DELETE", f"/v2/orders/{ORDER_ID}") in [(r[0], r[1]) for r in alpaca_server.requests]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "1e999999", "0.0000000001", "abc"])
def test_impossible_broker_quantities_refused(value):
    from custody.brokers.alpaca import quantity_to_nano

    with pytest.raises(BrokerError):
        quantity_to_nano(value)


def test_credentials_never_go_to_a_base_url_off_the_allowlist(alpaca_server, custodian, aapl, monkeypatch):
    """The allowlist is checked when the broker row is validated and again before any call."""
    from django.core.exceptions import ValidationError

    from custody.brokers import get_adapter
    from custody.brokers.base import BrokerError

    monkeypatch.setenv("ALPACA_TEST_API_KEY", "PKTEST0000000000")
    monkeypatch.setenv("ALPACA_TEST_SECRET_KEY", "secret-test-key")
    broker = Broker(code="evil", name="Elsewhere", kind=Broker.Kind.ALPACA, custodian=custodian,
                    api_base_url=alpaca_server.url, credentials_env_prefix="ALPACA_TEST")
    with pytest.raises(ValidationError):
        broker.full_clean()
    broker.save()  # written behind the form's back: the adapter still refuses to send anything
    with pytest.raises(BrokerError) as refused:
        get_adapter(broker)
    assert refused.value.code == "base_url_refused"
