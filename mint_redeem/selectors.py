"""Reads for the market-maker API and the admin."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet

from compliance.models import Wallet
from config.sql import partial
from custody.models import ReconciliationBreak, SupplyBreak, TokenProduct
from ledger import selectors as ledger_selectors
from mint_redeem.models import MintRequest, Redemption


def mints_of(*, participant_id: int) -> QuerySet[MintRequest]:
    return MintRequest.objects.filter(participant_id=participant_id).select_related("product", "wallet")


def redemptions_of(*, participant_id: int) -> QuerySet[Redemption]:
    return Redemption.objects.filter(participant_id=participant_id).select_related("product", "wallet")


def request_history(*, request) -> list[dict]:
    """The request's full event history, straight from its ledger stream."""
    return [
        {"position": e.position, "version": e.version, "type": e.type, "recorded_at": e.recorded_at,
         "actor": e.metadata.get("actor"), "data": e.data, "hash": e.hash.hex()}
        for e in ledger_selectors.read_stream(stream=request.stream)
    ]


# What a new request needs before its transaction, read in one hand-written statement (it runs on every
# request): the product with its terms, its deployment on the chain and whether a break (custody or
# supply: custody.models.blocking_break_exists) pauses it; the caller's wallet; and the caller's webhook
# endpoints.
_PRODUCT_FIELDS = ("id", "symbol", "security_id", "multiplier", "status")
_TERMS_FIELDS = ("id", "product_id", "broker_id", "custodian_id", "reference_price", "cash_buffer_bps", "fee_bps",
                 "approval_threshold_cents", "market_hours_only", "redemption_addresses")
_DEPLOYMENT_FIELDS = ("id", "product_id", "chain", "decimals", "address")
_WALLET_FIELDS = ("id", "participant_id", "chain", "address")
_CONTEXT_SQL = """
    SELECT p.id, p.symbol, p.security_id, p.multiplier, p.status,
           t.id, t.product_id, t.broker_id, t.custodian_id, t.reference_price, t.cash_buffer_bps, t.fee_bps,
           t.approval_threshold_cents, t.market_hours_only, t.redemption_addresses,
           d.id, d.product_id, d.chain, d.decimals, d.address,
           w.id, w.participant_id, w.chain, w.address,
           (EXISTS(SELECT 1 FROM custody_reconciliationbreak b
                   WHERE b.security_id = p.security_id AND b.status = %(open)s AND b.blocks_minting)
            OR EXISTS(SELECT 1 FROM custody_supplybreak s WHERE s.product_id = p.id AND s.status = %(supply_open)s)),
           ARRAY(SELECT e.id FROM mint_redeem_webhookendpoint e
                 WHERE e.participant_id = %(participant)s AND e.active ORDER BY e.id)
    FROM custody_tokenproduct p
    LEFT JOIN mint_redeem_productterms t ON t.product_id = p.id
    LEFT JOIN custody_chaindeployment d ON d.product_id = p.id AND d.chain = %(chain)s
    LEFT JOIN compliance_wallet w ON w.id = %(wallet)s AND w.participant_id = %(participant)s
    WHERE p.symbol = %(symbol)s"""


@dataclass(frozen=True)
class TermsRow:
    """The product terms a request is quoted on (a row of mint_redeem_productterms)."""

    id: int
    product_id: int
    broker_id: int
    custodian_id: int
    reference_price: Decimal
    cash_buffer_bps: int
    fee_bps: int
    approval_threshold_cents: int
    market_hours_only: bool
    redemption_addresses: dict


@dataclass(frozen=True)
class DeploymentRow:
    id: int
    product_id: int
    chain: str
    decimals: int
    address: str


# The hand-written statement's columns and the rows' fields are one list each; keep them in step.
assert tuple(f.name for f in fields(TermsRow)) == _TERMS_FIELDS
assert tuple(f.name for f in fields(DeploymentRow)) == _DEPLOYMENT_FIELDS


@dataclass(frozen=True)
class RequestContext:
    """None where missing: terms (not offered), deployment (not on that chain), wallet (not the caller's).
    The product and the wallet are model instances (only the columns read here; the rest are deferred)
    because they become the new request's foreign keys; the rest are plain rows."""

    product: TokenProduct
    terms: TermsRow | None
    deployment: DeploymentRow | None
    paused_by_break: bool
    wallet: Wallet | None
    webhook_endpoint_ids: list[int]


def request_context(*, product_symbol: str, chain: str, participant_id: int, wallet_id: int) -> RequestContext | None:
    """None if there is no such product."""
    with connection.cursor() as cursor:
        cursor.execute(_CONTEXT_SQL, {"open": ReconciliationBreak.Status.OPEN, "supply_open": SupplyBreak.Status.OPEN,
                                      "participant": participant_id,
                                      "chain": chain, "wallet": wallet_id, "symbol": product_symbol})
        row = cursor.fetchone()
    if row is None:
        return None
    a = len(_PRODUCT_FIELDS)
    b = a + len(_TERMS_FIELDS)
    c = b + len(_DEPLOYMENT_FIELDS)
    d = c + len(_WALLET_FIELDS)
    product = partial(TokenProduct, _PRODUCT_FIELDS, row[:a])
    terms = None
    if row[a] is not None:
        terms_row = list(row[a:b])
        addresses = terms_row[-1]
        terms_row[-1] = json.loads(addresses) if isinstance(addresses, str | bytes) else addresses
        terms = TermsRow(*terms_row)
    return RequestContext(
        product=product, terms=terms,
        deployment=DeploymentRow(*row[b:c]) if row[b] is not None else None,
        wallet=partial(Wallet, _WALLET_FIELDS, row[c:d]) if row[c] is not None else None,
        paused_by_break=row[d], webhook_endpoint_ids=list(row[d + 1]))


def active_webhook_endpoint_ids(*, participant_id: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM mint_redeem_webhookendpoint WHERE participant_id = %s AND active ORDER BY id",
                       [participant_id])
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class StuckRequest:
    kind: str
    id: int
    state: str
    since: object
    why: str


def stuck_requests(*, older_than) -> list[StuckRequest]:
    """Requests that nothing will move on: a state outside the lifecycle, a chain state without a live
    chain operation, an order state without its order, or a task-moved state that has not moved for
    longer than `older_than` (a timedelta: longer than any settlement cycle, so only a real stall)."""
    from django.utils import timezone

    from mint_redeem.lifecycle import MOVERS, MintLifecycle, RedemptionLifecycle, final_states, mover
    from mint_redeem.models import ChainOperation

    cutoff = timezone.now() - older_than
    found: list[StuckRequest] = []
    for kind, model, machine in (("mint", MintRequest, MintLifecycle), ("redemption", Redemption, RedemptionLifecycle)):
        finals = final_states(machine)
        live_operations = set(ChainOperation.objects.exclude(status=ChainOperation.Status.FAILED)
                              .values_list("request_reference", flat=True))
        for request in model.objects.exclude(state__in=finals):
            who = mover(kind, request.state, in_kind=request.in_kind)
            why = ""
            if request.state not in MOVERS[kind]:
                why = f"state {request.state!r} is not in the {kind} lifecycle"
            elif who == "chain" and request.stream not in live_operations:
                why = "waits for the chain but has no live chain operation"
            elif request.state == "order_placed" and request.broker_order_id is None:
                why = "order_placed without a broker order"
            elif who in ("task", "transient") and request.updated_at < cutoff:
                why = f"moved by a task but unchanged since {request.updated_at.isoformat()}"
            if why:
                found.append(StuckRequest(kind=kind, id=request.pk, state=request.state, since=request.updated_at,
                                          why=why))
    return found
