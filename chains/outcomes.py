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
    kind: str  # "mint" or "burn"
    chain: str
    product_id: int
    address: str  # recipient of a mint, holder of a burn
    amount_base_units: int
    reference: str  # "mint-<id>" or "redemption-<id>": the on-chain reference (chains.evm.ref_bytes)
    signed_tx: str = ""
    tx_hash: str = ""


@dataclass(frozen=True)
class Outbox:
    # Up to `limit` pending operations of one chain and kind, all of one product, oldest first, locked
    # FOR UPDATE SKIP LOCKED in the caller's transaction (two executors never claim the same row).
    claim_pending: Callable[..., list[ChainOp]]  # (*, chain, kind, limit)
    # Operations of one chain signed but not recorded as broadcast (a worker died in between).
    signed_not_broadcast: Callable[..., list[ChainOp]]  # (*, chain, limit)
    on_signed: Callable[..., None]  # (op, *, signed_tx, tx_hash), in the transaction that took the nonce
    on_broadcast: Callable[..., None]  # (op)
    on_confirmed: Callable[..., None]  # (op, *, tx_hash)


_registered: Outbox | None = None


def register(**functions: Callable) -> None:
    """Called once, by the app that owns the outbox (mint_redeem's AppConfig.ready)."""
    global _registered
    _registered = Outbox(**functions)


def outbox() -> Outbox:
    if _registered is None:
        raise RuntimeError("no chain-operation outbox is registered (mint_redeem registers it when Django starts)")
    return _registered
