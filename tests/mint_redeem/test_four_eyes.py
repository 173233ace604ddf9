"""Four eyes on every path that can create tokens or release shares or cash: one person (a superuser,
who holds every permission) can never both approve a request and record what happens to it, in either
order; two people can."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model

from compliance.roles import FourEyesViolation
from custody import services as custody_services
from ledger import selectors
from mint_redeem import services
from mint_redeem.models import MintRequest, ProductTerms, Redemption
from mint_redeem.services.approvals import PermissionRefused

from .conftest import broadcast
from .test_end_to_end import minted_tokens


@pytest.fixture
def boss(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-not-used-0")


@pytest.fixture
def low_threshold(market):
    ProductTerms.objects.filter(pk=market.terms.pk).update(approval_threshold_cents=100)


def refused(fn, exc=FourEyesViolation):
    head = selectors.head()
    with pytest.raises(exc):
        fn()
    assert selectors.head() == head


def new_mint(mm, funding):
    return services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding=funding,
                                        actor="test")


def new_redemption(mm, payout):
    return services.redemption_request_create(participant=mm.participant, product_symbol="AAPLx",
                                              chain="ethereum", quantity="1", wallet_id=mm.wallets["ethereum"].pk,
                                              payout=payout, actor="test")


def approve(request, user):
    services.request_approve(request=type(request).objects.get(pk=request.pk), user=user)


# --- cash mint: funding is the recorded act ---------------------------------------------------------

def fund(mint, user):
    mint = MintRequest.objects.get(pk=mint.pk)
    services.mint_cash_record(mint=mint, amount_cents=mint.cash_due_cents, reference="W", user=user)


def test_cash_mint_record_then_approve(market, mm, boss, approver, low_threshold):
    mint = new_mint(mm, "cash")
    assert mint.needs_approval
    fund(mint, boss)
    refused(lambda: approve(mint, boss))
    approve(mint, approver)


def test_cash_mint_approve_then_record(market, mm, boss, operations, low_threshold):
    mint = new_mint(mm, "cash")
    approve(mint, boss)
    refused(lambda: fund(mint, boss))
    fund(mint, operations)


# --- in-kind mint: shares received, then the chain step waits for approval ----------------------------

def receive_shares(mint, user):
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=mint.pk), custodian_confirmation="C", user=user)


def test_in_kind_mint_waits_for_approval_before_the_chain(market, mm, operations, approver, low_threshold):
    mint = new_mint(mm, "in_kind")
    receive_shares(mint, operations)
    assert services.mint_advance(mint=mint, actor="task").state == "shares_received"  # waits
    approve(mint, approver)
    assert services.mint_advance(mint=mint, actor="task").state == "minting"


def test_in_kind_mint_record_then_approve(market, mm, boss, low_threshold):
    mint = new_mint(mm, "in_kind")
    receive_shares(mint, boss)
    refused(lambda: approve(mint, boss))
    assert services.mint_advance(mint=mint, actor="task").state == "shares_received"


def test_in_kind_mint_approve_then_record(market, mm, boss, operations, low_threshold):
    mint = new_mint(mm, "in_kind")
    approve(mint, boss)
    refused(lambda: receive_shares(mint, boss))
    receive_shares(mint, operations)
    assert services.mint_advance(mint=mint, actor="task").state == "minting"


# --- redemptions: tokens received (by a person), payout or delivery ----------------------------------

def receive_tokens(redemption, user):
    services.redemption_tokens_receive(redemption=Redemption.objects.get(pk=redemption.pk),
                                       tx_hash="0x" + "11" * 32, actor=f"user:{user.pk}")


def burn(redemption):
    redemption = Redemption.objects.get(pk=redemption.pk)
    broadcast(redemption, "0x" + "22" * 32)
    services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32, actor="task:chain")


@pytest.fixture
def tokens(market, mm, operations):
    minted_tokens(mm, operations)  # below the threshold, before it is lowered


def test_cash_redemption_record_then_approve(tokens, mm, boss, low_threshold):
    redemption = new_redemption(mm, "cash")
    receive_tokens(redemption, boss)
    refused(lambda: approve(redemption, boss))


def test_cash_redemption_approve_then_record(tokens, mm, boss, operations, low_threshold):
    redemption = new_redemption(mm, "cash")
    approve(redemption, boss)
    refused(lambda: receive_tokens(redemption, boss))
    receive_tokens(redemption, operations)
    burn(redemption)
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    custody_services.fills_settle_due(today=date(2100, 1, 1), actor="task")
    redemption = services.redemption_advance(redemption=redemption, actor="task")
    assert redemption.state == "settled"
    refused(lambda: services.redemption_payout_record(redemption=redemption, bank_reference="OUT", user=boss))
    services.redemption_payout_record(redemption=redemption, bank_reference="OUT", user=operations)


def deliver(redemption, user):
    services.redemption_shares_deliver(redemption=Redemption.objects.get(pk=redemption.pk),
                                       custodian_confirmation="D", user=user)


def test_in_kind_redemption_waits_for_approval_before_delivery(tokens, mm, operations, approver, low_threshold):
    redemption = new_redemption(mm, "in_kind")
    receive_tokens(redemption, operations)
    burn(redemption)
    refused(lambda: deliver(redemption, operations), exc=services.RequestError)
    approve(redemption, approver)
    deliver(redemption, operations)
    assert Redemption.objects.get(pk=redemption.pk).state == "shares_delivered"


def test_in_kind_redemption_record_then_approve(tokens, mm, boss, low_threshold):
    redemption = new_redemption(mm, "in_kind")
    receive_tokens(redemption, boss)
    burn(redemption)
    refused(lambda: approve(redemption, boss))


def test_in_kind_redemption_approve_then_record(tokens, mm, boss, operations, low_threshold):
    redemption = new_redemption(mm, "in_kind")
    approve(redemption, boss)
    receive_tokens(redemption, operations)
    burn(redemption)
    refused(lambda: deliver(redemption, boss))
    deliver(redemption, operations)


def test_approving_needs_the_permission_on_every_path(market, mm, operations, low_threshold):
    mint = new_mint(mm, "cash")
    refused(lambda: approve(mint, operations), exc=PermissionRefused)
