"""Over random cash mints (reference and fill prices, partial fills, issuer fees, buffers, broker
commissions, extra cash sent), participant cash, issuer revenue, bank cash and custody shares always
reconcile to the cent and the share, and `ledger verify` passes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.models import Participant
from custody import services as custody_services
from custody.models import Broker, SimulatedPrice
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import ProductTerms

FAR_FUTURE = date(2100, 1, 1)


def posted(account: str, asset: str = "USD") -> int:
    return selectors.balance(account=account, asset=asset).posted


def amounts_of(mint, state: str) -> dict:
    events = [e for e in selectors.read_stream(stream=mint.stream) if e.type == f"mint.{state}"]
    return {k: int(v) for k, v in events[-1].data["amounts"].items()} if events else {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quantity_hundredths=st.integers(1, 10_000),
       reference_price=st.decimals(Decimal("1.00"), Decimal("900.00"), places=2),
       price_move_bps=st.integers(-1_000, 1_000),
       liquidity_share=st.sampled_from([None, 0.0, 0.25, 0.5, 0.999]),
       fee_bps=st.integers(0, 100), buffer_bps=st.integers(0, 500), broker_fee_bps=st.integers(0, 50),
       extra_cents=st.integers(0, 10_000))
def test_cash_mints_reconcile_to_the_cent(market, mm, operations, approver, quantity_hundredths, reference_price,
                                          price_move_bps, liquidity_share, fee_bps, buffer_bps, broker_fee_bps,
                                          extra_cents):
    Participant.objects.filter(pk=mm.participant.pk).update(min_request_cents=1, max_request_cents=10**12,
                                                            daily_limit_cents=10**13)
    participant = f"participant/{mm.participant.pk}/cash"
    before = {a: posted(a) for a in (participant, "issuer_cash/bank", "issuer_revenue/fees")}
    shares_before = posted("custody/bny/AAPL", "shares:AAPL")

    ProductTerms.objects.filter(pk=market.terms.pk).update(reference_price=reference_price, fee_bps=fee_bps,
                                                           cash_buffer_bps=buffer_bps)
    Broker.objects.filter(pk=market.broker.pk).update(sim_fee_bps=broker_fee_bps)
    quantity_nano = quantity_hundredths * 10**7
    fill_price = (reference_price * (10_000 + price_move_bps) / 10_000).quantize(Decimal("0.000001"))
    liquidity = None if liquidity_share is None else int(quantity_nano * Decimal(str(liquidity_share)))
    SimulatedPrice.objects.filter(broker=market.broker).update(price=fill_price, liquidity_nano=liquidity)

    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity=str(Decimal(quantity_hundredths) / 100),
                                        wallet_id=mm.wallets["ethereum"].pk, funding="cash", actor="test")
    services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents + extra_cents, reference="W",
                              user=operations)
    if mint.needs_approval:
        services.request_approve(request=mint, user=approver)
    services.mint_advance(mint=mint, actor="task")
    custody_services.fills_settle_due(today=FAR_FUTURE, actor="task")
    mint = services.mint_advance(mint=mint, actor="task")
    topup = 0
    if mint.state == "topup_due":
        topup = services.mint_shortfall_cents(mint)
        services.mint_topup_record(mint=mint, amount_cents=topup, reference="T", user=operations)
        mint = services.mint_advance(mint=mint, actor="task")
    delta = {a: posted(a) - before[a] for a in before}
    bought = posted("custody/bny/AAPL", "shares:AAPL") - shares_before

    if mint.state == "failed":  # nothing bought (no liquidity, or less than one base unit)
        refund = amounts_of(mint, "failed").get("refund_cents", 0)
        assert bought == mint.quantity_nano if mint.cost_cents is not None else bought == 0
        assert mint.cash_received_cents == (mint.cost_cents or 0) + (mint.fee_cents if mint.cost_cents else 0) \
            + refund
    else:
        assert mint.state == "minting"
        refund = amounts_of(mint, "minting")["refund_cents"]
        assert bought == mint.quantity_nano <= quantity_nano
        assert mint.cash_received_cents == mint.cost_cents + mint.fee_cents + refund
        assert int(mint.token_base_units) == mint.quantity_nano * 10**9  # 18 decimals, multiplier 1
        assert mint.cash_received_cents - mint.cash_due_cents - extra_cents == topup
    charged = mint.fee_cents if mint.cost_cents is not None else 0
    assert delta[participant] == 0
    assert delta["issuer_revenue/fees"] == -charged
    assert delta["issuer_cash/bank"] == mint.cash_received_cents - (mint.cost_cents or 0) - refund == charged
    assert integrity.verify() == []
