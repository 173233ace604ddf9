"""Reliability: the Alpaca adapter and the custody services when the broker misbehaves, against a real local
HTTP server answering in Alpaca's recorded format (tests/custody/fixtures/alpaca) with faults injected: rate
limits and 5xx (asked again), an order the broker made whose answer was lost (the connection dropped, or no
answer before the deadline), answers nobody can read, and the same fill listed twice.

What must hold: exactly one order at the broker per client_order_id, whatever the retries; each fill recorded
once; an unreadable answer is a clear, retryable error (broker_unavailable / broker_bad_response) that records
nothing (the ledger's position and the fill table unchanged); and the ledger verifies."""

from __future__ import annotations

import json
import threading
import time

import pytest

from custody import services
from custody.brokers import BrokerError
from custody.models import BrokerOrder, Fill
from custody.services import CustodyError
from ledger import selectors
from ledger.integrity import verify

from . import test_alpaca_adapter as recorded
from .test_alpaca_adapter import ORDER_ID, AlpacaStub, _Handler, adapter, fixture

pytestmark = pytest.mark.reliability
alpaca_broker = recorded.alpaca_broker  # the Broker row, pointed at this module's alpaca_server

FILLS = "/v2/account/activities/FILL"


class FaultyHandler(_Handler):
    """Before answering as Alpaca would, takes the next fault queued for the path, if any:
    ("status", code, fixture name)     answer that error instead;
    ("lost", None, None)               do the work (an order is made), then drop the connection unanswered;
    ("slow", seconds, None)            do the work, and start answering only `seconds` later;
    ("body", status, raw bytes)        answer these bytes instead of the real answer."""

    def _fault(self):
        queue = self.server.faults.get(self.path.split("?")[0], [])
        return queue.pop(0) if queue else None

    def _serve(self, real):
        fault = self._fault()
        if fault is None:
            return real(self)
        kind, arg, extra = fault
        if kind == "status":
            self._record()
            return self._send(arg, fixture(extra))
        if kind == "body":
            self._record()
            self.send_response(arg)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(extra)))
            self.end_headers()
            return self.wfile.write(extra)
        if kind == "lost":
            self.wfile = _Discard()  # the work is done, its answer never leaves
            real(self)
            self.close_connection = True
            return None
        if kind == "slow":
            self.wfile = _Late(self.wfile, arg)
            return real(self)
        raise AssertionError(kind)

    def do_POST(self):
        return self._serve(_Handler.do_POST)

    def do_GET(self):
        return self._serve(_Handler.do_GET)


class _Late:
    def __init__(self, wfile, delay_s: float):
        self.wfile, self.delay_s = wfile, delay_s

    def write(self, data):
        if self.delay_s:
            time.sleep(self.delay_s)
            self.delay_s = 0
        return self.wfile.write(data)

    def flush(self):
        self.wfile.flush()


class _Discard:
    def write(self, data):
        return len(data)

    def flush(self):
        pass


class FaultyAlpaca(AlpacaStub):
    def __init__(self):
        super().__init__()
        self.RequestHandlerClass = FaultyHandler
        self.faults: dict[str, list] = {}

    def posts(self) -> int:
        return sum(1 for method, path, *_ in self.requests if method == "POST")


@pytest.fixture
def alpaca_server(settings):
    settings.BROKER_RETRY_WAIT_S = 0.05
    settings.BROKER_TIMEOUT_S = 1.0
    server = FaultyAlpaca()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _unchanged():
    """What a refused answer must leave as it was: the ledger's head and every fill."""
    return selectors.head(), list(Fill.objects.values_list("id", flat=True))


def test_rate_limits_and_server_errors_are_asked_again_and_place_one_order(alpaca_server):
    alpaca_server.faults["/v2/orders"] = [("status", 429, "error_rate_limited.json"),
                                          ("status", 500, "error_internal.json"),
                                          ("status", 503, "error_internal.json")]
    snapshot = adapter(alpaca_server).place_order(client_order_id="mint-7-buy", ticker="AAPL", side="buy",
                                                  quantity_nano=10**9)
    assert (snapshot.broker_order_id, snapshot.status) == (ORDER_ID, "accepted")
    assert alpaca_server.posts() == 4 and list(alpaca_server.submitted) == ["mint-7-buy"]


def test_errors_that_outlast_the_retries_fail_clearly(alpaca_server):
    alpaca_server.faults["/v2/orders"] = [("status", 500, "error_internal.json")] * 4
    with pytest.raises(BrokerError) as failed:
        adapter(alpaca_server).place_order(client_order_id="mint-8-buy", ticker="AAPL", side="buy",
                                           quantity_nano=10**9)
    assert failed.value.code == "broker_unavailable" and "internal server error" in str(failed.value)
    assert alpaca_server.submitted == {}


@pytest.mark.parametrize("fault", [("lost", None, None), ("slow", 3.0, None)], ids=["connection-dropped", "timeout"])
def test_an_order_whose_answer_never_came_is_placed_once(alpaca_server, alpaca_broker, aapl, fault):
    """The broker made the order but the answer was lost: the order stays `new`, the call fails retryably,
    and the next sync sends it again under the same client_order_id, which the broker answers with the first
    order. One order at the broker, its id recorded."""
    alpaca_server.faults["/v2/orders"] = [fault]
    with pytest.raises(CustodyError) as failed:
        services.order_place(broker=alpaca_broker, security=aapl, side="buy", quantity_nano=2_500_000_000,
                             client_order_id="mint-9-buy", actor="task:mint")
    assert failed.value.code == "broker_unavailable"
    order = BrokerOrder.objects.get(client_order_id="mint-9-buy")
    assert order.status == BrokerOrder.Status.NEW and list(alpaca_server.submitted) == ["mint-9-buy"]

    assert services.order_sync(order=order, actor="task:sync") == []
    order.refresh_from_db()
    assert (order.status, order.broker_order_id) == (BrokerOrder.Status.ACCEPTED, ORDER_ID)
    assert list(alpaca_server.submitted) == ["mint-9-buy"]  # the retry met the broker's deduplication
    assert BrokerOrder.objects.filter(client_order_id="mint-9-buy").count() == 1
    assert verify() == []


def test_a_fill_listed_twice_is_recorded_once(alpaca_server, alpaca_broker, aapl):
    order = services.order_place(broker=alpaca_broker, security=aapl, side="buy", quantity_nano=2_500_000_000,
                                 client_order_id="mint-42-buy", actor="task:mint")
    alpaca_server.order_state = "filled"
    activities = fixture("activities_fill_page1.json") + fixture("activities_fill_page2.json")
    ours = [a for a in activities if a["order_id"] == ORDER_ID]
    listed_twice = json.dumps(activities + ours).encode()  # every fill of ours, twice
    alpaca_server.faults[FILLS] = [("body", 200, listed_twice)]
    fills = services.order_sync(order=order, actor="task:sync")
    assert sorted(f.broker_fill_id for f in fills) == sorted(a["id"] for a in ours)
    assert services.order_sync(order=order, actor="task:sync") == []  # and again, nothing new
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity_nano == 2_500_000_000
    assert selectors.balance(account="in_transit/alpaca/AAPL", asset="shares:AAPL").pending_in == 2_500_000_000
    assert verify() == []


@pytest.mark.parametrize("answer", [
    ("body", 200, b"<html><body>502 Bad Gateway</body></html>"),
    ("body", 200, b'{"id": "61e69015-8549-4bfd-b9c3-01e75843f47d"}'),
    ("body", 200, b"[{\"activity_type\": \"FILL\", \"order_id\": \"" + ORDER_ID.encode() + b"\"}]"),
    ("differing-duplicate", None, None),
], ids=["html", "order-missing-fields", "fill-missing-fields", "same-fill-id-different-quantity"])
def test_an_unreadable_answer_records_nothing(alpaca_server, alpaca_broker, aapl, answer):
    order = services.order_place(broker=alpaca_broker, security=aapl, side="buy", quantity_nano=2_500_000_000,
                                 client_order_id="mint-43-buy", actor="task:mint")
    alpaca_server.order_state = "filled"
    if answer[0] == "differing-duplicate":
        activities = [a for a in fixture("activities_fill_page1.json") + fixture("activities_fill_page2.json")
                      if a["order_id"] == ORDER_ID]
        answer = ("body", 200, json.dumps(activities + [{**activities[0], "qty": "0.5"}]).encode())
        path = FILLS
    else:
        path = FILLS if b"activity_type" in answer[2] else "/v2/orders:by_client_order_id"
    alpaca_server.faults[path] = [answer]
    before = _unchanged()
    with pytest.raises(CustodyError) as refused:
        services.order_sync(order=order, actor="task:sync")
    assert refused.value.code == "broker_bad_response" and refused.value.http_status == 502
    assert _unchanged() == before
    order.refresh_from_db()
    assert order.status == BrokerOrder.Status.ACCEPTED and order.filled_quantity_nano == 0
    # The broker answers properly again: everything is recorded, once.
    assert len(services.order_sync(order=order, actor="task:sync")) == 2
    assert verify() == []
