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
