"""Reads of the custody app."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, QuerySet

from custody.models import (
    Attestation,
    BrokerOrder,
    Fill,
    InKindTransfer,
    ReconciliationBreak,
    StatementHolding,
    SupplyBreak,
    SupplyObservation,
    TokenProduct,
    blocking_break_exists,
    supply_stream,
)
from custody.reserves import ReserveFigures, all_reserves


@dataclass(frozen=True)
class ProductWithReserves:
    product: TokenProduct
    reserves: ReserveFigures
    minting_paused: bool
    minting_paused_by_break: bool


def products_annotated() -> QuerySet[TokenProduct]:
    blocking = blocking_break_exists(security_id=OuterRef("security_id"), product_id=OuterRef("pk"))
    return (TokenProduct.objects.select_related("security").prefetch_related("deployments")
            .annotate(has_blocking_break=blocking))


def products_with_reserves(*, symbols: list[str] | None = None) -> list[ProductWithReserves]:
    """Every product (or those named) with its live reserve figures, for market makers and the admin."""
    products = products_annotated().order_by("symbol")
    if symbols is not None:
        products = products.filter(symbol__in=symbols)
    products = list(products)
    reserves = all_reserves(products)
    return [ProductWithReserves(product=p, reserves=reserves[p.id],
                                minting_paused=p.status == TokenProduct.Status.PAUSED or p.has_blocking_break,
                                minting_paused_by_break=p.has_blocking_break)
            for p in products]


def open_breaks() -> QuerySet[ReconciliationBreak]:
    return (ReconciliationBreak.objects.filter(status=ReconciliationBreak.Status.OPEN)
            .select_related("custodian", "security").order_by("detected_at"))


def orders_open() -> QuerySet[BrokerOrder]:
    return BrokerOrder.objects.exclude(status__in=BrokerOrder.TERMINAL).select_related("broker", "security")


def open_supply_breaks() -> QuerySet[SupplyBreak]:
    return SupplyBreak.objects.filter(status=SupplyBreak.Status.OPEN).select_related("product").order_by("detected_at")


def supply_observed_latest(*, product: TokenProduct) -> dict[str, SupplyObservation]:
    """The latest recorded supply observation of `product` on each chain it was observed on."""
    rows = (SupplyObservation.objects.filter(product=product).select_related("product")
            .order_by("chain", "-stream_version").distinct("chain"))
    return {row.chain: row for row in rows}


def supply_observed_as_of(*, product: TokenProduct, position: int) -> dict[str, SupplyObservation]:
    """Per chain, the observation in force after the ledger event at `position`: the last one whose
    `custody.supply_observed` event is at or before it (for attestations of a past instant: take the
    position with ledger.selectors.position_at). Per chain, a backward walk of the log's
    (stream, version) index that stops at the first event at or before `position`."""
    found = {}
    chains = (SupplyObservation.objects.filter(product=product).order_by("chain").distinct("chain")
              .values_list("chain", flat=True))
    with connection.cursor() as cursor:
        for chain in chains:
            cursor.execute("SELECT stream_version FROM ledger_event WHERE stream_id = %s AND position <= %s "
                           "ORDER BY stream_version DESC LIMIT 1", [supply_stream(product.symbol, chain), position])
            row = cursor.fetchone()
            if row is not None:
                found[chain] = row[0]
    rows = SupplyObservation.objects.filter(product=product, chain__in=list(found)).select_related("product")
    return {row.chain: row for row in rows.filter(stream_version__in=set(found.values()))
            if found[row.chain] == row.stream_version}


# --------------------------------------------------------------------------- attestations

def attestation_latest() -> Attestation | None:
    """The most recently issued attestation (the admin dashboard's and /attestations/latest)."""
    return Attestation.objects.order_by("-id").first()


def attestation_latest_id() -> str | None:
    """The id of the most recently issued attestation: one index probe, without its document."""
    return Attestation.objects.order_by("-id").values_list("attestation_id", flat=True).first()


def attestation_id_at_head(*, position: int) -> str | None:
    """The id of the first attestation issued of the ledger as of `position`, if one was."""
    return (Attestation.objects.filter(head_position=position).order_by("id")
            .values_list("attestation_id", flat=True).first())


# An issued document never changes (stored once; its id is the hash of the bytes it signs), so a process
# keeps the bytes of the last few it served: /attestations/latest is then an index probe for the latest
# id instead of a 400 kB read (at 500 products) per request. Misses are not kept: an id unknown now may be
# issued later.
_DOCUMENTS_KEPT = 4
_documents: OrderedDict[str, bytes] = OrderedDict()
_documents_lock = threading.Lock()


def attestation_document(*, attestation_id: str) -> bytes | None:
    """The RFC 8785 bytes of an issued attestation, exactly as signed and stored, or None."""
    with _documents_lock:
        body = _documents.get(attestation_id)
        if body is not None:
            _documents.move_to_end(attestation_id)
            return body
    text = Attestation.objects.filter(attestation_id=attestation_id).values_list("document", flat=True).first()
    if text is None:
        return None
    body = text.encode("utf-8")
    with _documents_lock:
        _documents[attestation_id] = body
        while len(_documents) > _DOCUMENTS_KEPT:
            _documents.popitem(last=False)
    return body


def attestation_signer_keys() -> list[str]:
    """Hex public keys of every key that signed a stored attestation (they stay published after rotation)."""
    return list(Attestation.objects.order_by().values_list("public_key", flat=True).distinct())


def attestation_history(*, limit: int = 200) -> list[Attestation]:
    """The latest `limit` attestations, oldest first (the transparency page's chart)."""
    return list(reversed(Attestation.objects.order_by("-id")[:limit]))


# --------------------------------------------------------------------------- provenance

def _statement_line(*, custodian_id: int, security_id: int, on_or_after) -> dict | None:
    """The first custodian statement dated on or after `on_or_after` that lists the security: the
    custodian's own record of the shares (None until such a statement is imported)."""
    line = (StatementHolding.objects.filter(statement__account__custodian_id=custodian_id, security_id=security_id,
                                            statement__as_of__date__gte=on_or_after)
            .select_related("statement__account__custodian").order_by("statement__as_of", "statement_id").first())
    if line is None:
        return None
    statement = line.statement
    return {"custodian": statement.account.custodian.code, "account_number": statement.account.account_number,
            "statement_ref": statement.statement_ref, "as_of": statement.as_of.isoformat(),
            "sha256": statement.sha256, "ledger_position": statement.ledger_position,
            "quantity_nano": str(line.quantity_nano)}


def backing_of(*, broker_order_id: int | None, transfer_reference: str) -> dict:
    """What backs a mint: the broker fills of its order (cash-funded) or the custodian's confirmation of the
    shares delivered in kind, each with the custodian statement line that shows the shares held."""
    fills = []
    if broker_order_id is not None:
        for fill in (Fill.objects.filter(order_id=broker_order_id).select_related("order__broker", "order__security")
                     .order_by("executed_at", "id")):
            custodian_id = fill.order.broker.custodian_id
            fills.append({
                "broker": fill.order.broker.code, "broker_order_id": fill.order.broker_order_id,
                "broker_fill_id": fill.broker_fill_id, "ticker": fill.order.security.ticker, "side": fill.order.side,
                "quantity_nano": str(fill.quantity_nano), "price": str(fill.price),
                "executed_at": fill.executed_at.isoformat(), "trade_date": fill.trade_date.isoformat(),
                "settlement_date": fill.settlement_date.isoformat(), "status": fill.status,
                "statement_line": (_statement_line(custodian_id=custodian_id, security_id=fill.order.security_id,
                                                   on_or_after=fill.settlement_date)
                                   if fill.status == Fill.Status.SETTLED and custodian_id else None)})
    transfers = []
    for transfer in InKindTransfer.objects.filter(reference=transfer_reference).select_related("custodian", "security"):
        transfers.append({
            "custodian": transfer.custodian.code, "direction": transfer.direction, "ticker": transfer.security.ticker,
            "quantity_nano": str(transfer.quantity_nano), "custodian_confirmation": transfer.custodian_confirmation,
            "confirmed_at": transfer.created_at.isoformat(),
            "statement_line": _statement_line(custodian_id=transfer.custodian_id, security_id=transfer.security_id,
                                              on_or_after=transfer.created_at.date())})
    return {"fills": fills, "in_kind_transfers": transfers}
