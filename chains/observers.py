"""What the chains report to the rest of the house: confirmed redemptions, handed on exactly once.

The watcher (chains.watcher) decides when a `Redeemed` event is confirmed; this module hands each
confirmed event to the outbox's owner (chains.outcomes `on_redeemed`) in the transaction that marks
it handled, under the event's row lock. A worker killed before the commit leaves it unhandled and the
next scan hands it on; after the commit it is never handed on again.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from chains.evm import evm_chain, ref_text
from chains.models import RedeemedEventSeen
from chains.outcomes import RedeemedDeposit, outbox
from chains.watcher import redeemed_scan
from custody.models import ChainDeployment

logger = logging.getLogger(__name__)


def deployed_tokens(chain_name: str) -> list[str]:
    return [address for address in ChainDeployment.objects.filter(chain=chain_name).exclude(address="")
            .values_list("address", flat=True)]


def redemptions_watch(*, chain_name: str) -> dict:
    chain = evm_chain(chain_name)
    chain.check_chain_id()
    tokens = deployed_tokens(chain_name)
    seen = confirmed = 0
    for token in tokens:
        if not chain.w3.eth.get_code(chain.w3.to_checksum_address(token)):
            continue
        scan = redeemed_scan(chain=chain, token=token)
        seen += len(scan.seen)
        confirmed += len(scan.confirmed)
    handled = deposits_hand_on(chain_name=chain_name)
    return {"tokens": len(tokens), "seen": seen, "confirmed": confirmed, "handled": handled}


def deposits_hand_on(*, chain_name: str, limit: int = 1000) -> int:
    ids = list(RedeemedEventSeen.objects.filter(chain=chain_name, status=RedeemedEventSeen.Status.CONFIRMED,
                                                handled_at__isnull=True)
               .order_by("block_number", "log_index").values_list("pk", flat=True)[:limit])
    handled = 0
    for event_id in ids:
        with transaction.atomic():
            event = RedeemedEventSeen.objects.select_for_update(skip_locked=True).filter(
                pk=event_id, handled_at__isnull=True, status=RedeemedEventSeen.Status.CONFIRMED).first()
            if event is None:
                continue
            outbox().on_redeemed(RedeemedDeposit(
                chain=event.chain, token=event.token, holder=event.holder,
                amount_base_units=int(event.amount_base_units), reference=ref_text(bytes.fromhex(event.ref[2:])),
                ref_hex=event.ref, tx_hash=event.tx_hash, log_index=event.log_index,
                block_number=event.block_number))
            event.handled_at = timezone.now()
            event.save(update_fields=["handled_at", "updated_at"])
            handled += 1
    return handled
