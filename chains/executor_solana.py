"""The executor's Solana steps: the same run as chains.executor (one run per chain under its lock,
the same outbox hooks, the same RunResult), with Solana's rule for exactly once in place of nonces.

A Solana transaction names a recent blockhash and can land only up to that blockhash's last valid
block height; a signature the cluster has never seen by the time its finalized block height has
passed that height never will be. So:

0./1. signed or broadcast operations are followed by signature (the block height is read first, then
   the statuses, so "not found" is known after the height): landed and at the configured commitment
   -> confirmed, every transaction found so in one database transaction and one ledger append
   (`on_confirmed_batch`, up to CONFIRM_CHUNK operations; one by one if that is refused); landed with
   an error -> `on_failed` (a Solana transaction is all or nothing); not found while the blockhash is
   valid -> the recorded bytes again (harmless: the cluster deduplicates by signature); not found
   after the chain passed the height -> `on_expired` (pending again, to be built anew with a new
   blockhash);
2. mints, up to TRANSACTIONS_PER_CLAIM transactions at a time: claim up to that many batches of one
   product's pending mints, and for each batch build and sign one transaction (ATA created
   idempotently, mint_to_checked, a Memo with the reference, per mint; one blockhash for the claim),
   simulate it (the chain would refuse it: find who alone and fail them, as the EVM estimate does) and
   record the bytes, the signature and the last valid block height on its operations
   (`on_signed_batch`); commit; send each; record the broadcast of all of them in one statement;
3. burns the same way, one burn_checked from the redemption token account per operation and claim;
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

from chains.executor import RunResult, TokenUnavailable, _fail_all, _group, _Skip, confirm_all, run_lock
from chains.outcomes import ChainOp, outbox
from chains.solana import SignedSolanaTx, SolanaChain, SolanaError, SolanaMint, solana_chain
from custody.models import ChainDeployment, TokenProduct

logger = logging.getLogger(__name__)

FOLLOW_LIMIT = 5000
# Mint transactions signed and recorded per claim (one database transaction), then sent one after the
# other and their broadcast recorded in one statement: the claim, the commit and the broadcast record
# cost as much for one transaction of a few mints as for ten.
TRANSACTIONS_PER_CLAIM = 10
# Confirmations of several transactions go to the ledger together (one database transaction, one append),
# up to this many operations at once, so the ledger's lock is never held for a whole backlog.
CONFIRM_CHUNK = 250


def usable_mint(*, chain: SolanaChain, product_id: int, known: dict[int, tuple[str, int]] | None = None
                ) -> tuple[str, int]:
    """(mint address, decimals) of the product on `chain`, checked to exist on chain. `known` keeps what a
    run found for the rest of the run: a deployment's address never changes and our mints have no close
    authority, so a mint that exists stays."""
    if known is not None and product_id in known:
        return known[product_id]
    row = ChainDeployment.objects.filter(product_id=product_id, chain=chain.name).values_list("address", "decimals").first()
    if not row or not row[0] or not chain.account_exists(row[0]):
        raise TokenUnavailable(f"product {product_id} has no Token-2022 mint on {chain.name} ({row and row[0]!r})")
    if known is not None:
        known[product_id] = (row[0], int(row[1]))
    return row[0], int(row[1])


def follow(*, chain: SolanaChain, ops: list[ChainOp], result: RunResult, recorded_broadcast: bool) -> None:
    """Steps 0 and 1 (see the module docstring); `ops` are broadcast operations (`recorded_broadcast`),
    or signed ones whose run died before it recorded the broadcast (recorded here, a transaction's
    operations in one statement, once they are sent again or found landed)."""
    hooks = outbox()
    groups = _group(ops)
    if not groups:
        return
    height = chain.block_height("finalized")  # before the statuses: see the module docstring
    statuses = chain.statuses(list(groups))
    final: dict[str, list[ChainOp]] = {}
    for signature, group in groups.items():
        status = statuses[signature]
        if status is not None:
            if not recorded_broadcast:
                hooks.on_broadcast_batch(group)
            if status.failed:
                _fail_all(group, f"transaction {signature} failed in slot {status.slot}", result)
            elif chain.is_final(status):
                final[signature] = group
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
        if not recorded_broadcast:
            hooks.on_broadcast_batch(group)
        result.in_flight += len(group)
    chunk: dict[str, list[ChainOp]] = {}
    for signature, group in final.items():
        chunk[signature] = group
        if sum(len(ops) for ops in chunk.values()) >= CONFIRM_CHUNK:
            confirm_all(chunk, result=result)
            chunk = {}
    confirm_all(chunk, result=result)


def _sign(chain: SolanaChain, kind: str, mint: str, decimals: int, ops: list[ChainOp], recent: tuple | None = None
          ) -> SignedSolanaTx:
    if kind == "multiplier":
        (op,) = ops
        # The product's multiplier now, not when the operation was written: see mint_redeem.services.corporate_actions.
        multiplier = TokenProduct.objects.values_list("multiplier", flat=True).get(pk=op.product_id)
        return chain.sign_multiplier(mint=mint, multiplier=multiplier, reference=op.reference)
    if kind == "mint":
        return chain.sign_mint_batch(mint=mint, decimals=decimals, recent=recent, mints=[
            SolanaMint(owner=op.address, amount_base_units=op.amount_base_units, reference=op.reference) for op in ops])
    (op,) = ops
    return chain.sign_burn(mint=mint, decimals=decimals, amount_base_units=op.amount_base_units, reference=op.reference)


class _Refused(Exception):
    def __init__(self, refused: dict[int, str]) -> None:
        super().__init__("refused")
        self.refused = refused


def sign_batches(*, chain: SolanaChain, kind: str, skip: set[int], transactions: int = 1,
                 known_mints: dict[int, tuple[str, int]] | None = None) -> list[tuple[SignedSolanaTx, list[ChainOp]]]:
    """Steps 2 and 3: claim up to `transactions` transactions' worth of one product's pending operations
    of `kind` (mints: the batch size each; burns and multiplier updates: one each, and one transaction),
    build, sign and simulate each transaction and record it on its operations, all in one database
    transaction: nothing is sent before that commits. [] if nothing is pending."""
    hooks = outbox()
    per_transaction = chain.config.batch_size if kind == "mint" else 1
    if kind != "mint":
        transactions = 1  # a multiplier update is never signed while another of its product is in flight
    while True:
        try:
            with transaction.atomic():
                ops = hooks.claim_pending(chain=chain.name, kind=kind, limit=per_transaction * transactions,
                                          exclude_products=sorted(skip))
                if not ops:
                    return []
                try:
                    mint, decimals = usable_mint(chain=chain, product_id=ops[0].product_id, known=known_mints)
                except TokenUnavailable as exc:
                    raise _Skip(ops[0].product_id, str(exc)) from None
                if kind == "multiplier" and any(op.kind == "multiplier" for op in hooks.in_flight(
                        chain=chain.name, product_id=ops[0].product_id)):
                    raise _Skip(ops[0].product_id, "a multiplier update of the product is in flight")
                # One blockhash for a claim's mint transactions (each recorded with its last valid block height).
                recent = chain.latest_blockhash() if kind == "mint" else None
                signed_batches = []
                for start in range(0, len(ops), per_transaction):
                    batch = ops[start:start + per_transaction]
                    signed = _sign(chain, kind, mint, decimals, batch, recent)
                    error = chain.simulate_error(signed.wire)
                    if error is not None:
                        refused = {op.id: reason for op in batch if (reason := chain.simulate_error(
                            _sign(chain, kind, mint, decimals, [op], recent).wire))}
                        raise _Refused(refused or {op.id: error for op in batch})
                    hooks.on_signed_batch(batch, signed_tx=signed.wire_b64, tx_hash=signed.signature,
                                          valid_until=signed.last_valid_block_height)
                    logger.info("signed %s %s operation(s) on %s: %s (valid to height %s)", len(batch), kind,
                                chain.name, signed.signature, signed.last_valid_block_height)
                    signed_batches.append((signed, batch))
        except _Skip as skipped:
            logger.warning("%s: skipping product %s for now: %s", chain.name, skipped.product_id, skipped)
            skip.add(skipped.product_id)
            continue
        except _Refused as refusal:
            # Everything claimed was rolled back unsent; the refused operations fail, the others are claimed again.
            for op in ops:
                if op.id in refusal.refused:
                    _fail_all([op], f"the chain refuses it: {refusal.refused[op.id]}")
            continue
        return signed_batches


def sign_batch(*, chain: SolanaChain, kind: str, skip: set[int]) -> tuple[SignedSolanaTx, list[ChainOp]] | None:
    """One transaction of `sign_batches`: (signed transaction, its operations), or None."""
    batches = sign_batches(chain=chain, kind=kind, skip=skip)
    return batches[0] if batches else None


def execute_pending(*, chain_name: str, max_batches: int, budget_s: float) -> RunResult:
    chain = solana_chain(chain_name)
    hooks = outbox()
    with run_lock(chain_name) as acquired:
        if not acquired:
            return RunResult(busy=True)
        started = time.monotonic()
        result = RunResult()
        follow(chain=chain, ops=hooks.signed_not_broadcast(chain=chain_name, limit=FOLLOW_LIMIT), result=result,
               recorded_broadcast=False)
        result.in_flight = 0
        follow(chain=chain, ops=hooks.broadcast_not_confirmed(chain=chain_name, limit=FOLLOW_LIMIT), result=result,
               recorded_broadcast=True)
        skip: set[int] = set()
        known_mints: dict[int, tuple[str, int]] = {}
        batches = 0
        for kind in ("mint", "burn", "multiplier"):
            while True:
                if batches >= max_batches or time.monotonic() - started > budget_s:
                    result.more = True
                    break
                signed_batches = sign_batches(chain=chain, kind=kind, skip=skip, known_mints=known_mints,
                                              transactions=min(TRANSACTIONS_PER_CLAIM, max_batches - batches))
                if not signed_batches:
                    break
                batches += len(signed_batches)
                for signed, ops in signed_batches:
                    try:
                        chain.send(signed.wire)
                    except SolanaError as exc:
                        # Recorded: the next run re-sends it while it can land, or rebuilds it after.
                        logger.warning("send of %s on %s refused, will follow: %s", signed.signature, chain.name, exc)
                    result.broadcast.append(signed.signature)
                    result.operations += len(ops)
                hooks.on_broadcast_batch([op for _, ops in signed_batches for op in ops])
        result.in_flight = 0
        follow(chain=chain, ops=hooks.broadcast_not_confirmed(chain=chain_name, limit=FOLLOW_LIMIT), result=result,
               recorded_broadcast=True)
        result.skipped_products = sorted(skip)
    if not result.more and hooks.has_pending(chain=chain_name, exclude_products=result.skipped_products):
        result.more = True
    return result
