"""Every refusal is a clear, machine-readable error that changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import KycStatus, Participant, Wallet
from custody import services as custody_services
from custody.models import TokenProduct
from custody.reserves import CoverageRefusal
from ledger import selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest

from .conftest import SignedClient
from .test_end_to_end import minted_tokens


def post_mint(api, mm, **overrides):
    payload = {"product": "AAPLx", "chain": "ethereum", "quantity": "10", "wallet": mm.wallets["ethereum"].pk,
               "funding": "cash", **overrides}
    return api.post("/api/v1/mints", payload)


def refuse(mm, how):
    """Break one compliance condition of `mm`, the way the compliance app records it."""
    p = mm.participant
    if how == "kyc_not_approved":
        Participant.objects.filter(pk=p.pk).update(kyc_status=KycStatus.PENDING)
    elif how == "kyc_expired":
        Participant.objects.filter(pk=p.pk).update(kyc_expires_on=timezone.localdate() - timedelta(days=1))
    elif how == "participant_blocked":
        Participant.objects.filter(pk=p.pk).update(sanctions_hold=True)
    elif how == "wallet_not_verified":
        Wallet.objects.filter(pk=mm.wallets["ethereum"].pk).update(status="pending")
    elif how == "wallet_frozen":
        Wallet.objects.filter(pk=mm.wallets["ethereum"].pk).update(frozen=True)
    elif how == "wallet_sanctioned":
        Wallet.objects.filter(pk=mm.wallets["ethereum"].pk).update(sanctions_hold=True)
    elif how == "below_minimum":
        Participant.objects.filter(pk=p.pk).update(min_request_cents=10_000_000_00)
    elif how == "above_request_limit":
        Participant.objects.filter(pk=p.pk).update(max_request_cents=100_00)
    elif how == "above_daily_limit":
        Participant.objects.filter(pk=p.pk).update(daily_limit_cents=100_00)


GATES = ["kyc_not_approved", "kyc_expired", "participant_blocked", "wallet_not_verified", "wallet_frozen",
         "wallet_sanctioned", "below_minimum", "above_request_limit", "above_daily_limit"]


@pytest.mark.parametrize("gate", GATES)
def test_each_compliance_gate_refuses_a_mint_request(market, mm, api, gate):
    refuse(mm, gate)
    head = selectors.head()
    response = post_mint(api, mm)
    assert response.status_code in (403, 422), response.content
    assert response.json()["error"]["code"] == gate
    assert MintRequest.objects.count() == 0
    assert selectors.head() == head


@pytest.mark.parametrize("gate", ["participant_blocked", "wallet_frozen", "kyc_expired"])
def test_the_gate_runs_again_before_the_chain_step(market, mm, operations, gate):
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                        actor="test")
    services.mint_shares_receive(mint=mint, custodian_confirmation="C-1", user=operations)
    refuse(mm, gate)
    services.mint_start_minting(mint=mint, actor="task:test")
    mint.refresh_from_db()
    assert mint.state == "failed" and gate in mint.reason
    assert not ChainOperation.objects.filter(request_reference=mint.stream).exists()
    assert selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").pending_in == 0


def test_a_mint_is_refused_at_the_chain_step_without_coverage(market, mm, operations):
    minted_tokens(mm, operations, quantity="4")
    second = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                          quantity="2", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                          actor="test")
    services.mint_shares_receive(mint=second, custodian_confirmation="C-2", user=operations)
    # Shares leave custody behind the primary market's back (an operations error): 6 tokens, 3 shares.
    custody_services.shares_deliver_in_kind(custodian=market.custodian, security=market.security,
                                            quantity_nano=3 * 10**9, to_account="external/elsewhere",
                                            reference="oops-1", custodian_confirmation="X", actor="user:1")
    with pytest.raises(CoverageRefusal) as refused:
        services.mint_start_minting(mint=second, actor="task:test")
    assert refused.value.code == "insufficient_coverage"
    second.refresh_from_db()
    assert second.state == "shares_received"  # waits; retried by the beat once shares are back
    assert not ChainOperation.objects.filter(request_reference=second.stream).exists()


def test_a_paused_product_mints_nothing(market, mm, api, operations):
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                        actor="test")
    services.mint_shares_receive(mint=mint, custodian_confirmation="C-3", user=operations)
    TokenProduct.objects.filter(pk=market.product.pk).update(status=TokenProduct.Status.PAUSED)
    with pytest.raises(CoverageRefusal) as refused:
        services.mint_start_minting(mint=mint, actor="task:test")
    assert refused.value.code == "minting_paused"
    response = post_mint(api, mm)
    assert response.status_code == 409 and response.json()["error"]["code"] == "minting_paused"


@pytest.mark.parametrize("payload,code", [
    ({"quantity": "abc"}, "invalid_quantity"),
    ({"quantity": "-1"}, "invalid_quantity"),
    ({"quantity": "0.0000000001"}, "invalid_quantity"),
    ({"quantity": "NaN"}, "invalid_quantity"),
    ({"product": "NOPE"}, "unknown_product"),
    ({"chain": "base"}, "unknown_chain"),
    ({"funding": "barter"}, "invalid"),
])
def test_bad_input_is_refused_with_a_code(market, mm, api, payload, code):
    response = post_mint(api, mm, **payload)
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["code"] == code or (code == "invalid" and error["code"] in ("invalid", "invalid_choice"))
    assert MintRequest.objects.count() == 0


def test_quantities_that_are_not_whole_base_units_are_refused(market, mm, api):
    # Solana AAPLx has 9 decimals: 1e-9 share is one base unit; with multiplier 3, a third is not exact.
    TokenProduct.objects.filter(pk=market.product.pk).update(multiplier=3)
    response = post_mint(api, mm, chain="solana", wallet=mm.wallets["solana"].pk, quantity="0.000000001")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "quantity_not_representable"


def test_a_wallet_on_another_chain_or_of_another_participant(market, mm, other_mm, api):
    assert post_mint(api, mm, wallet=mm.wallets["solana"].pk).json()["error"]["code"] == "wallet_chain_mismatch"
    response = post_mint(api, mm, wallet=other_mm.wallets["ethereum"].pk)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_wallet"


def test_cancellation_refunds_and_is_refused_once_minting(market, mm, api, operations):
    mint = post_mint(api, mm).json()
    services.mint_cash_record(mint=MintRequest.objects.get(pk=mint["id"]), amount_cents=mint["cash_due_cents"],
                              reference="W-1", user=operations)
    cash = f"participant/{mm.participant.pk}/cash"
    assert selectors.balance(account=cash, asset="USD").posted == -mint["cash_due_cents"]
    response = api.post(f"/api/v1/mints/{mint['id']}/cancel", {"reason": "changed my mind"})
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert selectors.balance(account=cash, asset="USD").posted == 0
    again = api.post(f"/api/v1/mints/{mint['id']}/cancel", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "transition_not_allowed"

    in_kind = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                           quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                           actor="test")
    services.mint_shares_receive(mint=in_kind, custodian_confirmation="C-9", user=operations)
    services.mint_start_minting(mint=in_kind, actor="task:test")
    response = api.post(f"/api/v1/mints/{in_kind.pk}/cancel", {})
    assert response.status_code == 409


def test_a_market_maker_never_sees_another_ones_requests(market, mm, other_mm, api):
    mint = post_mint(api, mm).json()
    other = SignedClient(other_mm)
    assert other.get(f"/api/v1/mints/{mint['id']}").status_code == 404
    assert other.post(f"/api/v1/mints/{mint['id']}/cancel", {}).status_code == 404
    assert other.get("/api/v1/mints").json()["results"] == []
    assert MintRequest.objects.get(pk=mint["id"]).state == "accepted"


def test_underfunding_is_refused(market, mm, api, operations):
    mint = post_mint(api, mm).json()
    with pytest.raises(services.RequestError) as refused:
        services.mint_cash_record(mint=MintRequest.objects.get(pk=mint["id"]), amount_cents=1, reference="W",
                                  user=operations)
    assert refused.value.code == "insufficient_funding"


def test_four_eyes_above_the_threshold(market, mm, api, operations, approver):
    big = post_mint(api, mm, quantity="300").json()  # $60,000 > $50,000 threshold
    assert big["needs_approval"] is True
    mint = MintRequest.objects.get(pk=big["id"])
    services.mint_cash_record(mint=mint, amount_cents=big["cash_due_cents"], reference="W-2", user=operations)
    services.mint_advance(mint=mint, actor="task:test")
    mint.refresh_from_db()
    assert mint.state == "funded"  # waits for a second person
    from mint_redeem.services.approvals import PermissionRefused

    with pytest.raises(PermissionRefused):  # operations record funding; approvers approve
        services.request_approve(request=mint, user=operations)
    services.request_approve(request=mint, user=approver)
    services.mint_advance(mint=mint, actor="task:test")
    mint.refresh_from_db()
    assert mint.state == "settling"


def test_orders_wait_for_the_market_to_open(market, mm, api, operations):
    from datetime import datetime

    from custody import calendar

    market.terms.market_hours_only = True
    market.terms.save()
    mint = MintRequest.objects.get(pk=post_mint(api, mm).json()["id"])
    services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents, reference="W-3", user=operations)
    saturday = datetime.fromisoformat("2026-11-21T15:00:00+00:00")
    assert not calendar.is_market_open(saturday)
    services.mint_advance(mint=mint, actor="task:test", now=saturday)
    mint.refresh_from_db()
    assert mint.state == "funded" and mint.broker_order_id is None
    monday_open = calendar.next_market_open(saturday)
    services.mint_advance(mint=mint, actor="task:test", now=monday_open)
    mint.refresh_from_db()
    assert mint.state == "settling"


def test_signature_check_authenticates_and_changes_nothing(market, mm, api):
    head = selectors.head()
    response = api.post("/api/v1/signature-check", {})
    assert response.status_code == 200
    assert response.json()["participant"] == mm.participant.pk
    assert selectors.head() == head
    unsigned = api.client.post("/api/v1/signature-check", data=b"{}", content_type="application/json",
                               HTTP_AUTHORIZATION=f"ApiKey {mm.credentials.token}")
    assert unsigned.status_code == 401


def test_a_mint_whose_chain_operation_is_in_flight_cannot_be_failed(market, mm, operations):
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                        actor="test")
    services.mint_shares_receive(mint=mint, custodian_confirmation="C-7", user=operations)
    services.mint_start_minting(mint=mint, actor="task:test")
    ChainOperation.objects.filter(request_reference=mint.stream).update(status="broadcast", tx_hash="0xfeed")
    with pytest.raises(services.RequestError) as refused:
        services.mint_fail(mint=mint, actor="user:ops", reason="looks stuck")
    assert refused.value.code == "chain_operation_in_flight"
    mint.refresh_from_db()
    assert mint.state == "minting"
    assert selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").pending_in == 10**18
    # While it is still only pending (never signed), failing it releases the reserved tokens.
    ChainOperation.objects.filter(request_reference=mint.stream).update(status="pending", tx_hash="")
    services.mint_fail(mint=mint, actor="user:ops", reason="wallet compromised")
    assert selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").pending_in == 0
