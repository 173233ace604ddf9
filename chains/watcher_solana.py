"""Redemptions on Solana: token transfers into the issuer's redemption token account (the vault key's
associated token account of each product's mint), each carrying the redemption's reference in a Memo.

Only transactions at the configured commitment (SOLANA_COMMITMENT: confirmed or finalized) are read,
so nothing seen here is taken back by the cluster; each is recorded once (RedeemedEventSeen, keyed by
its signature) as confirmed, and handed to the outbox's owner by chains.observers.deposits_hand_on,
as EVM deposits are: a matching redemption moves, anything else opens a case.
"""

from __future__ import annotations

from django.db import transaction

from chains.models import RedeemedEventSeen
from chains.observers import deployed_tokens, deposits_hand_on
from chains.signers import solana_signer_for
from chains.solana import SolanaChain, solana_chain


def redemptions_watch(*, chain_name: str) -> dict:
    chain = solana_chain(chain_name)
    mints = deployed_tokens(chain_name)
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
