"""Observed supply: each chain's total supply of a product, read at a known block, against the
ledger's tokens outstanding (architecture section 6, "observed on-chain supply").

custody never reads a chain (section 2): the observer that does (mint_redeem.supply_observer, on a
beat) hands the reading here. The rule that tells a break from tokens in flight:

- the observer first takes a ledger position L (the head) and, in the same database snapshot, the
  operations of that product and chain that are signed or broadcast but not confirmed at L;
- only then it reads the chain at block B = head - confirmation depth: every confirmation recorded
  at or before L was at that depth when recorded, so its block is at or below B and its tokens are
  in the supply at B;
- of the operations in flight at L, those the contract records as done at B (its `mintedRefs` /
  `burnedRefs` mapping, read at B) explain the difference exactly: their amounts, mints +, burns -,
  are `in_flight_base_units`;
- what remains, supply(B) - ledger(L) - in_flight, is unexplained: any amount other than zero opens
  a supply break, which pauses minting of the product on every chain. No tolerance and no waiting
  for a second observation: the rule is exact, so a transient difference cannot show as a break.

A later observation that agrees clears an open break; a person may resolve one with a reason
(`supply_break_resolve`), after which the same unexplained amount on that chain is not reopened (it
was looked at), but any other amount is.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from config.api import DomainError
from config.logging import current_correlation_id
from custody.models import ChainDeployment, SupplyBreak, SupplyObservation, TokenProduct, supply_stream
from ledger.selectors import balance_as_of, head
from ledger.services import NewEvent, append

logger = logging.getLogger(__name__)


class SupplyError(DomainError):
    code = "invalid_supply_observation"


def _int(name: str, value, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise SupplyError(f"{name} must be an integer" + (f" >= {minimum}" if minimum is not None else ""))
    return value


def supply_observation_record(*, product: TokenProduct, chain: str, supply_base_units: int, block: int,
                              block_hash: str, observed_at: datetime, actor: str, ledger_position: int | None = None,
                              in_flight_base_units: int = 0) -> SupplyObservation:
    """Record a reading of `product`'s total supply on `chain` at `block` and compare it with the
    ledger's tokens/<chain>/<SYMBOL> (posted) as of `ledger_position` (default: the head now, which is
    right only for a chain read after this call's snapshot: see the module docstring). Opens, updates
    or clears the product's supply break on that chain. Idempotent: the same block, hash, supply and
    ledger position again return the observation already recorded; a reading older than the latest
    recorded (a slower observer) is not recorded and the latest is returned."""
    supply_base_units = _int("supply_base_units", supply_base_units)
    block = _int("block", block)
    in_flight_base_units = _int("in_flight_base_units", in_flight_base_units, minimum=None)
    if ledger_position is not None:
        ledger_position = _int("ledger_position", ledger_position)
    if not isinstance(block_hash, str) or len(block_hash) > 100:
        raise SupplyError("block_hash must be a string of at most 100 characters")
    if timezone.is_naive(observed_at):
        raise SupplyError("observed_at must be timezone-aware")

    with transaction.atomic():
        # One observer per product and chain at a time; FOR NO KEY UPDATE so foreign-key checks of
        # concurrent commits (FOR KEY SHARE) are never blocked (see custody.reserves).
        deployment = (ChainDeployment.objects.select_for_update(no_key=True, of=("self",))
                      .select_related("product").filter(product=product, chain=chain).first())
        if deployment is None:
            raise SupplyError(f"{product.symbol} is not deployed on {chain!r}", code="unknown_chain")
        product = deployment.product
        latest = (SupplyObservation.objects.filter(product=product, chain=chain)
                  .order_by("-stream_version").first())
        if ledger_position is None:
            ledger_position = head().position
        if latest is not None:
            if (latest.block, latest.block_hash, int(latest.supply_base_units), latest.ledger_position) == (
                    block, block_hash, supply_base_units, ledger_position):
                return latest
            if block < latest.block or ledger_position < latest.ledger_position:
                return latest
        outstanding = balance_as_of(account=product.tokens_account(chain), asset=product.token_asset(chain),
                                    position=ledger_position).posted
        difference = supply_base_units - outstanding
        unexplained = difference - in_flight_base_units
        version = latest.stream_version if latest else 0
        observation = SupplyObservation.objects.create(
            product=product, chain=chain, stream_version=version + 1, block=block, block_hash=block_hash,
            supply_base_units=supply_base_units, ledger_position=ledger_position,
            ledger_outstanding_base_units=outstanding, in_flight_base_units=in_flight_base_units,
            difference_base_units=difference, observed_at=observed_at)
        stream = supply_stream(product.symbol, chain)
        events = [NewEvent(stream=stream, type="custody.supply_observed", data={
            "product": product.symbol, "chain": chain, "supply_base_units": supply_base_units, "block": block,
            "block_hash": block_hash, "ledger_position": ledger_position,
            "ledger_outstanding_base_units": outstanding, "in_flight_base_units": in_flight_base_units,
            "difference_base_units": difference, "observed_at": observed_at.isoformat()})]
        events += _break_events(observation, unexplained)
        append(events=events, actor=actor, expected={stream: version}, correlation_id=current_correlation_id())
    if unexplained:
        logger.warning("supply of %s on %s at block %s is %s base units; the ledger accounts for %s (in flight %s)",
                       product.symbol, chain, block, supply_base_units, outstanding, in_flight_base_units)
    return observation


def _break_events(observation: SupplyObservation, unexplained: int) -> list[NewEvent]:
    product, chain, now = observation.product, observation.chain, timezone.now()
    current = SupplyBreak.objects.select_for_update().filter(product=product, chain=chain,
                                                             status=SupplyBreak.Status.OPEN).first()
    figures = {"block": observation.block, "supply_base_units": int(observation.supply_base_units),
               "ledger_outstanding_base_units": int(observation.ledger_outstanding_base_units),
               "in_flight_base_units": int(observation.in_flight_base_units), "unexplained_base_units": unexplained}
    if current is None:
        if not unexplained:
            return []
        last_resolved = (SupplyBreak.objects.filter(product=product, chain=chain, status=SupplyBreak.Status.RESOLVED)
                         .order_by("-resolved_at").first())
        if last_resolved is not None and int(last_resolved.unexplained_base_units) == unexplained:
            return []  # a person looked at exactly this difference and resolved it
        item = SupplyBreak.objects.create(product=product, chain=chain, detected_at=now, last_seen_at=now, **figures)
        return [NewEvent(stream=item.stream, type="custody.supply_break_opened",
                         data={"break_id": item.id, "product": product.symbol, "chain": chain, **figures})]
    current.last_seen_at = now
    if not unexplained:
        current.status, current.resolved_at, current.resolved_by = SupplyBreak.Status.CLEARED, now, "observation"
        current.resolution_reason = f"supply agrees with the ledger at block {observation.block}"
        current.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_reason", "last_seen_at"])
        return [NewEvent(stream=current.stream, type="custody.supply_break_cleared",
                         data={"break_id": current.id, "block": observation.block})]
    if int(current.unexplained_base_units) == unexplained:
        current.save(update_fields=["last_seen_at"])
        return []
    for name, value in figures.items():
        setattr(current, name, value)
    current.save(update_fields=[*figures, "last_seen_at"])
    return [NewEvent(stream=current.stream, type="custody.supply_break_updated",
                     data={"break_id": current.id, **figures})]


def supply_break_resolve(*, break_: SupplyBreak, reason: str, actor: str) -> SupplyBreak:
    """Close an open supply break with the reason a person gives ("test mint by operations, burned in
    tx ...", "ledger corrected by ..."). Minting resumes if no other break pauses the product."""
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise SupplyError("a reason (at least 5 characters) is required to resolve a break", code="reason_required")
    with transaction.atomic():
        item = SupplyBreak.objects.select_for_update().get(pk=break_.pk)
        if item.status != SupplyBreak.Status.OPEN:
            raise SupplyError(f"supply break {item.id} is already {item.status}", code="break_not_open",
                              http_status=409)
        item.status, item.resolved_at, item.resolved_by, item.resolution_reason = (
            SupplyBreak.Status.RESOLVED, timezone.now(), actor, reason)
        item.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_reason"])
        append(events=[NewEvent(stream=item.stream, type="custody.supply_break_resolved",
                                data={"break_id": item.id, "reason": reason})],
               actor=actor, correlation_id=current_correlation_id())
    return item
