"""No order after a cancel: the buy order is claimed under the mint's row lock, in the transaction that
moves it to order_placed, before the broker hears of it. A cancel at any point before the claim leaves
nothing to send; a cancel at any point after it is refused."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from custody.models import BrokerOrder, SimulatedOrder
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.lifecycle import TransitionRefused
from mint_redeem.services import mints


def funded_mint(mm, operations):
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="3", wallet_id=mm.wallets["ethereum"].pk, funding="cash",
                                        actor="test")
    return services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents, reference="W", user=operations)


def cancel(mint):
    return services.mint_cancel(mint=mint, actor="mm", reason="changed my mind")


def assert_cancelled_without_an_order(mint, mm):
    mint.refresh_from_db()
    assert mint.state == "cancelled"
    assert not BrokerOrder.objects.exists() and not SimulatedOrder.objects.exists()
    assert selectors.balance(account=f"participant/{mm.participant.pk}/cash", asset="USD").posted == 0
    assert integrity.verify() == []


def assert_cancel_refused_and_order_live(mint):
    head = selectors.head()
    with pytest.raises(TransitionRefused):
        cancel(mint)
    assert selectors.head() == head
    mint.refresh_from_db()
    assert mint.state != "cancelled" and mint.broker_order_id is not None


def test_cancel_before_the_task_runs(market, mm, operations):
    mint = funded_mint(mm, operations)
    cancel(mint)
    services.mint_advance(mint=mint, actor="task")
    assert_cancelled_without_an_order(mint, mm)


def test_cancel_after_the_task_read_the_mint_but_before_its_claim(market, mm, operations, monkeypatch):
    mint = funded_mint(mm, operations)
    claim = mints._claim_order

    def cancel_first(m, **kwargs):
        cancel(mint)
        return claim(m, **kwargs)

    monkeypatch.setattr(mints, "_claim_order", cancel_first)
    services.mint_advance(mint=mint, actor="task")
    assert_cancelled_without_an_order(mint, mm)


def test_cancel_after_the_claim_but_before_the_broker_call(market, mm, operations, monkeypatch):
    mint = funded_mint(mm, operations)
    submit = mints.custody_services.order_submit
    seen = []

    def cancel_then_submit(*, order, actor):
        assert_cancel_refused_and_order_live(mint)
        seen.append(order.pk)
        return submit(order=order, actor=actor)

    monkeypatch.setattr(mints.custody_services, "order_submit", cancel_then_submit)
    services.mint_advance(mint=mint, actor="task")
    assert seen and SimulatedOrder.objects.count() == 1


def test_cancel_after_the_order_went_out(market, mm, operations):
    mint = funded_mint(mm, operations)
    services.mint_advance(mint=mint, actor="task")
    assert_cancel_refused_and_order_live(mint)


@pytest.fixture
def no_worker():
    """Tasks queued on commit go to a queue no worker reads, so the session's Celery worker (started by
    other tests) cannot take the mint's automatic step in the middle of the interleaving."""
    from config.celery import app

    before = app.conf.get("task_default_queue")
    app.conf.task_default_queue = "nobody-reads-this"
    yield
    app.conf.task_default_queue = before


def _in_thread(fn):
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_cancel_holding_the_lock_makes_the_claim_wait_and_give_up(committed, no_worker, market, mm, operations,
                                                                    monkeypatch):
    mint = funded_mint(mm, operations)
    release = mints.compliance_services.notional_usage_release
    holding = threading.Event()

    def slow_release(**kwargs):  # runs inside the cancel's transaction, with the mint row locked
        holding.set()
        time.sleep(0.5)
        return release(**kwargs)

    monkeypatch.setattr(mints.compliance_services, "notional_usage_release", slow_release)
    canceller, cancelled = _in_thread(lambda: cancel(mint))
    assert holding.wait(10)
    services.mint_advance(mint=mint, actor="task")  # blocks on the row lock, then finds it cancelled
    canceller.join(10)
    assert "error" not in cancelled, cancelled
    assert_cancelled_without_an_order(mint, mm)


def test_a_claim_holding_the_lock_makes_the_cancel_wait_and_fail(committed, no_worker, market, mm, operations,
                                                                  monkeypatch):
    mint = funded_mint(mm, operations)
    create = mints.trading.custody_services.order_create
    holding = threading.Event()

    def slow_create(**kwargs):  # inside the claim's transaction, with the mint row locked
        order = create(**kwargs)
        holding.set()
        time.sleep(0.5)
        return order

    monkeypatch.setattr(mints.trading.custody_services, "order_create", slow_create)
    advancer, advanced = _in_thread(lambda: services.mint_advance(mint=mint, actor="task"))
    assert holding.wait(10)
    with pytest.raises(TransitionRefused):
        cancel(mint)
    advancer.join(10)
    assert "error" not in advanced, advanced
    mint.refresh_from_db()
    assert mint.state != "cancelled" and mint.broker_order_id is not None
    assert SimulatedOrder.objects.count() == 1
