"""The chain-operation outbox, as the lifecycles see it: written in the transition that needs it, and
its outcome accepted only from the transaction it was broadcast with, once.

The executor (chains) records each step before taking the next: the signed transaction and its hash
before broadcasting, then that it was broadcast. A confirmation for any other transaction, or for an
operation not broadcast, or a second one, is refused and logged: it is either a bug or an attack.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mint_redeem import jobs
from mint_redeem.models import ChainOperation
from mint_redeem.services.quoting import RequestError

logger = logging.getLogger(__name__)


def chain_operation_for(request) -> ChainOperation | None:
    """The request's operation, locked."""
    return ChainOperation.objects.select_for_update().filter(request_reference=request.stream).first()


def chain_operation_create(*, kind: str, request, address: str) -> ChainOperation:
    """Write a request's chain operation (in the transition's transaction) and, once it commits, ask the
    chain's executor to run. A lost message is covered by the beat's sweep (chains.execute_all)."""
    from chains.config import chain_names

    operation = ChainOperation.objects.create(kind=kind, chain=request.chain, product=request.product,
                                              address=address, amount_base_units=request.token_base_units,
                                              request_reference=request.stream)
    if request.chain in chain_names():
        jobs.enqueue_on_commit(jobs.EXECUTE_CHAIN, request.chain)
    return operation


def chain_operation_record_signed(*, operation: ChainOperation, signed_tx: str, tx_hash: str,
                                  valid_until: int | None = None) -> ChainOperation:
    """The executor signed the operation: keep the transaction and its hash (and, on Solana, the last
    block height it can land at) before it is broadcast."""
    if not signed_tx or not tx_hash:
        raise RequestError("a signed transaction and its hash are required", code="invalid_chain_record")
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status == ChainOperation.Status.SIGNED and operation.tx_hash == tx_hash:
            return operation  # the same record again: a retry
        if operation.status != ChainOperation.Status.PENDING:
            raise RequestError(f"operation {operation.pk} is {operation.status}, not pending",
                               code="chain_operation_state", http_status=409)
        operation.signed_tx, operation.tx_hash = signed_tx, tx_hash
        operation.last_valid_block_height = valid_until
        operation.status = ChainOperation.Status.SIGNED
        operation.attempts += 1
        operation.save(update_fields=["signed_tx", "tx_hash", "last_valid_block_height", "status", "attempts",
                                      "updated_at"])
    return operation


def chain_operations_record_signed(*, operation_ids: list[int], signed_tx: str, tx_hash: str,
                                   valid_until: int | None = None) -> None:
    """`chain_operation_record_signed` for every operation of one batch transaction, in one statement:
    all were pending (claimed by the caller) or the call changes nothing."""
    if not signed_tx or not tx_hash:
        raise RequestError("a signed transaction and its hash are required", code="invalid_chain_record")
    with transaction.atomic():
        updated = ChainOperation.objects.filter(pk__in=operation_ids, status=ChainOperation.Status.PENDING).update(
            signed_tx=signed_tx, tx_hash=tx_hash, last_valid_block_height=valid_until,
            status=ChainOperation.Status.SIGNED, attempts=F("attempts") + 1, updated_at=timezone.now())
        if updated != len(set(operation_ids)):
            raise RequestError(f"only {updated} of {len(operation_ids)} operations were pending",
                               code="chain_operation_state", http_status=409)


def chain_operations_record_broadcast(*, operation_ids: list[int]) -> None:
    """`chain_operation_record_broadcast` for every operation of one transaction, in one statement."""
    with transaction.atomic():
        ChainOperation.objects.filter(pk__in=operation_ids, status=ChainOperation.Status.SIGNED).update(
            status=ChainOperation.Status.BROADCAST, updated_at=timezone.now())
        wrong = ChainOperation.objects.filter(pk__in=operation_ids).exclude(
            status=ChainOperation.Status.BROADCAST).values_list("pk", "status")
        if wrong:
            raise RequestError(f"operations not signed: {list(wrong)[:10]}", code="chain_operation_state",
                               http_status=409)


def chain_operation_record_broadcast(*, operation: ChainOperation) -> ChainOperation:
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status == ChainOperation.Status.BROADCAST:
            return operation
        if operation.status != ChainOperation.Status.SIGNED:
            raise RequestError(f"operation {operation.pk} is {operation.status}, not signed",
                               code="chain_operation_state", http_status=409)
        operation.status = ChainOperation.Status.BROADCAST
        operation.save(update_fields=["status", "updated_at"])
    return operation


def chain_operation_record_replacement(*, operation: ChainOperation, replaces: str, signed_tx: str,
                                       tx_hash: str) -> ChainOperation:
    """The executor re-signed the operation's stuck transaction at the same nonce with higher fees: keep
    the replacement before it is broadcast, and the replaced hash too (either may be the one mined)."""
    if not signed_tx or not tx_hash:
        raise RequestError("a signed transaction and its hash are required", code="invalid_chain_record")
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.tx_hash == tx_hash:
            return operation  # the same record again: a retry
        if operation.status != ChainOperation.Status.BROADCAST or operation.tx_hash != replaces:
            raise RequestError(f"operation {operation.pk} is {operation.status} with {operation.tx_hash}, not "
                               f"broadcast with {replaces}", code="chain_operation_state", http_status=409)
        operation.other_tx_hashes = [*operation.other_tx_hashes, operation.tx_hash]
        operation.signed_tx, operation.tx_hash = signed_tx, tx_hash
        operation.attempts += 1
        operation.save(update_fields=["other_tx_hashes", "signed_tx", "tx_hash", "attempts", "updated_at"])
    return operation


def chain_operation_adopt_chain_record(*, operation: ChainOperation, tx_hash: str) -> ChainOperation:
    """The chain already records the operation's reference, done by `tx_hash` to the operation's holder
    for its amount (the executor checked the contract's event): that transaction becomes the operation's,
    broadcast, and the executor follows it to depth and confirms the request as usual. What the operation
    had signed before stays in `other_tx_hashes` (the contract refuses the reference again, so none of
    it can land as well)."""
    if not tx_hash:
        raise RequestError("a transaction hash is required", code="invalid_chain_record")
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status == ChainOperation.Status.CONFIRMED or (
                operation.status == ChainOperation.Status.BROADCAST and operation.tx_hash == tx_hash):
            return operation
        if operation.tx_hash and operation.tx_hash not in operation.other_tx_hashes:
            operation.other_tx_hashes = [*operation.other_tx_hashes, operation.tx_hash]
        operation.tx_hash, operation.status = tx_hash, ChainOperation.Status.BROADCAST
        operation.last_error = f"the chain records {operation.request_reference} as done by {tx_hash}"
        operation.save(update_fields=["other_tx_hashes", "tx_hash", "status", "last_error", "updated_at"])
    logger.warning("chain operation %s (%s) takes the chain's record %s", operation.pk, operation.request_reference,
                   tx_hash)
    return operation


def chain_operation_record_failed(*, operation: ChainOperation, error: str) -> ChainOperation:
    """The executor found the operation refused for good: nothing of it is on chain (a reverted
    transaction, a call the chain would revert, a nonce another transaction took). Its request stays
    where it is, for operations to retry the operation (`chain_operation_retry`) or fail the request."""
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status in (ChainOperation.Status.CONFIRMED, ChainOperation.Status.FAILED):
            return operation
        operation.status = ChainOperation.Status.FAILED
        operation.last_error = error[:2000]
        operation.save(update_fields=["status", "last_error", "updated_at"])
    logger.warning("chain operation %s (%s) failed: %s", operation.pk, operation.request_reference, error[:300])
    return operation


def chain_operation_record_confirmed(*, operation: ChainOperation, tx_hash: str) -> ChainOperation:
    """An operation with no request behind it (a multiplier update) confirmed on chain: accepted only
    for the transaction it was broadcast with, once."""
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status == ChainOperation.Status.CONFIRMED:
            return operation
        if operation.status != ChainOperation.Status.BROADCAST or operation.tx_hash != tx_hash:
            raise RequestError(f"confirmation refused: operation {operation.pk} is {operation.status} with another "
                               "transaction", code="confirmation_refused", http_status=409)
        operation.status = ChainOperation.Status.CONFIRMED
        operation.save(update_fields=["status", "updated_at"])
    logger.info("chain operation %s (%s) confirmed in %s", operation.pk, operation.request_reference, tx_hash)
    return operation


def chain_operation_record_expired(*, operation: ChainOperation, error: str) -> ChainOperation:
    """Solana: the executor saw the chain pass the transaction's last valid block height without it, so
    it can never land: the operation is pending again (its old signature kept in `last_error`)."""
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status not in (ChainOperation.Status.SIGNED, ChainOperation.Status.BROADCAST):
            return operation
        operation.last_error = f"{error}; earlier transaction {operation.tx_hash}"[:2000]
        operation.status = ChainOperation.Status.PENDING
        operation.signed_tx = operation.tx_hash = ""
        operation.last_valid_block_height = None
        operation.save(update_fields=["status", "signed_tx", "tx_hash", "last_valid_block_height", "last_error",
                                      "updated_at"])
    logger.info("chain operation %s (%s) expired unlanded; it will be signed again", operation.pk,
                operation.request_reference)
    return operation


def chain_operation_retry(*, operation: ChainOperation, actor: str) -> ChainOperation:
    """Operations send a failed operation to the executor again. Safe: it is retried only while its
    request still waits for it and the chain shows its reference not yet minted (burned), its old
    transaction is kept in `last_error`, and the contract refuses a reference twice anyway."""
    from chains.config import solana_chain_names
    from chains.evm import evm_chain, ref_bytes
    from chains.solana import solana_chain
    from custody.models import ChainDeployment

    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation.pk)
        if operation.status != ChainOperation.Status.FAILED:
            raise RequestError(f"operation {operation.pk} is {operation.status}, not failed",
                               code="chain_operation_state", http_status=409)
        waiting = "minting" if operation.kind == ChainOperation.Kind.MINT else "burning"
        request = _request_of(operation)
        # A multiplier update has no request: it is always still wanted (signed from the latest value).
        if operation.kind != ChainOperation.Kind.MULTIPLIER and (request is None or request.state != waiting):
            raise RequestError(f"{operation.request_reference} is not {waiting}; nothing to retry",
                               code="chain_operation_state", http_status=409)
        evm = None
        if operation.chain in solana_chain_names():
            # Nothing on Solana refuses a reference twice: the earlier transaction must be known unlanded.
            status = solana_chain(operation.chain).status(operation.tx_hash) if operation.tx_hash else None
            done = status is not None and not status.failed
        else:
            token, deployed_block = ChainDeployment.objects.values_list("address", "deployed_block").get(
                product=operation.product_id, chain=operation.chain)
            evm = evm_chain(operation.chain)
            ref = ref_bytes(operation.request_reference)
            done = evm.ref_done(token, ref, kind=operation.kind)
        if done:
            record = None
            if evm is not None:
                record = evm.ref_record(token, ref, kind=operation.kind, from_block=deployed_block or 0)
                if record is not None and record.matches(holder=operation.address,
                                                         amount_base_units=int(operation.amount_base_units)):
                    # Done on chain by an earlier transaction of ours: follow that one to depth instead.
                    return chain_operation_adopt_chain_record(operation=operation, tx_hash=record.tx_hash)
            raise RequestError(f"{operation.request_reference} is already {operation.kind}ed on chain, not as this "
                               f"operation asks ({record}); reconcile it by hand",
                               code="chain_operation_on_chain", http_status=409)
        operation.last_error = (f"retried by {actor}; earlier transaction {operation.tx_hash}: "
                                f"{operation.last_error}")[:2000]
        operation.status = ChainOperation.Status.PENDING
        operation.signed_tx = operation.tx_hash = ""
        operation.save(update_fields=["status", "signed_tx", "tx_hash", "last_error", "updated_at"])
        jobs.enqueue_on_commit(jobs.EXECUTE_CHAIN, operation.chain)
    return operation


def _request_of(operation: ChainOperation):
    from mint_redeem.models import MintRequest, Redemption

    prefix, _, pk = operation.request_reference.partition("-")
    model = {"mint": MintRequest, "redemption": Redemption}.get(prefix)
    return model.objects.filter(pk=int(pk)).first() if model and pk.isdigit() else None


def confirmation_accept(request, *, tx_hash: str, state: str, operation: ChainOperation | None = None,
                        save: bool = True) -> ChainOperation:
    """With `request` locked: the request's operation, locked and marked confirmed, if `tx_hash` is the
    transaction it was broadcast with and the request waits for it in `state`; otherwise refused. A
    batch passes the operation it locked already, and `save=False` to write every row in one statement."""
    operation = operation or chain_operation_for(request)
    problem = None
    if request.state != state:
        problem = f"the request is {request.state}, not {state}"
    elif operation is None:
        problem = "the request has no chain operation"
    elif operation.status != ChainOperation.Status.BROADCAST:
        problem = f"its chain operation is {operation.status}, not broadcast"
    elif not tx_hash or tx_hash not in (operation.tx_hash, *operation.other_tx_hashes):
        problem = "the transaction is not the one its chain operation broadcast"
    if problem:
        logger.warning("chain confirmation refused for %s (tx %s): %s", request.stream, tx_hash[:130], problem)
        raise RequestError(f"confirmation refused: {problem}", code="confirmation_refused", http_status=409,
                           details={"request": request.stream})
    if tx_hash != operation.tx_hash:  # a replaced transaction was the one mined: it is the operation's now
        operation.other_tx_hashes = [h for h in (operation.tx_hash, *operation.other_tx_hashes) if h != tx_hash]
        operation.tx_hash = tx_hash
    operation.status = ChainOperation.Status.CONFIRMED
    if save:
        operation.save(update_fields=["status", "tx_hash", "other_tx_hashes", "updated_at"])
    return operation


def assert_not_in_flight(request) -> None:
    """Once a chain operation is signed it may land at any moment: only its outcome (confirmed, or
    failed for good by the executor) may end the request, never a person's guess."""
    operation = chain_operation_for(request)
    if operation is not None and operation.status not in (ChainOperation.Status.PENDING,
                                                            ChainOperation.Status.FAILED):
        raise RequestError(f"the chain operation is {operation.status}; wait for its outcome",
                           code="chain_operation_in_flight", http_status=409)


def chain_operation_abandon(request, *, reason: str) -> None:
    """A request that fails before its operation was signed takes the operation with it."""
    ChainOperation.objects.filter(request_reference=request.stream, status=ChainOperation.Status.PENDING
                                  ).update(status=ChainOperation.Status.FAILED, last_error=reason[:500])
