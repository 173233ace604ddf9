"""mint_redeem's side of chains.outcomes: the executor claims and records outbox rows through these
functions, which mint_redeem's AppConfig.ready registers. chains never imports mint_redeem; this
module is where the two meet, and every state change goes through mint_redeem.services.chain."""

from __future__ import annotations

from chains.outcomes import ChainOp
from mint_redeem.models import ChainOperation, MintRequest, Redemption

EXECUTOR_ACTOR = "task:chains.executor"


def _op(row: ChainOperation) -> ChainOp:
    return ChainOp(id=row.pk, kind=row.kind, chain=row.chain, product_id=row.product_id, address=row.address,
                   amount_base_units=int(row.amount_base_units), reference=row.request_reference,
                   signed_tx=row.signed_tx, tx_hash=row.tx_hash)


def claim_pending(*, chain: str, kind: str, limit: int) -> list[ChainOp]:
    """Locked FOR UPDATE SKIP LOCKED in the caller's transaction: the oldest pending operation's product,
    and up to `limit` pending operations of that product, oldest first."""
    pending = ChainOperation.objects.select_for_update(skip_locked=True).filter(
        chain=chain, kind=kind, status=ChainOperation.Status.PENDING).order_by("pk")
    first = pending.first()
    if first is None:
        return []
    return [_op(row) for row in pending.filter(product_id=first.product_id)[:limit]]


def signed_not_broadcast(*, chain: str, limit: int) -> list[ChainOp]:
    rows = ChainOperation.objects.filter(chain=chain, status=ChainOperation.Status.SIGNED).order_by("pk")[:limit]
    return [_op(row) for row in rows]


def on_signed(op: ChainOp, *, signed_tx: str, tx_hash: str) -> None:
    from mint_redeem.services import chain_operation_record_signed

    chain_operation_record_signed(operation=ChainOperation.objects.get(pk=op.id), signed_tx=signed_tx, tx_hash=tx_hash)


def on_broadcast(op: ChainOp) -> None:
    from mint_redeem.services import chain_operation_record_broadcast

    chain_operation_record_broadcast(operation=ChainOperation.objects.get(pk=op.id))


def on_confirmed(op: ChainOp, *, tx_hash: str) -> None:
    from mint_redeem.services import mint_confirm_on_chain, redemption_confirm_burn

    prefix, _, pk = op.reference.partition("-")
    if op.kind == ChainOperation.Kind.MINT and prefix == "mint":
        mint_confirm_on_chain(mint=MintRequest.objects.get(pk=int(pk)), tx_hash=tx_hash, actor=EXECUTOR_ACTOR)
    elif op.kind == ChainOperation.Kind.BURN and prefix == "redemption":
        redemption_confirm_burn(redemption=Redemption.objects.get(pk=int(pk)), tx_hash=tx_hash, actor=EXECUTOR_ACTOR)
    else:
        raise ValueError(f"operation {op.id}: a {op.kind} for {op.reference!r} is not one we know")


def register() -> None:
    from chains import outcomes

    outcomes.register(claim_pending=claim_pending, signed_not_broadcast=signed_not_broadcast, on_signed=on_signed,
                      on_broadcast=on_broadcast, on_confirmed=on_confirmed)
