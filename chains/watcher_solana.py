"""Redemptions on Solana: token transfers into the issuer's redemption token account (the vault key's
associated token account of each product's mint), each carrying the redemption's reference in a Memo.

Only transactions at the configured commitment (SOLANA_COMMITMENT: confirmed or finalized) are read,
so nothing seen here is taken back by the cluster; each is recorded once (RedeemedEventSeen, keyed by
its signature) as confirmed, and handed to the outbox's owner by chains.observers.deposits_hand_on,
as EVM deposits are: a matching redemption moves, anything else opens a case.

It also records each mint's observed supply with custody (custody.supply), as chains.observers does
for EVM tokens: the ledger snapshot first, then the supply at the configured commitment with the slot
it was read at, then the in-flight operations whose transaction had landed by that slot.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from chains.models import RedeemedEventSeen
from chains.observers import SUPPLY_ACTOR, deployed_tokens, deposits_hand_on, ledger_snapshot
from chains.signers import solana_signer_for
from chains.solana import SolanaChain, solana_chain
from custody.models import ChainDeployment, SupplyObservation
from custody.services import supply_observation_record


def redemptions_watch(*, chain_name: str) -> dict:
    chain = solana_chain(chain_name)
    # (address, deployed block): the scan follows each redemption account's own history, not blocks.
    mints = [address for address, _ in deployed_tokens(chain_name)]
    seen = 0
    for mint in mints:
        if chain.account_exists(mint):
            seen += deposits_scan(chain=chain, mint=mint)
    handled = deposits_hand_on(chain_name=chain_name)
    return {"tokens": len(mints), "seen": seen, "confirmed": seen, "handled": handled}


def deposits_scan(*, chain: SolanaChain, mint: str) -> int:
    """Record the new deposits into the redemption account of `mint`; how many."""
    account = str(chain.ata(solana_signer_for("vault").pubkey(), mint))
    with transaction.atomic():
        # One scanner per mint at a time: the newest recorded deposit's row, locked, is where this scan starts.
        last = (RedeemedEventSeen.objects.select_for_update().filter(chain=chain.name, token=mint)
                .order_by("-block_number", "-pk").first())
        created = 0
        for transfer in chain.transfers_into(account, until=last.tx_hash if last else None):
            memo = transfer.memos[0].encode("utf-8") if transfer.memos else b""
            _, new = RedeemedEventSeen.objects.get_or_create(
                chain=chain.name, block_hash=transfer.signature, log_index=0,
                defaults={"token": mint, "tx_hash": transfer.signature, "block_number": transfer.slot,
                          "holder": transfer.source_owner, "amount_base_units": transfer.amount_base_units,
                          "ref": "0x" + memo[:200].hex(), "status": RedeemedEventSeen.Status.CONFIRMED})
            created += new
    return created


def supply_observe(*, chain_name: str) -> list[SupplyObservation]:
    """Record every mint's supply on `chain_name`. Solana has no block hash to pin a read to: the
    reading is at a slot and the configured commitment, and `block_hash` stays empty."""
    chain = solana_chain(chain_name)
    recorded = []
    for deployment in ChainDeployment.objects.filter(chain=chain_name).exclude(address="").select_related("product"):
        if not chain.account_exists(deployment.address):
            continue
        snapshot = ledger_snapshot(chain_name=chain_name, product_id=deployment.product_id)
        if snapshot is None:
            continue
        supply, slot = chain.supply(deployment.address)
        # After the supply: a transaction that landed at or before its slot is in it, a later one is not.
        statuses = chain.statuses(sorted({op.tx_hash for op in snapshot.in_flight if op.tx_hash}))
        landed = 0
        for op in snapshot.in_flight:
            status = statuses.get(op.tx_hash) if op.tx_hash else None
            if status is not None and not status.failed and status.slot <= slot:
                landed += op.amount_base_units if op.kind == "mint" else -op.amount_base_units
        recorded.append(supply_observation_record(
            product=deployment.product, chain=chain_name, supply_base_units=supply, block=slot, block_hash="",
            observed_at=timezone.now(), actor=SUPPLY_ACTOR, ledger_position=snapshot.position,
            in_flight_base_units=landed))
    return recorded
