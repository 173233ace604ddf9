"""The executor's Solana steps: the same run as chains.executor (one run per chain under its lock,
the same outbox hooks, the same RunResult), with Solana's rule for exactly once in place of nonces.

A Solana transaction names a recent blockhash and can land only up to that blockhash's last valid
block height; a signature the cluster has never seen by the time its finalized block height has
passed that height never will be. So:

0./1. signed or broadcast operations are followed by signature (the block height is read first, then
   the statuses, so "not found" is known after the height): landed and at the configured commitment
   -> `on_confirmed`; landed with an error -> `on_failed` (a Solana transaction is all or nothing);
   not found while the blockhash is valid -> the recorded bytes again (harmless: the cluster
   deduplicates by signature); not found after the chain passed the height -> `on_expired` (pending
   again, to be built anew with a new blockhash);
2. mints, batch by batch: claim up to the batch size of one product's pending mints, build and sign
   one transaction (ATA created idempotently, mint_to_checked, a Memo with the reference, per mint),
   simulate it (the chain would refuse it: find who alone and fail them, as the EVM estimate does),
   record the bytes, the signature and the last valid block height on every operation (`on_signed`),
   commit, send, record the broadcast;
3. burns the same way, one burn_checked from the redemption token account per operation;
4. multiplier updates (ScaledUiAmount), one per operation, built from the product's multiplier when
   signed, never while another of the same product is in flight.

A worker killed before the commit leaves the operations pending (nothing was sent); after it, the
next run finds them signed and follows them by signature: re-sent while they can land, rebuilt only
once they cannot.
"""

from __future__ import annotations

import base64
import logging
import time

from django.db import transaction

from chains.executor import RunResult, TokenUnavailable, _fail_all, _group, _Skip, run_lock
from chains.outcomes import ChainOp, outbox
from chains.solana import SignedSolanaTx, SolanaChain, SolanaError, SolanaMint, solana_chain
from custody.models import ChainDeployment, TokenProduct

logger = logging.getLogger(__name__)

FOLLOW_LIMIT = 5000


def usable_mint(*, chain: SolanaChain, product_id: int) -> tuple[str, int]:
    """(mint address, decimals) of the product on `chain`, checked to exist on chain."""
    row = ChainDeployment.objects.filter(product_id=product_id, chain=chain.name).values_list("address", "decimals").first()
    if not row or not row[0] or not chain.account_exists(row[0]):
        raise TokenUnavailable(f"product {product_id} has no Token-2022 mint on {chain.name} ({row and row[0]!r})")
    return row[0], int(row[1])


def follow(*, chain: SolanaChain, ops: list[ChainOp], result: RunResult) -> None:
    """Steps 0 and 1 (see the module docstring); `ops` are signed or broadcast operations."""
    hooks = outbox()
    groups = _group(ops)
    if not groups:
        return
    height = chain.block_height("finalized")  # before the statuses: see the module docstring
    statuses = chain.statuses(list(groups))
    for signature, group in groups.items():
        status = statuses[signature]
        if status is not None:
            for op in group:
                _broadcast_recorded(op)
            if status.failed:
                _fail_all(group, f"transaction {signature} failed in slot {status.slot}", result)
            elif chain.is_final(status):
                for op in group:
                    try:
                        hooks.on_confirmed(op, tx_hash=signature)
                        result.confirmed += 1
                    except Exception:
                        logger.exception("confirmation of chain operation %s (%s) not accepted", op.id, op.reference)
            else:
                result.in_flight += len(group)
            continue
        valid_until = group[0].valid_until
        if valid_until is not None and height > valid_until:
            for op in group:
                hooks.on_expired(op, error=f"transaction {signature} not landed by block height {valid_until} "
                                           f"(finalized height {height})")
            result.more = True
            continue
        try:
            chain.send(base64.b64decode(group[0].signed_tx))
            result.rebroadcast.append(signature)
        except SolanaError as exc:
            logger.warning("re-send of %s on %s refused, will try again: %s", signature, chain.name, exc)
        for op in group:
            _broadcast_recorded(op)
        result.in_flight += len(group)


def _broadcast_recorded(op: ChainOp) -> None:
    if op.signed_tx:
        outbox().on_broadcast(op)  # idempotent for an operation already recorded as broadcast


def _sign(chain: SolanaChain, kind: str, mint: str, decimals: int, ops: list[ChainOp]) -> SignedSolanaTx:
    if kind == "multiplier":
        (op,) = ops
        # The product's multiplier now, not when the operation was written: see mint_redeem.services.corporate_actions.
        multiplier = TokenProduct.objects.values_list("multiplier", flat=True).get(pk=op.product_id)
        return chain.sign_multiplier(mint=mint, multiplier=multiplier, reference=op.reference)
    if kind == "mint":
        return chain.sign_mint_batch(mint=mint, decimals=decimals, mints=[
            SolanaMint(owner=op.address, amount_base_units=op.amount_base_units, reference=op.reference) for op in ops])
    (op,) = ops
    return chain.sign_burn(mint=mint, decimals=decimals, amount_base_units=op.amount_base_units, reference=op.reference)


class _Refused(Exception):
    def __init__(self, refused: dict[int, str]) -> None:
        super().__init__("refused")
        self.refused = refused


def sign_batch(*, chain: SolanaChain, kind: str, skip: set[int]) -> tuple[SignedSolanaTx, list[ChainOp]] | None:
    hooks = outbox()
    limit = chain.config.batch_size if kind == "mint" else 1  # burns and multiplier updates: one each
    while True:
        try:
            with transaction.atomic():
                ops = hooks.claim_pending(chain=chain.name, kind=kind, limit=limit, exclude_products=sorted(skip))
                if not ops:
                    return None
                try:
                    mint, decimals = usable_mint(chain=chain, product_id=ops[0].product_id)
                except TokenUnavailable as exc:
                    raise _Skip(ops[0].product_id, str(exc)) from None
                if kind == "multiplier" and any(op.kind == "multiplier" for op in hooks.in_flight(
                        chain=chain.name, product_id=ops[0].product_id)):
                    raise _Skip(ops[0].product_id, "a multiplier update of the product is in flight")
                signed = _sign(chain, kind, mint, decimals, ops)
                error = chain.simulate_error(signed.wire)
                if error is not None:
                    refused = {op.id: reason for op in ops
                               if (reason := chain.simulate_error(_sign(chain, kind, mint, decimals, [op]).wire))}
                    raise _Refused(refused or {op.id: error for op in ops})
                for op in ops:
                    hooks.on_signed(op, signed_tx=signed.wire_b64, tx_hash=signed.signature,
                                    valid_until=signed.last_valid_block_height)
                logger.info("signed %s %s operation(s) on %s: %s (valid to height %s)", len(ops), kind, chain.name,
                            signed.signature, signed.last_valid_block_height)
        except _Skip as skipped:
            logger.warning("%s: skipping product %s for now: %s", chain.name, skipped.product_id, skipped)
            skip.add(skipped.product_id)
            continue
        except _Refused as refusal:
            for op in ops:
                if op.id in refusal.refused:
                    _fail_all([op], f"the chain refuses it: {refusal.refused[op.id]}")
            continue
        return signed, ops


def execute_pending(*, chain_name: str, max_batches: int, budget_s: float) -> RunResult:
    chain = solana_chain(chain_name)
    hooks = outbox()
    with run_lock(chain_name) as acquired:
        if not acquired:
            return RunResult(busy=True)
        started = time.monotonic()
        result = RunResult()
        follow(chain=chain, ops=hooks.signed_not_broadcast(chain=chain_name, limit=FOLLOW_LIMIT), result=result)
        result.in_flight = 0
        follow(chain=chain, ops=hooks.broadcast_not_confirmed(chain=chain_name, limit=FOLLOW_LIMIT), result=result)
        skip: set[int] = set()
        batches = 0
        for kind in ("mint", "burn", "multiplier"):
            while True:
                if batches >= max_batches or time.monotonic() - started > budget_s:
                    result.more = True
                    break
                batch = sign_batch(chain=chain, kind=kind, skip=skip)
                if batch is None:
                    break
                batches += 1
                signed, ops = batch
                try:
                    chain.send(signed.wire)
                except SolanaError as exc:
                    # Recorded: the next run re-sends it while it can land, or rebuilds it after.
                    logger.warning("send of %s on %s refused, will follow: %s", signed.signature, chain.name, exc)
                for op in ops:
                    hooks.on_broadcast(op)
                result.broadcast.append(signed.signature)
                result.operations += len(ops)
        result.in_flight = 0
        follow(chain=chain, ops=hooks.broadcast_not_confirmed(chain=chain_name, limit=FOLLOW_LIMIT), result=result)
        result.skipped_products = sorted(skip)
    if not result.more and hooks.has_pending(chain=chain_name, exclude_products=result.skipped_products):
        result.more = True
    return result
