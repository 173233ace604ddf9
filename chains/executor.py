"""The chain executor: pending operations of one chain become transactions, each recorded signed
before it is broadcast, followed to the chain's confirmation depth and reported once (architecture
section 5, exactly once).

One run of one chain, under the chain's run lock (a PostgreSQL advisory lock held by the run's
connection, so a worker killed mid-run releases it with its connection; a second run of the same
chain meanwhile returns at once, the running one picks its work up):

0. operations signed by a run that died before recording the broadcast: their recorded bytes are
   sent again (harmless if the node has them);
1. broadcast operations are followed: no receipt and unknown to the node -> the recorded bytes again
   (never new ones: the nonce is theirs), unless another transaction took their nonce, which fails
   them; a receipt at the confirmation depth -> `on_confirmed` (succeeded) or `on_failed` (reverted);
2. mints, batch by batch: in one transaction claim up to the batch size of pending mints of one
   product (FOR UPDATE SKIP LOCKED), take the operator's next nonce (chains.nonces, row locked to the
   commit), sign the mintBatch and record the signed transaction and its hash on every operation
   (`on_signed`); commit; broadcast; record that (`on_broadcast`). A product whose token cannot take
   mints now (not deployed, paused) is skipped for this run, so it never blocks the chain's others;
   an operation the chain would refuse (a call that reverts) fails alone, the rest of its batch goes on;
3. burns the same way, one burnFromVault per operation; then multiplier updates, one setMultiplier
   per operation (from the product's multiplier when signed: nonces land them in order); then
   reserve-feed updates, one submit each (the feed refuses an attestation's reference twice);
4. step 1 again, so what anvil mined at once is reported in the same run.

A worker killed during 2 leaves nothing (the nonce and the claim roll back with it); killed after the
commit, it leaves operations `signed` with their transaction on record, which step 0 of the next run
broadcasts. The contract refuses a reference it has minted (or burned), so even a second transaction
for the same operation, such as one signed after an operator's retry of a failed operation, could
not mint or burn twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction
from web3.exceptions import ContractLogicError

from chains.config import solana_chain_names
from chains.evm import ChainError, EvmChain, Mint, evm_chain, multiplier_scaled, ref_bytes
from chains.outcomes import ChainOp, outbox
from chains.services import sign_with_next_nonce
from chains.signers import signer_for
from custody.models import ChainDeployment, TokenProduct

logger = logging.getLogger(__name__)

MAX_BATCHES_PER_RUN = 50  # a run ends; the next one (re-queued, or the beat) carries on
RUN_BUDGET_S = 20.0
FOLLOW_LIMIT = 5000


class TokenNotDeployed(RuntimeError):
    pass


class TokenUnavailable(RuntimeError):
    """The product's token cannot take this operation now (not deployed, paused): skip the product."""


@dataclass
class RunResult:
    busy: bool = False  # another run of this chain holds the lock; it does the work
    rebroadcast: list[str] = field(default_factory=list)
    broadcast: list[str] = field(default_factory=list)  # tx hashes, one per batch or burn
    operations: int = 0  # signed and broadcast by this run
    confirmed: int = 0
    failed: int = 0
    in_flight: int = 0  # broadcast, not yet at depth, after the run
    skipped_products: list[int] = field(default_factory=list)
    more: bool = False  # the run stopped with work left (budget): run again at once


def _lock_key(chain_name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"chains.executor:{chain_name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def run_lock(chain_name: str) -> Iterator[bool]:
    """One run per chain at a time (a session-level advisory lock: it goes with a dead connection)."""
    key = _lock_key(chain_name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def token_address(*, chain: EvmChain, product_id: int) -> str:
    """The product's token on `chain`, checked to be a contract: a mint sent to an address without code
    would "succeed" and mint nothing."""
    address = (ChainDeployment.objects.filter(product_id=product_id, chain=chain.name)
               .values_list("address", flat=True).first())
    if not address or not chain.w3.eth.get_code(chain.w3.to_checksum_address(address)):
        raise TokenNotDeployed(f"product {product_id} has no token contract on {chain.name} (address {address!r})")
    return address


def usable_token(*, chain: EvmChain, product_id: int) -> str:
    try:
        token = token_address(chain=chain, product_id=product_id)
    except TokenNotDeployed as exc:
        raise TokenUnavailable(str(exc)) from None
    if chain.paused(token):
        raise TokenUnavailable(f"the token of product {product_id} on {chain.name} is paused")
    return token


def _group(ops: list[ChainOp]) -> dict[str, list[ChainOp]]:
    grouped: dict[str, list[ChainOp]] = {}
    for op in ops:
        grouped.setdefault(op.tx_hash, []).append(op)
    return grouped


def _raw(op: ChainOp) -> bytes:
    return bytes.fromhex(op.signed_tx.removeprefix("0x"))


def _fail_all(ops: list[ChainOp], error: str, result: RunResult | None = None) -> None:
    hooks = outbox()
    for op in ops:
        logger.warning("chain operation %s (%s) failed: %s", op.id, op.reference, error)
        hooks.on_failed(op, error=error)
        if result is not None:
            result.failed += 1


def broadcast_signed(*, chain: EvmChain, limit: int = 1000) -> list[str]:
    """Step 0: operations signed by an earlier run that never recorded the broadcast. Their recorded
    bytes are sent again (harmless if the node has them) and the broadcast recorded."""
    hooks = outbox()
    sent = []
    for tx_hash, ops in _group(hooks.signed_not_broadcast(chain=chain.name, limit=limit)).items():
        raw = _raw(ops[0])
        try:
            actual = chain.send_raw(raw)
        except ChainError:
            if chain.nonce_taken_by_another(raw):
                for op in ops:
                    hooks.on_broadcast(op)  # it was signed and may be followed; step 1 fails it
                continue
            raise
        if actual.lower() != tx_hash.lower():
            raise RuntimeError(f"{chain.name}: recorded hash {tx_hash} is not the hash of the recorded bytes")
        for op in ops:
            hooks.on_broadcast(op)
        sent.append(tx_hash)
    return sent


def _receipt_of_any(chain: EvmChain, op: ChainOp):
    """The receipt of whichever of the operation's transactions (the current one, or one it replaced at
    the same nonce) was mined; only one can be: they share a nonce."""
    for tx_hash in op.tx_hashes:
        receipt = chain.receipt(tx_hash)
        if receipt is not None:
            return receipt
    return None


def _replace_if_stuck(chain: EvmChain, ops: list[ChainOp]) -> str | None:
    """A transaction the chain cannot include (its fee cap under the base fee) is replaced at the same
    nonce with higher fees (chains.evm.sign_replacement, within the caps), recorded on every operation
    (`on_replaced`, the replaced hash kept) before it is broadcast. Never a new nonce."""
    raw = _raw(ops[0])
    if not chain.stuck(raw):
        return None
    replacement = chain.sign_replacement(signer=signer_for(chain.name, "operator"), raw=raw)
    if replacement is None:
        logger.warning("%s: %s is stuck and its replacement would pass the fee caps: waiting", chain.name,
                       ops[0].tx_hash)
        return None
    hooks = outbox()
    with transaction.atomic():
        for op in ops:
            hooks.on_replaced(op, signed_tx=replacement.raw_hex, tx_hash=replacement.tx_hash)
    logger.info("%s: replaced stuck %s with %s at nonce %s", chain.name, ops[0].tx_hash, replacement.tx_hash,
                replacement.nonce)
    chain.send_raw(replacement)
    return replacement.tx_hash


def _adopt_chain_record(chain: EvmChain, op: ChainOp) -> tuple[bool, str]:
    """If the contract already records the operation's reference, done for its holder and amount, that
    transaction becomes the operation's (`on_chain_record`, then followed to depth): (True, ""). Otherwise
    (False, why): not done, or done otherwise, which operations must look at."""
    deployment = ChainDeployment.objects.filter(product_id=op.product_id, chain=chain.name).values_list(
        "address", "deployed_block").first()
    if deployment is None or not deployment[0]:
        return False, ""
    token, deployed_block = deployment
    if op.kind == "reserve":
        token = op.address  # a reserve update goes to the product's feed, not its token
    ref = ref_bytes(op.reference)
    if not chain.ref_done(token, ref, kind=op.kind):
        return False, ""
    record = chain.ref_record(token, ref, kind=op.kind, from_block=deployed_block or 0)
    if record is None or not record.matches(holder=op.address if op.kind == "mint" else record.holder,
                                            amount_base_units=op.amount_base_units):
        return False, (f"the chain records {op.reference} as {op.kind}ed otherwise ({record}), not as this "
                       "operation asks; ")
    outbox().on_chain_record(op, tx_hash=record.tx_hash)
    return True, ""


def _refused_for_good(chain: EvmChain, ops: list[ChainOp], error: str, result: RunResult | None = None) -> None:
    """Operations the chain refused: one whose reference the chain already records as done for it takes
    that record (never left broadcast, never retried forever); the others fail, for operations to retry."""
    for op in ops:
        adopted, why = _adopt_chain_record(chain, op)
        if not adopted:
            _fail_all([op], why + error, result)


def follow_broadcast(*, chain: EvmChain, result: RunResult) -> None:
    """Step 1: every broadcast transaction of the chain, to its depth, and its outcome reported once."""
    hooks = outbox()
    in_flight = 0
    for tx_hash, ops in _group(hooks.broadcast_not_confirmed(chain=chain.name, limit=FOLLOW_LIMIT)).items():
        receipt = _receipt_of_any(chain, ops[0])
        if receipt is None:
            raw = _raw(ops[0])
            if not chain.transaction_known(tx_hash):
                if chain.nonce_taken_by_another(raw):
                    _refused_for_good(chain, ops, f"transaction {tx_hash} can never land: another transaction "
                                                  "took its nonce", result)
                    continue
                try:
                    chain.send_raw(raw)  # dropped by the node (a restart, a full pool): the same bytes again
                except ChainError as exc:
                    logger.warning("re-broadcast of %s on %s refused, will try again: %s", tx_hash, chain.name, exc)
            # Pending or dropped, a fee cap under the base fee will not get it mined: replace it, same nonce.
            _replace_if_stuck(chain, ops)
            in_flight += len(ops)
            continue
        if not chain.is_final(receipt):
            in_flight += len(ops)
            continue
        if not receipt.succeeded:
            _refused_for_good(chain, ops, f"transaction {receipt.tx_hash} reverted in block {receipt.block_number}",
                              result)
            continue
        confirm_all({receipt.tx_hash: ops}, result=result)
    result.in_flight = in_flight


def confirm_all(confirmed: dict[str, list[ChainOp]], *, result: RunResult) -> None:
    """Operations confirmed, by the transaction that confirmed them: together in one database transaction
    when they can be (`on_confirmed_batch`), otherwise one by one."""
    hooks = outbox()
    count = sum(len(ops) for ops in confirmed.values())
    if not count:
        return
    try:
        hooks.on_confirmed_batch(confirmed)
        result.confirmed += count
        return
    except Exception:
        logger.exception("confirmation of %s operation(s) of %s transaction(s) not accepted together; one by one",
                         count, len(confirmed))
    for tx_hash, ops in confirmed.items():
        for op in ops:
            try:
                hooks.on_confirmed(op, tx_hash=tx_hash)
                result.confirmed += 1
            except Exception:
                # One request's refusal (a bug, or data changed by hand) must not hold back the others.
                logger.exception("confirmation of chain operation %s (%s) not accepted", op.id, op.reference)


def _sign_recorded(*, chain: EvmChain, ops: list[ChainOp], build) -> tuple[str, str]:
    """Take the operator's next nonce, sign, and record the result on `ops`, in the caller's transaction."""
    hooks = outbox()
    operator = signer_for(chain.name, "operator")
    signed = sign_with_next_nonce(chain=chain, signer=operator, build=lambda nonce: build(operator, nonce))
    hooks.on_signed_batch(ops, signed_tx=signed.raw_hex, tx_hash=signed.tx_hash)
    logger.info("signed %s operation(s) on %s: %s (nonce %s)", len(ops), chain.name, signed.tx_hash, signed.nonce)
    return signed.raw_hex, signed.tx_hash


def _refusals(*, chain: EvmChain, token: str, ops: list[ChainOp]) -> dict[int, str]:
    """Operations the chain would refuse, each tried alone (only when a whole batch would revert)."""
    operator = signer_for(chain.name, "operator")
    refused = {}
    for op in ops:
        if op.kind == "reserve":
            reason = _feed_reverts(chain, operator.address, op)
        elif op.kind == "mint":
            reason = chain.call_reverts(sender=operator.address, token=token, function="mintBatch", args=[
                [chain.w3.to_checksum_address(op.address)], [op.amount_base_units], [ref_bytes(op.reference)]])
        elif op.kind == "multiplier":
            reason = chain.call_reverts(sender=operator.address, token=token, function="setMultiplier",
                                        args=[_current_multiplier(op.product_id), ref_bytes(op.reference)])
        else:
            reason = chain.call_reverts(sender=operator.address, token=token, function="burnFromVault",
                                        args=[op.amount_base_units, ref_bytes(op.reference)])
        if reason is not None:
            refused[op.id] = reason
    return refused


def _feed_reverts(chain: EvmChain, sender: str, op: ChainOp) -> str | None:
    try:
        chain.feed(op.address).functions.submit(op.amount_base_units, op.supply_base_units,
                                                ref_bytes(op.reference)).call({"from": sender})
    except ContractLogicError as exc:
        return str(exc)
    return None


def _usable_feed(*, chain: EvmChain, address: str) -> str:
    if not address or not chain.w3.eth.get_code(chain.w3.to_checksum_address(address)):
        raise TokenUnavailable(f"no reserve feed contract at {address!r} on {chain.name}")
    return address


class _Skip(Exception):
    def __init__(self, product_id: int, reason: str) -> None:
        super().__init__(reason)
        self.product_id = product_id


def sign_batch(*, chain: EvmChain, kind: str = "mint", skip: set[int] | None = None
               ) -> tuple[str, str, list[ChainOp]] | None:
    """Step 2 (or 3): claim, sign and record one batch; (signed tx hex, tx hash, operations), or None if
    nothing is pending. Products whose token cannot take it now are added to `skip`."""
    hooks = outbox()
    skip = set() if skip is None else skip
    limit = chain.config.batch_size if kind == "mint" else 1
    while True:
        refused: dict[int, str] = {}
        try:
            with transaction.atomic():
                ops = hooks.claim_pending(chain=chain.name, kind=kind, limit=limit, exclude_products=sorted(skip))
                if not ops:
                    return None
                try:
                    token = (_usable_feed(chain=chain, address=ops[0].address) if kind == "reserve"
                             else usable_token(chain=chain, product_id=ops[0].product_id))
                except TokenUnavailable as exc:
                    raise _Skip(ops[0].product_id, str(exc)) from None
                try:
                    raw_hex, tx_hash = _sign_recorded(chain=chain, ops=ops, build=_builder(chain, token, kind, ops))
                except ContractLogicError:
                    # The estimate says the chain would revert it: find who, without a nonce taken.
                    refused = _refusals(chain=chain, token=token, ops=ops) or {
                        op.id: "the chain refuses the batch" for op in ops}
                    raise
        except _Skip as skipped:
            logger.warning("%s: skipping product %s for now: %s", chain.name, skipped.product_id, skipped)
            skip.add(skipped.product_id)
            continue
        except ContractLogicError:
            for op in ops:
                if op.id in refused:
                    _refused_for_good(chain, [op], f"the chain refuses it: {refused[op.id]}")
            continue
        return raw_hex, tx_hash, ops


def _current_multiplier(product_id: int) -> int:
    return multiplier_scaled(TokenProduct.objects.values_list("multiplier", flat=True).get(pk=product_id))


def _builder(chain: EvmChain, token: str, kind: str, ops: list[ChainOp]):
    if kind == "mint":
        mints = [Mint(to=op.address, amount_base_units=op.amount_base_units, ref=ref_bytes(op.reference))
                 for op in ops]
        return lambda signer, nonce: chain.sign_mint_batch(signer=signer, token=token, mints=mints, nonce=nonce)
    (op,) = ops
    if kind == "multiplier":
        # The product's multiplier when signed (mint_redeem.services.corporate_actions); nonces keep the order.
        scaled = _current_multiplier(op.product_id)
        return lambda signer, nonce: chain.sign_set_multiplier(signer=signer, token=token, multiplier_scaled=scaled,
                                                               ref=ref_bytes(op.reference), nonce=nonce)
    if kind == "reserve":
        return lambda signer, nonce: chain.sign_feed_submit(signer=signer, feed=token, reserve_nano=op.amount_base_units,
                                                            supply_nano=op.supply_base_units,
                                                            ref=ref_bytes(op.reference), nonce=nonce)
    return lambda signer, nonce: chain.sign_burn_from_vault(signer=signer, token=token,
                                                            amount_base_units=op.amount_base_units,
                                                            ref=ref_bytes(op.reference), nonce=nonce)


def execute_pending(*, chain_name: str, max_batches: int = MAX_BATCHES_PER_RUN,
                    budget_s: float = RUN_BUDGET_S) -> RunResult:
    if chain_name in solana_chain_names():
        from chains import executor_solana

        return executor_solana.execute_pending(chain_name=chain_name, max_batches=max_batches, budget_s=budget_s)
    chain = evm_chain(chain_name)
    chain.check_chain_id()
    hooks = outbox()
    with run_lock(chain_name) as acquired:
        if not acquired:
            return RunResult(busy=True)
        started = time.monotonic()
        result = RunResult(rebroadcast=broadcast_signed(chain=chain))
        follow_broadcast(chain=chain, result=result)
        skip: set[int] = set()
        batches = 0
        for kind in ("mint", "burn", "multiplier", "reserve"):
            while True:
                if batches >= max_batches or time.monotonic() - started > budget_s:
                    result.more = True
                    break
                batch = sign_batch(chain=chain, kind=kind, skip=skip)
                if batch is None:
                    break
                batches += 1
                raw_hex, tx_hash, ops = batch
                chain.send_raw(bytes.fromhex(raw_hex.removeprefix("0x")))
                hooks.on_broadcast_batch(ops)
                result.broadcast.append(tx_hash)
                result.operations += len(ops)
        follow_broadcast(chain=chain, result=result)
        result.skipped_products = sorted(skip)
    # Work that arrived while the lock was held may have had its own run turned away: look once more.
    if not result.more and hooks.has_pending(chain=chain_name, exclude_products=result.skipped_products):
        result.more = True
    return result
