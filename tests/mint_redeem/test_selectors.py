"""The API's hot-path statement answers as the ORM does."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from custody.models import ReconciliationBreak
from mint_redeem import selectors


@pytest.mark.parametrize(("status", "blocks"), list(itertools.product(
    ["open", "resolved", "cleared", None], [True, False])))
def test_paused_by_a_break_is_the_orms_answer(market, mm, status, blocks):
    if status is not None:
        now = timezone.now()
        ReconciliationBreak.objects.create(custodian=market.custodian, security=market.security, statement_as_of=now,
                                           expected_nano=10, reported_nano=5, difference_nano=-5,
                                           blocks_minting=blocks, status=status, detected_at=now, last_seen_at=now)
    found = selectors.request_context(product_symbol="AAPLx", chain="ethereum", participant_id=mm.participant.pk,
                                      wallet_id=mm.wallets["ethereum"].pk)
    assert found.paused_by_break == ReconciliationBreak.blocking(security_id=market.security.pk).exists()
    assert found.paused_by_break == market.product.minting_paused_by_break
    assert found.terms.redemption_addresses == market.terms.redemption_addresses
    assert found.terms.reference_price == market.terms.reference_price
    assert found.deployment.decimals == 18


@pytest.mark.parametrize(("custody_status", "supply_status"), list(itertools.product(
    ["open", None], ["open", "resolved", "cleared", None])))
def test_paused_by_a_supply_break_is_the_orms_answer(market, mm, custody_status, supply_status):
    from custody.models import SupplyBreak
    from custody.selectors import products_annotated

    now = timezone.now()
    if custody_status is not None:
        ReconciliationBreak.objects.create(custodian=market.custodian, security=market.security, statement_as_of=now,
                                           expected_nano=10, reported_nano=5, difference_nano=-5,
                                           blocks_minting=True, status=custody_status, detected_at=now,
                                           last_seen_at=now)
    if supply_status is not None:
        # On another chain than the request's: a supply break pauses the product on every chain.
        SupplyBreak.objects.create(product=market.product, chain="solana", block=7, supply_base_units=2,
                                   ledger_outstanding_base_units=1, unexplained_base_units=1, status=supply_status,
                                   detected_at=now, last_seen_at=now)
    found = selectors.request_context(product_symbol="AAPLx", chain="ethereum", participant_id=mm.participant.pk,
                                      wallet_id=mm.wallets["ethereum"].pk)
    assert found.paused_by_break == market.product.minting_paused_by_break
    assert found.paused_by_break == products_annotated().get(pk=market.product.pk).has_blocking_break
    assert found.paused_by_break == (custody_status == "open" or supply_status == "open")
