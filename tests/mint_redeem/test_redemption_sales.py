"""Redemptions cannot get stuck after the burn: a sell order that ends with shares unsold is retried for
the rest, a person decides after MAX_AUTOMATIC_ORDERS, and a failed redemption leaves the tokens' value
owed on the ledger."""

from __future__ import annotations

from datetime import date

from custody import services as custody_services
from custody.models import BrokerOrder, SimulatedPrice
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.lifecycle import MAX_AUTOMATIC_ORDERS

from .conftest import broadcast
from .test_end_to_end import minted_tokens

FAR_FUTURE = date(2100, 1, 1)


def burned_redemption(mm, operations, quantity="4"):
    minted_tokens(mm, operations, quantity=quantity)
    redemption = services.redemption_request_create(participant=mm.participant, product_symbol="AAPLx",
                                                    chain="ethereum", quantity=quantity,
                                                    wallet_id=mm.wallets["ethereum"].pk, payout="cash",
                                                    actor="test")
    services.redemption_tokens_receive(redemption=redemption, tx_hash="0x" + "11" * 32, actor="watcher")
    broadcast(redemption, "0x" + "22" * 32)
    services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32, actor="task:chain")
    redemption.refresh_from_db()
    assert redemption.state == "burned"
    return redemption


def owed_to(mm) -> int:
    return -selectors.balance(account=f"participant/{mm.participant.pk}/cash", asset="USD").posted


def test_a_part_filled_sale_sells_the_rest_with_the_next_order(market, mm, operations):
    redemption = burned_redemption(mm, operations)
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=10**9)
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "burned"  # one share sold, the order expired: back for the rest
    assert (redemption.sold_quantity_nano, redemption.order_attempts) == (10**9, 1)
    assert redemption.proceeds_cents > 0
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=None)
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "settling"
    orders = BrokerOrder.objects.filter(side="sell").order_by("id")
    assert [o.client_order_id for o in orders] == [redemption.stream, f"{redemption.stream}.2"]
    assert [o.quantity_nano for o in orders] == [4 * 10**9, 3 * 10**9]
    custody_services.fills_settle_due(today=FAR_FUTURE, actor="task")
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "settled" and redemption.sold_quantity_nano == 4 * 10**9
    assert owed_to(mm) == redemption.proceeds_cents
    assert integrity.verify() == []


def test_unsold_orders_are_retried_then_wait_for_a_person(market, mm, operations):
    redemption = burned_redemption(mm, operations)
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=0)
    for _ in range(MAX_AUTOMATIC_ORDERS):
        redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "sale_failed" and redemption.order_attempts == MAX_AUTOMATIC_ORDERS
    # Nothing moves it automatically any more...
    assert services.redemption_advance(redemption=redemption, actor="task").state == "sale_failed"
    # ...until operations retry the sale.
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=None)
    services.redemption_sale_retry(redemption=redemption, user=operations)
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "settling"


def test_failing_after_the_burn_names_what_is_owed(market, mm, operations):
    redemption = burned_redemption(mm, operations)
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=10**9)
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=0)
    for _ in range(MAX_AUTOMATIC_ORDERS - 1):
        redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "sale_failed"
    services.redemption_fail(redemption=redemption, actor="user:ops", reason="market closed for the symbol")
    redemption.refresh_from_db()
    failed = [e for e in selectors.read_stream(stream=redemption.stream) if e.type == "redemption.failed"][-1]
    assert redemption.state == "failed"
    assert int(failed.data["amounts"]["shares_owed_nano"]) == 3 * 10**9
    assert int(failed.data["amounts"]["owed_cents"]) == redemption.proceeds_cents > 0
    assert owed_to(mm) == redemption.proceeds_cents
    assert integrity.verify() == []


def test_a_settled_redemption_whose_payout_fails_stays_owed(market, mm, operations):
    redemption = burned_redemption(mm, operations)
    services.redemption_advance(redemption=redemption, actor="task")
    custody_services.fills_settle_due(today=FAR_FUTURE, actor="task")
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "settled"
    services.redemption_fail(redemption=redemption, actor="user:ops", reason="beneficiary bank rejected the wire")
    redemption.refresh_from_db()
    assert redemption.state == "failed" and owed_to(mm) == redemption.proceeds_cents
