"""Each attestation's reserves, published on chain: one ReserveFeed update per product and feed.

custody issues attestations and cannot reach the chains (architecture section 2), so the outbox rows
are written here, above both: `reserve_feed_publish` turns one attestation into one ChainOperation
(kind "reserve") per product that has a ReserveFeedDeployment, keyed by a reference derived from the
attestation, the product and the chain. Writing them again finds the same rows (exactly once here);
the executor signs and records each before broadcasting (exactly once there), and the contract
refuses a reference it has seen (exactly once on chain). The beat task publishes every attestation
not yet published.
"""

from __future__ import annotations

import hashlib
import json

from django.db import transaction

from custody.models import Attestation, ReserveFeedDeployment
from mint_redeem import jobs
from mint_redeem.models import ChainOperation


def feed_reference(*, attestation_id: str, symbol: str, chain: str) -> str:
    """32 ASCII characters (the on-chain bytes32 reference): "rf-" and a digest of what it publishes."""
    return "rf-" + hashlib.sha256(f"{attestation_id}:{symbol}:{chain}".encode()).hexdigest()[:29]


def reserve_feed_publish(*, attestation: Attestation) -> list[ChainOperation]:
    """The attestation's reserve-feed updates, written once (the same rows on a second call)."""
    from chains.config import evm_chain_names

    products = {p["symbol"]: p for p in json.loads(attestation.document)["payload"]["products"]}
    feeds = ReserveFeedDeployment.objects.filter(product__symbol__in=list(products)).select_related("product")
    operations = []
    with transaction.atomic():
        for feed in feeds:
            figures = products[feed.product.symbol]
            operation, created = ChainOperation.objects.get_or_create(
                request_reference=feed_reference(attestation_id=attestation.attestation_id,
                                                 symbol=feed.product.symbol, chain=feed.chain),
                defaults={"kind": ChainOperation.Kind.RESERVE, "chain": feed.chain, "product": feed.product,
                          "address": feed.address, "amount_base_units": int(figures["shares_available_nano"]),
                          "supply_base_units": int(figures["shares_required_nano"])})
            operations.append(operation)
            if created and feed.chain in evm_chain_names():
                jobs.enqueue_on_commit(jobs.EXECUTE_CHAIN, feed.chain)
    return operations


def reserve_feed_confirm(*, operation_id: int, tx_hash: str) -> ChainOperation:
    """The executor saw the update confirmed: accepted only for the transaction it was broadcast with."""
    with transaction.atomic():
        operation = ChainOperation.objects.select_for_update().get(pk=operation_id)
        if operation.status == ChainOperation.Status.CONFIRMED:
            return operation
        if operation.status != ChainOperation.Status.BROADCAST or operation.tx_hash != tx_hash:
            raise ValueError(f"reserve update {operation.pk}: confirmation of {tx_hash} refused "
                             f"({operation.status}, broadcast {operation.tx_hash})")
        operation.status = ChainOperation.Status.CONFIRMED
        operation.save(update_fields=["status", "updated_at"])
    return operation


def reserve_feed_publish_recent(*, limit: int = 5) -> int:
    """Publish the latest attestations (already published ones find their rows and change nothing)."""
    if not ReserveFeedDeployment.objects.exists():
        return 0
    return sum(len(reserve_feed_publish(attestation=a)) for a in Attestation.objects.order_by("-id")[:limit])
