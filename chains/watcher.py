"""Redemptions as the chain reports them: `Redeemed` logs, acted on only once deep enough, and
withdrawn if a reorg takes them away first (architecture section 5, observers).

Each scan of a token, under its cursor's row lock (one scanner per token at a time):

1. every event still `seen` is checked against the canonical block hash at its height now; a
   different hash (or no block) means its block was reorged away: it is withdrawn;
2. the logs from the cursor up to the head are read again, the unconfirmed window included; a log is
   identified by (block hash, log index), so a transaction re-mined in another block after a reorg is
   a new event, not the old one;
3. events whose block has the configured depth on top (`confirmations`) and whose block hash is still
   canonical are confirmed; the cursor moves past the deep blocks, never into the unconfirmed window.

Only confirmed events may move a request; the caller hands them on (for example to mint_redeem
through chains.outcomes). A reorg deeper than the confirmation depth is outside what this protects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from eth_utils import to_checksum_address

from chains.evm import EvmChain
from chains.models import RedeemedEventSeen, WatchCursor


@dataclass
class ScanResult:
    head: int
    seen: list[RedeemedEventSeen] = field(default_factory=list)
    confirmed: list[RedeemedEventSeen] = field(default_factory=list)
    withdrawn: list[RedeemedEventSeen] = field(default_factory=list)


def redeemed_scan(*, chain: EvmChain, token: str, start_block: int = 0) -> ScanResult:
    """Scan `token`'s Redeemed logs; `start_block` (its deployment block) is used on the first scan only."""
    token = to_checksum_address(token)
    head = chain.head()
    deep_to = head - chain.config.confirmations  # blocks up to here are deep enough to act on
    result = ScanResult(head=head)
    canonical: dict[int, str | None] = {}

    def canonical_hash(number: int) -> str | None:
        if number not in canonical:
            canonical[number] = chain.block_hash(number)
        return canonical[number]

    with transaction.atomic():
        cursor, _ = WatchCursor.objects.select_for_update().get_or_create(
            chain=chain.name, token=token, defaults={"next_block": start_block})
        waiting = RedeemedEventSeen.objects.select_for_update().filter(
            chain=chain.name, token=token, status=RedeemedEventSeen.Status.SEEN)
        still_waiting = []
        for event in waiting:
            if canonical_hash(event.block_number) != event.block_hash:
                _set_status(event, RedeemedEventSeen.Status.WITHDRAWN)
                result.withdrawn.append(event)
            else:
                still_waiting.append(event)

        for log in chain.redeemed_logs(token, from_block=cursor.next_block, to_block=head):
            event, created = RedeemedEventSeen.objects.get_or_create(
                chain=chain.name, block_hash=log.block_hash, log_index=log.log_index,
                defaults={"token": token, "tx_hash": log.tx_hash, "block_number": log.block_number,
                          "holder": log.holder, "amount_base_units": log.amount_base_units,
                          "ref": "0x" + log.ref.hex()})
            canonical.setdefault(log.block_number, log.block_hash)
            if created:
                result.seen.append(event)
                still_waiting.append(event)
            elif event.status == RedeemedEventSeen.Status.WITHDRAWN:
                # Its block is canonical again (the chain flipped back): it waits for its depth anew.
                _set_status(event, RedeemedEventSeen.Status.SEEN)
                still_waiting.append(event)

        for event in sorted(still_waiting, key=lambda e: (e.block_number, e.log_index)):
            if event.block_number > deep_to:
                continue
            # Checked again at the moment of confirming: the logs may have been read across a reorg.
            canonical.pop(event.block_number, None)
            if canonical_hash(event.block_number) == event.block_hash:
                _set_status(event, RedeemedEventSeen.Status.CONFIRMED)
                result.confirmed.append(event)
            else:
                _set_status(event, RedeemedEventSeen.Status.WITHDRAWN)
                result.withdrawn.append(event)

        if deep_to + 1 > cursor.next_block:
            cursor.next_block = deep_to + 1
            cursor.save(update_fields=["next_block", "updated_at"])
    return result


def _set_status(event: RedeemedEventSeen, status: str) -> None:
    event.status = status
    event.save(update_fields=["status", "updated_at"])
