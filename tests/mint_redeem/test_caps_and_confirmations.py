"""The daily cap is charged once, on New York's trading day; chain confirmations are accepted only for
the transaction an operation was broadcast with, once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from compliance import gates
from compliance.models import NotionalUsage, Participant
from ledger import selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation

from .conftest import broadcast


def in_kind_mint(mm, quantity="1"):
    return services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity=quantity, wallet_id=mm.wallets["ethereum"].pk,
                                        funding="in_kind", actor="test")


def test_the_trading_day_is_new_yorks():
    # 02:00 UTC on 2 December is still 1 December in New York (21:00 EST).
    assert gates.trading_day(datetime.fromisoformat("2026-12-02T02:00:00+00:00")).isoformat() == "2026-12-01"
    assert gates.trading_day(datetime.fromisoformat("2026-12-02T05:30:00+00:00")).isoformat() == "2026-12-02"
    # Summer time: UTC-4.
    assert gates.trading_day(datetime.fromisoformat("2026-07-02T03:59:00+00:00")).isoformat() == "2026-07-01"


def test_a_request_is_charged_against_new_yorks_day(market, mm):
    mint = in_kind_mint(mm)
    usage = NotionalUsage.objects.get(reference=mint.stream)
    assert usage.usage_date == gates.trading_day()


def test_the_chain_step_does_not_charge_the_cap_again(market, mm, operations):
    """A mint made yesterday reaches its chain step today, after unrelated requests used today's cap:
    it goes on (its amount was checked and charged when it was made)."""
    first = in_kind_mint(mm, quantity="10")
    services.mint_shares_receive(mint=first, custodian_confirmation="C-1", user=operations)
    NotionalUsage.objects.filter(reference=first.stream).update(
        usage_date=gates.trading_day() - timedelta(days=1))
    # Today: a cap that the first mint's amount would overflow, almost all used by another request.
    Participant.objects.filter(pk=mm.participant.pk).update(daily_limit_cents=first.notional_cents + 100)
    in_kind_mint(mm, quantity="9")
    services.mint_start_minting(mint=first, actor="task:test")
    first.refresh_from_db()
    assert first.state == "minting", first.reason
    assert NotionalUsage.objects.filter(reference=first.stream).count() == 1


def test_the_chain_step_still_checks_standing(market, mm, operations):
    mint = in_kind_mint(mm)
    services.mint_shares_receive(mint=mint, custodian_confirmation="C-1", user=operations)
    Participant.objects.filter(pk=mm.participant.pk).update(sanctions_hold=True)
    services.mint_start_minting(mint=mint, actor="task:test")
    mint.refresh_from_db()
    assert mint.state == "failed" and "participant_blocked" in mint.reason


@pytest.fixture
def minting(market, mm, operations):
    mint = in_kind_mint(mm)
    services.mint_shares_receive(mint=mint, custodian_confirmation="C-1", user=operations)
    services.mint_start_minting(mint=mint, actor="task:test")
    mint.refresh_from_db()
    assert mint.state == "minting"
    return mint


def refused(fn):
    head = selectors.head()
    with pytest.raises(services.RequestError) as caught:
        fn()
    assert caught.value.code == "confirmation_refused"
    assert selectors.head() == head


def test_a_confirmation_before_the_broadcast_is_refused(minting, caplog):
    refused(lambda: services.mint_confirm_on_chain(mint=minting, tx_hash="0xaa", actor="task:chain"))
    assert "chain confirmation refused" in caplog.text
    assert ChainOperation.objects.get(request_reference=minting.stream).status == "pending"


def test_a_confirmation_of_another_transaction_is_refused(minting):
    broadcast(minting, "0x" + "aa" * 32)
    refused(lambda: services.mint_confirm_on_chain(mint=minting, tx_hash="0x" + "bb" * 32, actor="task:chain"))
    minting.refresh_from_db()
    assert minting.state == "minting"


def test_a_confirmation_is_accepted_once(minting):
    broadcast(minting, "0x" + "aa" * 32)
    services.mint_confirm_on_chain(mint=minting, tx_hash="0x" + "aa" * 32, actor="task:chain")
    minting.refresh_from_db()
    assert minting.state == "minted"
    assert ChainOperation.objects.get(request_reference=minting.stream).status == "confirmed"
    refused(lambda: services.mint_confirm_on_chain(mint=minting, tx_hash="0x" + "aa" * 32, actor="task:chain"))


def test_a_burn_confirmation_is_guarded_the_same_way(market, mm, operations):
    from .test_end_to_end import minted_tokens

    minted_tokens(mm, operations)
    redemption = services.redemption_request_create(participant=mm.participant, product_symbol="AAPLx",
                                                    chain="ethereum", quantity="1",
                                                    wallet_id=mm.wallets["ethereum"].pk, payout="in_kind",
                                                    actor="test")
    services.redemption_tokens_receive(redemption=redemption, tx_hash="0x" + "11" * 32, actor="watcher")
    refused(lambda: services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32,
                                                     actor="task:chain"))
    broadcast(redemption, "0x" + "22" * 32)
    refused(lambda: services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "33" * 32,
                                                     actor="task:chain"))
    services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32, actor="task:chain")
    refused(lambda: services.redemption_confirm_burn(redemption=redemption, tx_hash="0x" + "22" * 32,
                                                     actor="task:chain"))
