"""How the executor reaches the outbox it executes without knowing whose it is.

chains sits below mint_redeem (architecture section 2) and never imports it, yet the chain-operation
outbox and what an outcome means for a request are mint_redeem's. So mint_redeem registers, in its
AppConfig.ready, the few functions the executor needs: to claim pending operations, to find signed
ones not yet broadcast, and to record each step (signed, broadcast, confirmed). The executor hands
them plain `ChainOp` values and calls them in the order the exactly-once rule needs (section 5):
`on_signed` in the transaction that took the nonce, before anything is broadcast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ChainOp:
    """One outbox row as the executor sees it."""

    id: int
    kind: str  # "mint", "burn" or "reserve"
    chain: str
    product_id: int
    address: str  # recipient of a mint, holder of a burn
    amount_base_units: int
    reference: str  # "mint-<id>" or "redemption-<id>": the on-chain reference (chains.evm.ref_bytes)
    signed_tx: str = ""
    tx_hash: str = ""
    # Earlier transactions of the operation at the same nonce (replaced by a fee bump): whichever confirms counts.
    other_tx_hashes: tuple[str, ...] = ()
    valid_until: int | None = None  # Solana: the last block height the signed transaction can land at
    # A reserve-feed update ("reserve"): `address` is the feed, `amount_base_units` the reserve and this
    # the shares the outstanding tokens need, both in nano-shares.
    supply_base_units: int = 0

    @property
    def tx_hashes(self) -> tuple[str, ...]:
        return (self.tx_hash, *self.other_tx_hashes)


@dataclass(frozen=True)
class RedeemedDeposit:
    """A confirmed `Redeemed` event (chains.watcher), handed to the outbox's owner once."""

    chain: str
    token: str
    holder: str
    amount_base_units: int
    reference: str | None  # the ASCII reference it carried, or None if it is not one of ours
    ref_hex: str
    tx_hash: str
    log_index: int
    block_number: int


@dataclass(frozen=True)
class Outbox:
    # Up to `limit` pending operations of one chain and kind, all of one product (not one of
    # `exclude_products`), oldest first, locked FOR UPDATE SKIP LOCKED in the caller's transaction (two
    # executors never claim the same row).
    claim_pending: Callable[..., list[ChainOp]]  # (*, chain, kind, limit, exclude_products)
    # Whether pending operations of one chain wait (other than of `exclude_products`).
    has_pending: Callable[..., bool]  # (*, chain, exclude_products)
    # Operations of one chain signed but not recorded as broadcast (a worker died in between).
    signed_not_broadcast: Callable[..., list[ChainOp]]  # (*, chain, limit)
    # Operations of one chain broadcast and not yet confirmed or failed: the executor follows them.
    broadcast_not_confirmed: Callable[..., list[ChainOp]]  # (*, chain, limit)
    # (op, *, signed_tx, tx_hash, valid_until=None), in the transaction that took the nonce (EVM) or
    # claimed the operation (Solana, with the last valid block height of the transaction's blockhash)
    on_signed: Callable[..., None]
    on_broadcast: Callable[..., None]  # (op)
    # The same for every operation of one transaction at once (a mint batch): one statement, not one per row.
    on_signed_batch: Callable[..., None]  # (ops, *, signed_tx, tx_hash, valid_until=None)
    on_broadcast_batch: Callable[..., None]  # (ops)
    # Operations confirmed at depth, by the transaction that confirmed them (one or several): in one
    # database transaction when it can be (all or nothing); the executor falls back to `on_confirmed` one
    # by one if it raises.
    on_confirmed_batch: Callable[..., None]  # (confirmed: dict[tx_hash, list[ChainOp]])
    # A replacement of the broadcast transaction at the same nonce (higher fees), recorded before it is
    # broadcast; the replaced hash stays the operation's too.
    on_replaced: Callable[..., None]  # (op, *, signed_tx, tx_hash)
    # The chain's own record of the operation's reference (an event of our contract, matching its holder
    # and amount) becomes its transaction, to be followed to depth: a retry refused because it was done.
    on_chain_record: Callable[..., None]  # (op, *, tx_hash)
    on_confirmed: Callable[..., None]  # (op, *, tx_hash): confirmed at the chain's depth, succeeded
    # The chain refused the operation for good (a reverted transaction at depth, a call it would revert,
    # a nonce another transaction took): nothing of it is on chain. Operations decide (retry or fail).
    on_failed: Callable[..., None]  # (op, *, error)
    # Solana: the signed transaction can no longer land (the chain passed its last valid block height
    # without it): the operation is pending again, to be signed anew.
    on_expired: Callable[..., None]  # (op, *, error)
    # A confirmed Redeemed event, in the transaction that marks it handled (so exactly once).
    on_redeemed: Callable[..., None]  # (deposit: RedeemedDeposit)
    # Operations of one product and chain signed or broadcast, not yet confirmed or failed: what may be
    # on chain without being on the ledger yet (the supply observer, chains.observers).
    in_flight: Callable[..., list[ChainOp]]  # (*, chain, product_id)


_registered: Outbox | None = None


def register(**functions: Callable) -> None:
    """Called once, by the app that owns the outbox (mint_redeem's AppConfig.ready)."""
    global _registered
    _registered = Outbox(**functions)


def outbox() -> Outbox:
    if _registered is None:
        raise RuntimeError("no chain-operation outbox is registered (mint_redeem registers it when Django starts)")
    return _registered
