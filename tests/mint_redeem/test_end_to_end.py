"""Mints and redemptions from HTTP request to their last off-chain step, with a real Celery worker.

The chain step stops at the outbox row (ChainOperation) until the chains work lands; its
confirmation is recorded through the service the chain executor will call.
"""

from __future__ import annotations

import pytest

from custody import services as custody_services
from custody.models import Fill
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest, Redemption
from mint_redeem.tasks import advance_request

from .conftest import broadcast, wait_for

pytestmark = [pytest.mark.celery]


def mint_state(api, mint_id):
    return api.get(f"/api/v1/mints/{mint_id}").json()


def settle_all_fills():
    """Let settlement day arrive: the same service Celery beat runs daily, on the fills' date."""
    dates = sorted({f.settlement_date for f in Fill.objects.filter(status=Fill.Status.PENDING)})
    for day in dates:
        custody_services.fills_settle_due(today=day, actor="task:settle_fills")


def test_cash_mint_from_request_to_chain_outbox(committed, celery_worker_process, market, mm, api, operations):
    wallet = mm.wallets["ethereum"]
    response = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "10",
                                          "wallet": wallet.pk, "funding": "cash"})
    assert response.status_code == 201, response.content
    mint = response.json()
    assert mint["state"] == "accepted"
    assert mint["token_base_units"] == str(10 * 10**18)
    assert mint["cash_due_cents"] > 200_000  # 10 x $200 plus buffer and fee

    services.mint_cash_record(mint=MintRequest.objects.get(pk=mint["id"]), amount_cents=mint["cash_due_cents"],
                              reference="WIRE-1", user=operations)
    # The worker places the order with the simulated broker, records the fill and starts settling.
    settling = wait_for(lambda: mint_state(api, mint["id"]), lambda m: m["state"] == "settling")
    assert settling["state"] == "settling", settling
    assert selectors.balance(account="in_transit/sim/AAPL", asset="shares:AAPL").pending_in == 10 * 10**9

    settle_all_fills()
    advance_request.delay("mint", mint["id"])
    minting = wait_for(lambda: mint_state(api, mint["id"]), lambda m: m["state"] == "minting")
    assert minting["state"] == "minting", minting

    operation = ChainOperation.objects.get(request_reference=f"mint-{mint['id']}")
    assert (operation.kind, operation.chain, operation.address, int(operation.amount_base_units)) == (
        "mint", "ethereum", wallet.address, 10 * 10**18)
    tokens = selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum")
    assert tokens.pending_in == 10 * 10**18 and tokens.posted == 0
    assert selectors.balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 10 * 10**9
    # The cash splits to the cent: cost of the shares + the issuer's fee (kept) + refund of the buffer.
    record = MintRequest.objects.get(pk=mint["id"])
    refund = int(minting["events"][-1]["data"]["amounts"]["refund_cents"])
    assert record.fee_cents == 200_000 * 10 // 10_000  # 10 bps on a $2,000 notional
    assert record.cash_received_cents == record.cost_cents + record.fee_cents + refund and refund > 0
    assert selectors.balance(account=f"participant/{mm.participant.pk}/cash", asset="USD").posted == 0
    assert selectors.balance(account="issuer_cash/bank", asset="USD").posted == record.fee_cents
    assert selectors.balance(account="issuer_revenue/fees", asset="USD").posted == -record.fee_cents

    types = [e["type"] for e in minting["events"]]
    assert types == ["mint.requested", "mint.accepted", "mint.funded", "mint.order_placed", "mint.filled",
                     "mint.settling", "mint.settled", "mint.minting"]
    assert integrity.verify() == []


def test_in_kind_mint_and_confirmation(committed, celery_worker_process, market, mm, api, operations):
    response = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "solana", "quantity": "2.5",
                                          "wallet": mm.wallets["solana"].pk, "funding": "in_kind"})
    assert response.status_code == 201, response.content
    mint = MintRequest.objects.get(pk=response.json()["id"])
    services.mint_shares_receive(mint=mint, custodian_confirmation="BNY-TX-77", user=operations)
    minting = wait_for(lambda: mint_state(api, mint.pk), lambda m: m["state"] == "minting")
    assert minting["state"] == "minting"
    assert int(minting["token_base_units"]) == 2_500_000_000  # 2.5 tokens at 9 decimals

    broadcast(mint, "5" * 64)
    services.mint_confirm_on_chain(mint=mint, tx_hash="5" * 64, actor="task:chain_executor")
    assert mint_state(api, mint.pk)["state"] == "minted"
    tokens = selectors.balance(account="tokens/solana/AAPLx", asset="tok:AAPLx:solana")
    assert tokens.posted == 2_500_000_000 and tokens.pending_in == 0
    assert integrity.verify() == []


def minted_tokens(mm, operations, quantity="4", chain="ethereum"):
    """Tokens outstanding for `mm`, made through the in-kind path."""
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain=chain,
                                        quantity=quantity, wallet_id=mm.wallets[chain].pk, funding="in_kind",
                                        actor="test")
    services.mint_shares_receive(mint=mint, custodian_confirmation=f"SETUP-{mint.pk}", user=operations)
    services.mint_start_minting(mint=mint, actor="test")
    broadcast(mint, f"0x{mint.pk:064x}")
    services.mint_confirm_on_chain(mint=mint, tx_hash=f"0x{mint.pk:064x}", actor="test")
    return mint


def redemption_state(api, redemption_id):
    return api.get(f"/api/v1/redemptions/{redemption_id}").json()


def test_cash_redemption_to_paid_out(committed, celery_worker_process, market, mm, api, operations):
    minted_tokens(mm, operations)
    response = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "ethereum", "quantity": "4",
                                                "wallet": mm.wallets["ethereum"].pk, "payout": "cash"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "requested" and body["redemption_address"] == "0x" + "cd" * 20
    redemption = Redemption.objects.get(pk=body["id"])

    services.redemption_tokens_receive(redemption=redemption, tx_hash="0x" + "11" * 32, actor="task:deposit_watcher")
    assert ChainOperation.objects.get(request_reference=redemption.stream).kind == "burn"
    broadcast(redemption, "0x" + "22" * 32)
    services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32, actor="task:chain_executor")
    assert selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").posted == 0

    settling = wait_for(lambda: redemption_state(api, redemption.pk), lambda r: r["state"] == "settling")
    assert settling["state"] == "settling", settling
    settle_all_fills()
    advance_request.delay("redemption", redemption.pk)
    settled = wait_for(lambda: redemption_state(api, redemption.pk), lambda r: r["state"] == "settled")
    assert settled["state"] == "settled"
    proceeds = settled["proceeds_cents"]
    assert proceeds > 0
    assert selectors.balance(account=f"participant/{mm.participant.pk}/cash", asset="USD").posted == -proceeds

    services.redemption_payout_record(redemption=redemption, bank_reference="WIRE-OUT-9", user=operations)
    final = redemption_state(api, redemption.pk)
    assert final["state"] == "paid_out"
    assert selectors.balance(account=f"participant/{mm.participant.pk}/cash", asset="USD").posted == 0
    assert selectors.balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 0
    assert integrity.verify() == []


def test_in_kind_redemption(committed, market, mm, api, operations):
    minted_tokens(mm, operations, quantity="3", chain="solana")
    response = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "solana", "quantity": "3",
                                                "wallet": mm.wallets["solana"].pk, "payout": "in_kind"})
    assert response.status_code == 201, response.content
    redemption = Redemption.objects.get(pk=response.json()["id"])
    services.redemption_tokens_receive(redemption=redemption, tx_hash="sig-1", actor="task:deposit_watcher")
    broadcast(redemption, "sig-2")
    services.redemption_confirm_burn(redemption=redemption, tx_hash="sig-2", actor="task:chain_executor")
    services.redemption_shares_deliver(redemption=redemption, custodian_confirmation="BNY-OUT-3", user=operations)
    assert redemption_state(api, redemption.pk)["state"] == "shares_delivered"
    assert selectors.balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 0
    assert selectors.balance(account=f"participant/{mm.participant.pk}/shares", asset="shares:AAPL").posted == 0
    assert integrity.verify() == []


def test_api_bodies_match_their_declared_serializers(committed, market, mm, api, operations):
    """The API writes request bodies directly (for speed); the serializers declare them for the schema.
    Requests in several states, funded and not, must read the same either way."""
    from mint_redeem.serializers import MintSerializer, RedemptionSerializer, mint_body, redemption_body

    minted_tokens(mm, operations, quantity="2")
    created = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "1.5",
                                         "wallet": mm.wallets["ethereum"].pk, "funding": "in_kind"})
    assert created.status_code == 201, created.content
    redeemed = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "ethereum", "quantity": "1",
                                                "wallet": mm.wallets["ethereum"].pk, "payout": "cash"})
    assert redeemed.status_code == 201, redeemed.content
    mints = list(MintRequest.objects.all())
    assert len({m.state for m in mints}) == 2
    for mint in mints:
        assert mint_body(mint) == MintSerializer(mint).data
    assert created.json() == MintSerializer(MintRequest.objects.get(pk=created.json()["id"])).data
    redemption = Redemption.objects.get(pk=redeemed.json()["id"])
    assert redemption_body(redemption) == RedemptionSerializer(redemption).data == redeemed.json()
