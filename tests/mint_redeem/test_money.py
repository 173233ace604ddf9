"""Cash mints reconcile to the cent: cash received (+ any top-up) = cost of the shares + the issuer's fee
+ refund. Fees are kept, price moves past the buffer ask for a top-up, and partial fills mint what was
bought. All on real PostgreSQL and the simulated broker."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from custody import services as custody_services
from custody.models import BrokerOrder, Fill, SimulatedPrice
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest

FAR_FUTURE = date(2100, 1, 1)


def cash(account: str) -> int:
    return selectors.balance(account=account, asset="USD").posted


def participant_cash(mm) -> int:
    return cash(f"participant/{mm.participant.pk}/cash")


def event_amounts(mint, state: str) -> dict:
    events = [e for e in selectors.read_stream(stream=mint.stream) if e.type == f"mint.{state}"]
    return {k: int(v) for k, v in events[-1].data["amounts"].items()}


def new_cash_mint(mm, quantity="10") -> MintRequest:
    return services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity=quantity, wallet_id=mm.wallets["ethereum"].pk, funding="cash",
                                        actor="test")


def run_to_chain(mint: MintRequest, operations, *, extra_cents: int = 0) -> MintRequest:
    """Fund the mint, let the order fill and settle, and take every automatic step."""
    services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents + extra_cents, reference="WIRE",
                              user=operations)
    services.mint_advance(mint=mint, actor="task:test")
    custody_services.fills_settle_due(today=FAR_FUTURE, actor="task:test")
    return services.mint_advance(mint=mint, actor="task:test")


def test_the_fee_is_kept_and_only_the_buffer_is_refunded(market, mm, operations):
    mint = run_to_chain(new_cash_mint(mm), operations)
    assert mint.state == "minting"
    refund = event_amounts(mint, "minting")["refund_cents"]
    assert mint.fee_cents == 2_000_00 * 10 // 10_000  # 10 bps of the $2,000 notional
    assert mint.cash_received_cents == mint.cost_cents + mint.fee_cents + refund
    assert cash("issuer_revenue/fees") == -mint.fee_cents
    assert cash("issuer_cash/bank") == mint.fee_cents  # received - paid to the broker - refunded
    assert participant_cash(mm) == 0
    assert integrity.verify() == []


def test_a_cost_above_the_cash_received_waits_for_a_top_up(market, mm, operations):
    mint = new_cash_mint(mm)
    # The price moves 10% before the order fills: far past the 2% buffer.
    SimulatedPrice.objects.filter(broker=market.broker).update(price=Decimal("220.00"))
    mint = run_to_chain(mint, operations)
    assert mint.state == "topup_due"
    shortfall = mint.cost_cents + mint.fee_cents - mint.cash_received_cents
    assert shortfall > 0 and services.mint_shortfall_cents(mint) == shortfall
    assert participant_cash(mm) == shortfall  # owed by the participant, not absorbed silently
    assert not ChainOperation.objects.filter(request_reference=mint.stream).exists()

    head = selectors.head()
    with pytest.raises(services.RequestError) as refused:
        services.mint_topup_record(mint=mint, amount_cents=shortfall - 1, reference="TOPUP", user=operations)
    assert refused.value.code == "insufficient_funding" and selectors.head() == head

    services.mint_topup_record(mint=mint, amount_cents=shortfall + 500, reference="TOPUP", user=operations)
    mint = services.mint_advance(mint=mint, actor="task:test")
    assert mint.state == "minting"
    refund = event_amounts(mint, "minting")["refund_cents"]
    assert refund == 500
    assert mint.cash_received_cents == mint.cost_cents + mint.fee_cents + refund
    assert participant_cash(mm) == 0 and cash("issuer_revenue/fees") == -mint.fee_cents
    assert integrity.verify() == []


def test_an_unpaid_top_up_fails_with_the_shares_owed_in_kind(market, mm, operations):
    SimulatedPrice.objects.filter(broker=market.broker).update(price=Decimal("220.00"))
    mint = run_to_chain(new_cash_mint(mm), operations)
    services.mint_fail(mint=mint, actor="user:ops", reason="top-up not paid")
    mint.refresh_from_db()
    amounts = event_amounts(mint, "failed")
    assert mint.state == "failed" and amounts["shares_owed_nano"] == 10 * 10**9
    assert amounts["participant_owes_cents"] == mint.cost_cents + mint.fee_cents - mint.cash_received_cents
    assert "refund_cents" in amounts and amounts["refund_cents"] == 0


def test_a_partial_fill_mints_what_was_bought(market, mm, operations):
    # A DAY order that finds 4 of the 10 shares expires at the close with the rest unfilled.
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=4 * 10**9)
    mint = new_cash_mint(mm)
    quoted_fee = mint.fee_cents
    mint = run_to_chain(mint, operations)
    order = BrokerOrder.objects.get(pk=mint.broker_order_id)
    assert (order.status, order.filled_quantity_nano) == ("cancelled", 4 * 10**9)
    assert mint.state == "minting"
    assert (mint.quantity_nano, int(mint.token_base_units)) == (4 * 10**9, 4 * 10**18)
    assert mint.fee_cents == -(-quoted_fee * 4 // 10)  # the fee on what was bought
    fills = Fill.objects.filter(order=order)
    assert mint.cost_cents == sum(f.gross_cents + f.fee_cents for f in fills)  # spent, not refunded
    refund = event_amounts(mint, "minting")["refund_cents"]
    assert mint.cash_received_cents == mint.cost_cents + mint.fee_cents + refund
    assert selectors.balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 4 * 10**9
    operation = ChainOperation.objects.get(request_reference=mint.stream)
    assert int(operation.amount_base_units) == 4 * 10**18
    assert participant_cash(mm) == 0 and cash("issuer_cash/bank") == mint.fee_cents
    assert integrity.verify() == []


def test_an_order_that_buys_nothing_fails_the_mint_and_refunds_everything(market, mm, operations):
    SimulatedPrice.objects.filter(broker=market.broker).update(liquidity_nano=0)
    mint = run_to_chain(new_cash_mint(mm), operations)
    assert mint.state == "failed"
    assert event_amounts(mint, "failed")["refund_cents"] == mint.cash_received_cents
    assert participant_cash(mm) == 0 and cash("issuer_cash/bank") == 0 and cash("issuer_revenue/fees") == 0
