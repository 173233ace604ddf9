"""Reads of the custody app."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, QuerySet

from custody.models import (
    BrokerOrder,
    ReconciliationBreak,
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
