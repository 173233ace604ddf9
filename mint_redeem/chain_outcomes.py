"""mint_redeem's side of chains.outcomes: the executor claims and records outbox rows through these
functions, which mint_redeem's AppConfig.ready registers. chains never imports mint_redeem; this
module is where the two meet, and every state change goes through mint_redeem.services.chain."""

from __future__ import annotations

import logging

from django.db import transaction

from chains.outcomes import ChainOp, RedeemedDeposit
from custody.models import ChainDeployment
from mint_redeem.models import ChainOperation, DepositCase, MintRequest, Redemption
from mint_redeem.services.quoting import RequestError

logger = logging.getLogger(__name__)

EXECUTOR_ACTOR = "task:chains.executor"
WATCHER_ACTOR = "task:chains.watcher"


def _op(row: ChainOperation) -> ChainOp:
    return ChainOp(id=row.pk, kind=row.kind, chain=row.chain, product_id=row.product_id, address=row.address,
                   amount_base_units=int(row.amount_base_units), reference=row.request_reference,
                   signed_tx=row.signed_tx, tx_hash=row.tx_hash, other_tx_hashes=tuple(row.other_tx_hashes),
                   valid_until=row.last_valid_block_height,
                   supply_base_units=int(row.supply_base_units or 0))


def claim_pending(*, chain: str, kind: str, limit: int, exclude_products=()) -> list[ChainOp]:
    """Locked FOR UPDATE SKIP LOCKED in the caller's transaction: the oldest pending operation's product
    (not one of `exclude_products`), and up to `limit` pending operations of that product, oldest first."""
    pending = ChainOperation.objects.select_for_update(skip_locked=True).filter(
        chain=chain, kind=kind, status=ChainOperation.Status.PENDING).exclude(
        product_id__in=list(exclude_products)).order_by("pk")
    first = pending.first()
    if first is None:
        return []
    return [_op(row) for row in pending.filter(product_id=first.product_id)[:limit]]


def has_pending(*, chain: str, exclude_products=()) -> bool:
    return ChainOperation.objects.filter(chain=chain, status=ChainOperation.Status.PENDING).exclude(
        product_id__in=list(exclude_products)).exists()


def broadcast_not_confirmed(*, chain: str, limit: int) -> list[ChainOp]:
    rows = ChainOperation.objects.filter(chain=chain, status=ChainOperation.Status.BROADCAST).order_by("pk")[:limit]
    return [_op(row) for row in rows]


def in_flight(*, chain: str, product_id: int) -> list[ChainOp]:
    rows = ChainOperation.objects.filter(chain=chain, product_id=product_id, status__in=(
        ChainOperation.Status.SIGNED, ChainOperation.Status.BROADCAST)).order_by("pk")
    return [_op(row) for row in rows]


def signed_not_broadcast(*, chain: str, limit: int) -> list[ChainOp]:
    rows = ChainOperation.objects.filter(chain=chain, status=ChainOperation.Status.SIGNED).order_by("pk")[:limit]
    return [_op(row) for row in rows]


def on_signed(op: ChainOp, *, signed_tx: str, tx_hash: str, valid_until: int | None = None) -> None:
    from mint_redeem.services import chain_operation_record_signed

    chain_operation_record_signed(operation=ChainOperation.objects.get(pk=op.id), signed_tx=signed_tx, tx_hash=tx_hash,
                                  valid_until=valid_until)


def on_expired(op: ChainOp, *, error: str) -> None:
    from mint_redeem.services.chain import chain_operation_record_expired

    chain_operation_record_expired(operation=ChainOperation.objects.get(pk=op.id), error=error)


def on_broadcast(op: ChainOp) -> None:
    from mint_redeem.services import chain_operation_record_broadcast

    chain_operation_record_broadcast(operation=ChainOperation.objects.get(pk=op.id))


def on_signed_batch(ops: list[ChainOp], *, signed_tx: str, tx_hash: str, valid_until: int | None = None) -> None:
    from mint_redeem.services.chain import chain_operations_record_signed

    chain_operations_record_signed(operation_ids=[op.id for op in ops], signed_tx=signed_tx, tx_hash=tx_hash,
                                   valid_until=valid_until)


def on_broadcast_batch(ops: list[ChainOp]) -> None:
    from mint_redeem.services.chain import chain_operations_record_broadcast

    chain_operations_record_broadcast(operation_ids=[op.id for op in ops])


def on_confirmed_batch(confirmed: dict[str, list[ChainOp]]) -> None:
    """Mint batches' confirmations (operations by the transaction that confirmed them) in one database
    transaction (mints_confirm_on_chain); anything else, or an operation already confirmed, one by one."""
    from mint_redeem.services import mints_confirm_on_chain

    statuses = dict(ChainOperation.objects.filter(pk__in=[op.id for ops in confirmed.values() for op in ops])
                    .values_list("pk", "status"))
    pending = [(tx_hash, op) for tx_hash, ops in confirmed.items() for op in ops
               if statuses.get(op.id) != ChainOperation.Status.CONFIRMED]
    tx_hashes = {int(op.reference.partition("-")[2]): tx_hash for tx_hash, op in pending
                 if op.kind == ChainOperation.Kind.MINT and op.reference.startswith("mint-")}
    if len(pending) > 1 and len(tx_hashes) == len(pending):
        mints_confirm_on_chain(tx_hashes=tx_hashes, actor=EXECUTOR_ACTOR)
        return
    for tx_hash, op in pending:
        on_confirmed(op, tx_hash=tx_hash)


def on_replaced(op: ChainOp, *, signed_tx: str, tx_hash: str) -> None:
    from mint_redeem.services.chain import chain_operation_record_replacement

    chain_operation_record_replacement(operation=ChainOperation.objects.get(pk=op.id), replaces=op.tx_hash,
                                       signed_tx=signed_tx, tx_hash=tx_hash)


def on_chain_record(op: ChainOp, *, tx_hash: str) -> None:
    from mint_redeem.services.chain import chain_operation_adopt_chain_record

    chain_operation_adopt_chain_record(operation=ChainOperation.objects.get(pk=op.id), tx_hash=tx_hash)


def on_failed(op: ChainOp, *, error: str) -> None:
    from mint_redeem.services.chain import chain_operation_record_failed

    chain_operation_record_failed(operation=ChainOperation.objects.get(pk=op.id), error=error)


def on_confirmed(op: ChainOp, *, tx_hash: str) -> None:
    from mint_redeem.services import mint_confirm_on_chain, redemption_confirm_burn

    status = ChainOperation.objects.values_list("status", flat=True).get(pk=op.id)
    if status == ChainOperation.Status.CONFIRMED:
        return  # reported by an earlier run (at least once from the chain, exactly once here)

    prefix, _, pk = op.reference.partition("-")
    if op.kind == ChainOperation.Kind.MULTIPLIER and prefix == "multiplier":
        from mint_redeem.services.chain import chain_operation_record_confirmed

        chain_operation_record_confirmed(operation=ChainOperation.objects.get(pk=op.id), tx_hash=tx_hash)
    elif op.kind == ChainOperation.Kind.RESERVE:
        from mint_redeem.reserve_feed import reserve_feed_confirm

        reserve_feed_confirm(operation_id=op.id, tx_hash=tx_hash)
    elif op.kind == ChainOperation.Kind.MINT and prefix == "mint":
        mint_confirm_on_chain(mint=MintRequest.objects.get(pk=int(pk)), tx_hash=tx_hash, actor=EXECUTOR_ACTOR)
    elif op.kind == ChainOperation.Kind.BURN and prefix == "redemption":
        redemption_confirm_burn(redemption=Redemption.objects.get(pk=int(pk)), tx_hash=tx_hash, actor=EXECUTOR_ACTOR)
    else:
        raise ValueError(f"operation {op.id}: a {op.kind} for {op.reference!r} is not one we know")


def on_redeemed(deposit: RedeemedDeposit) -> None:
    """A confirmed Redeemed event (in the watcher's transaction that marks it handled): the tokens of the
    redemption it names arrived, or, if it matches no redemption waiting for exactly these tokens, a case
    for operations. Never a burn without a matching request."""
    from mint_redeem.services import redemption_tokens_receive

    redemption, problem = _match(deposit)
    if redemption is not None and not problem:
        try:
            with transaction.atomic():
                redemption_tokens_receive(redemption=redemption, tx_hash=deposit.tx_hash, actor=WATCHER_ACTOR)
            return
        except RequestError as exc:
            problem = f"{redemption.stream} refused the deposit: {exc}"
    logger.warning("unmatched redemption deposit on %s (tx %s): %s", deposit.chain, deposit.tx_hash, problem)
    DepositCase.objects.get_or_create(chain=deposit.chain, tx_hash=deposit.tx_hash, log_index=deposit.log_index,
                                      defaults={"token": deposit.token, "holder": deposit.holder,
                                                "amount_base_units": deposit.amount_base_units,
                                                "reference": deposit.reference or "", "ref_hex": deposit.ref_hex,
                                                "block_number": deposit.block_number, "redemption": redemption,
                                                "problem": problem[:2000]})


def _match(deposit: RedeemedDeposit) -> tuple[Redemption | None, str]:
    product_id = (ChainDeployment.objects.filter(chain=deposit.chain, address__iexact=deposit.token)
                  .values_list("product_id", flat=True).first())
    if product_id is None:
        return None, f"token {deposit.token} is none of our products on {deposit.chain}"
    prefix, _, pk = (deposit.reference or "").partition("-")
    if prefix != "redemption" or not pk.isdigit():
        return None, f"reference {deposit.reference or deposit.ref_hex!r} names no redemption"
    redemption = Redemption.objects.filter(pk=int(pk)).first()
    if redemption is None:
        return None, f"no redemption {deposit.reference}"
    if redemption.product_id != product_id or redemption.chain != deposit.chain:
        return redemption, f"{redemption.stream} is for another product or chain"
    if int(redemption.token_base_units) != deposit.amount_base_units:
        return redemption, (f"{redemption.stream} expects {int(redemption.token_base_units)} base units, "
                            f"{deposit.amount_base_units} arrived")
    if redemption.state != "requested":
        return redemption, f"{redemption.stream} is {redemption.state}, not requested"
    return redemption, ""


def register() -> None:
    from chains import outcomes

    outcomes.register(claim_pending=claim_pending, has_pending=has_pending, signed_not_broadcast=signed_not_broadcast,
                      broadcast_not_confirmed=broadcast_not_confirmed, on_signed=on_signed, on_broadcast=on_broadcast,
                      on_confirmed=on_confirmed, on_failed=on_failed, on_expired=on_expired, on_redeemed=on_redeemed,
                      in_flight=in_flight, on_replaced=on_replaced, on_chain_record=on_chain_record,
                      on_signed_batch=on_signed_batch, on_broadcast_batch=on_broadcast_batch,
                      on_confirmed_batch=on_confirmed_batch)
