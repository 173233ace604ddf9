"""Every way a mint or a redemption can change: read this module to know them all.

Each transition locks the request row, asks the lifecycle (mint_redeem.lifecycle) whether it is
allowed, appends its ledger events (with postings) at the stream version the row reflects, updates
the row and queues webhook deliveries, all in one transaction. Steps that talk to the outside (the
broker, later the chains) are idempotent and keyed by the request (`mint-<id>`), so a task killed
between two lines is simply run again.

Ledger accounts used here (custody owns the share accounts):
  issuer_cash/bank            cash at the issuer's bank (asset, USD cents)
  participant/<id>/cash       cash the issuer holds for a participant (negative = owed to them)
  participant/<id>/shares     shares a participant delivers or receives in kind (external)
  tokens/<chain>/<SYMBOL>     tokens outstanding (positive); issuance/<chain>/<SYMBOL> its counterpart
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from fractions import Fraction

from django.db import transaction
from django.utils import timezone

from compliance import gates
from compliance import services as compliance_services
from compliance.models import Participant
from compliance.roles import assert_four_eyes
from config import sql, transactions
from config.api import DomainError
from config.logging import current_correlation_id
from custody import calendar
from custody import services as custody_services
from custody.models import BrokerOrder, ChainDeployment, Fill, TokenProduct
from custody.reserves import assert_mint_covered
from ledger.postings import Line, PendingOpen, PendingPost, PendingVoid, Posting
from ledger.services import NewEvent, append
from mint_redeem import selectors
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, next_state
from mint_redeem.models import (
    ChainOperation,
    MintRequest,
    ProductTerms,
    Redemption,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)

NANO = 10**9
BANK = "issuer_cash/bank"
MAX_QUANTITY_NANO = 10**18  # a billion shares: far above any real request, far below bigint
# States whose next step a task takes without anyone acting (kicked on entry, swept by the beat).
AUTOMATIC_STATES = {
    "mint": ("funded", "order_placed", "filled", "settling", "settled", "shares_received"),
    "redemption": ("burned", "order_placed", "filled", "settling"),
}


class RequestError(DomainError):
    code = "invalid_request"


def participant_cash(participant_id: int) -> str:
    return f"participant/{participant_id}/cash"


def participant_shares(participant_id: int) -> str:
    return f"participant/{participant_id}/shares"


def issuance_account(chain: str, symbol: str) -> str:
    return f"issuance/{chain}/{symbol}"


# ------------------------------------------------------------------------------------ quoting

@dataclass(frozen=True)
class Quote:
    product: TokenProduct
    deployment: ChainDeployment
    terms: ProductTerms
    quantity_nano: int
    token_base_units: int
    notional_cents: int
    cash_due_cents: int
    minting_paused: bool


def parse_quantity(quantity: str) -> int:
    """A decimal string of shares -> nano-shares, exactly, or a clear refusal."""
    if not isinstance(quantity, str):
        raise RequestError("quantity must be a decimal string of shares, e.g. \"12.5\"", code="invalid_quantity")
    try:
        value = Decimal(quantity)
    except InvalidOperation:
        raise RequestError(f"quantity {quantity!r} is not a decimal number", code="invalid_quantity") from None
    if not value.is_finite() or value <= 0:
        raise RequestError("quantity must be a positive number of shares", code="invalid_quantity")
    nano = value * NANO
    if nano != nano.to_integral_value():
        raise RequestError("quantity has more than 9 decimal places", code="invalid_quantity")
    if nano > MAX_QUANTITY_NANO:
        raise RequestError("quantity is too large", code="invalid_quantity")
    return int(nano)


def _quote(found: selectors.RequestContext | None, *, product_symbol: str, chain: str, quantity: str) -> Quote:
    if found is None:
        raise RequestError(f"unknown product {product_symbol!r}", code="unknown_product", http_status=404)
    product, terms, deployment = found.product, found.terms, found.deployment
    if terms is None:
        raise RequestError(f"{product_symbol} is not open for primary-market requests", code="product_not_offered")
    if deployment is None:
        raise RequestError(f"{product.symbol} is not deployed on {chain!r}", code="unknown_chain")
    quantity_nano = parse_quantity(quantity)
    # tokens = shares / multiplier; base units = tokens * 10**decimals; must come out whole.
    base_units = Fraction(quantity_nano, NANO) / Fraction(product.multiplier) * 10**deployment.decimals
    if base_units.denominator != 1:
        raise RequestError(f"{quantity} shares is not a whole number of {product.symbol} base units on {chain}",
                           code="quantity_not_representable")
    notional = _ceil_cents(Decimal(quantity_nano) * terms.reference_price / NANO)
    cash_due = _ceil_cents(Decimal(notional) * (10_000 + terms.cash_buffer_bps + terms.fee_bps) / 10_000 / 100)
    return Quote(product=product, deployment=deployment, terms=terms, quantity_nano=quantity_nano,
                 token_base_units=int(base_units), notional_cents=notional, cash_due_cents=cash_due,
                 minting_paused=product.status != TokenProduct.Status.ACTIVE or found.paused_by_break)


def _request_context(participant: Participant, product_symbol: str, chain: str, quantity: str, wallet_id: int):
    """Quote the request and find the caller's wallet for it (one read, before the transaction)."""
    found = selectors.request_context(product_symbol=product_symbol, chain=chain, participant_id=participant.pk,
                                      wallet_id=wallet_id)
    q = _quote(found, product_symbol=product_symbol, chain=chain, quantity=quantity)
    wallet = found.wallet
    if wallet is None:
        raise RequestError("unknown wallet", code="unknown_wallet", http_status=404)
    if wallet.chain != chain:
        raise RequestError(f"wallet {wallet_id} is on {wallet.chain}, not {chain}", code="wallet_chain_mismatch")
    return q, wallet, found.webhook_endpoint_ids


def _ceil_cents(dollars: Decimal) -> int:
    return int((dollars * 100).to_integral_value(rounding=ROUND_CEILING))


# ------------------------------------------------------------------------------- transitions

def _machine(request) -> type:
    return MintLifecycle if isinstance(request, MintRequest) else RedemptionLifecycle


def _kind(request) -> str:
    return "mint" if isinstance(request, MintRequest) else "redemption"


def _lock(request):
    return type(request).objects.select_for_update().select_related(
        "product__security", "participant", "wallet").get(pk=request.pk)


def _transition(request, event: str, *, actor: str, reason: str = "", refs: dict | None = None,
                postings: Sequence[Posting] = (), extra_events: Sequence[NewEvent] = (),
                update_fields: dict | None = None, append_events: bool = True) -> list[NewEvent]:
    """Move a locked request along its lifecycle; returns its events (appended unless told not to,
    for callers that hand them to another app's append in the same transaction)."""
    target = next_state(_machine(request), request.state, event, in_kind=request.in_kind)
    kind = _kind(request)
    ledger_event = NewEvent(stream=request.stream, type=f"{kind}.{target}", postings=list(postings), data={
        "request_id": request.pk, "from_state": request.state, "to_state": target, "reason": reason[:500],
        "refs": {k: str(v) for k, v in (refs or {}).items()}})
    events = [ledger_event, *extra_events]
    previous_state = request.state
    request.state = target
    request.version += sum(1 for e in events if e.stream == request.stream)
    for field, value in (update_fields or {}).items():
        setattr(request, field, value)
    if reason and target in ("rejected", "cancelled", "failed"):
        request.reason = reason[:2000]
    request.save()
    if append_events:
        _append(request, events, actor=actor, expected_version=request.version - len(
            [e for e in events if e.stream == request.stream]))
    _notify(request, event_type=f"{kind}.{target}", previous_state=previous_state)
    if target in AUTOMATIC_STATES[kind]:
        transaction.on_commit(lambda: _kick(kind, request.pk))
    return events


def _append(request, events: Sequence[NewEvent], *, actor: str, expected_version: int, idempotency_key=None,
            savepoint: bool = True):
    return append(events=list(events), expected={request.stream: expected_version}, actor=actor,
                  correlation_id=current_correlation_id(), idempotency_key=idempotency_key, savepoint=savepoint)


def _kick(kind: str, request_id: int) -> None:
    from mint_redeem.tasks import advance_request

    advance_request.delay(kind, request_id)


# ---------------------------------------------------------------------------------- mints

def mint_request_create(*, participant: Participant, product_symbol: str, chain: str, quantity: str,
                        wallet_id: int, funding: str, actor: str, idempotency_key: str = "") -> MintRequest:
    if funding not in MintRequest.Funding.values:
        raise RequestError("funding must be \"cash\" or \"in_kind\"", code="invalid_funding")
    q, wallet, endpoint_ids = _request_context(participant, product_symbol, chain, quantity, wallet_id)
    if q.minting_paused:
        raise RequestError(f"minting of {q.product.symbol} is paused", code="minting_paused", http_status=409)
    notional = q.cash_due_cents if funding == MintRequest.Funding.CASH else q.notional_cents
    with transactions.step():
        # Requested and accepted in one step (the gate passes below), so the row is written once.
        accepted = next_state(MintLifecycle, "requested", "accept", in_kind=funding == MintRequest.Funding.IN_KIND)
        now = timezone.now()
        mint = sql.insert(MintRequest(
            participant_id=participant.pk, product=q.product, chain=chain, wallet=wallet,
            quantity_nano=q.quantity_nano, token_base_units=q.token_base_units, notional_cents=notional,
            funding=funding, cash_due_cents=q.cash_due_cents if funding == MintRequest.Funding.CASH else 0,
            state=accepted, version=2, needs_approval=notional > q.terms.approval_threshold_cents,
            idempotency_key=idempotency_key[:200], created_by=actor, created_at=now, updated_at=now))
        gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet, notional_cents=notional,
                                              reference=mint.stream)
        requested = NewEvent(stream=mint.stream, type="mint.requested", data={
            "mint_id": mint.pk, "participant_id": participant.pk, "product": q.product.symbol, "chain": chain,
            "wallet_address": wallet.address, "quantity_nano": q.quantity_nano,
            "token_base_units": q.token_base_units, "funding": funding, "notional_cents": notional,
            "cash_due_cents": mint.cash_due_cents, "needs_approval": mint.needs_approval})
        accept = NewEvent(stream=mint.stream, type=f"mint.{accepted}", data={
            "request_id": mint.pk, "from_state": "requested", "to_state": accepted,
            "reason": "compliance checks passed", "refs": {}})
        _append(mint, [requested, accept], actor=actor, expected_version=0, savepoint=False)
        _notify(mint, event_type=f"mint.{accepted}", previous_state="requested", endpoint_ids=endpoint_ids)
    return mint


def mint_cash_record(*, mint: MintRequest, amount_cents: int, reference: str, user) -> MintRequest:
    """Operations record the market maker's cash as received at the bank."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise RequestError("amount must be a positive integer of cents", code="invalid_amount")
    with transaction.atomic():
        mint = _lock(mint)
        if amount_cents < mint.cash_due_cents:
            raise RequestError(f"{amount_cents} cents is less than the {mint.cash_due_cents} due",
                               code="insufficient_funding")
        _transition(mint, "fund", actor=f"user:{user.pk}", refs={"bank_reference": reference}, postings=[
            Line(BANK, "USD", amount_cents), Line(participant_cash(mint.participant_id), "USD", -amount_cents)],
            update_fields={"cash_received_cents": amount_cents, "funded_by": user})
    return mint


def request_approve(*, request, user) -> None:
    """Four eyes: a second person approves a request above its product's threshold."""
    with transaction.atomic():
        request = _lock(request)
        if not request.needs_approval:
            raise RequestError("this request needs no approval", code="approval_not_needed")
        if request.approved_by_id is not None:
            raise RequestError("already approved", code="already_approved", http_status=409)
        initiator = getattr(request, "funded_by_id", None)
        if initiator is not None:
            assert_four_eyes(initiator_id=initiator, approver_id=user.pk)
        request.approved_by = user
        request.version += 1
        request.save(update_fields=["approved_by", "version", "updated_at"])
        kind = _kind(request)
        _append(request, [NewEvent(stream=request.stream, type=f"{kind}.approved",
                                   data={"request_id": request.pk, "approved_by": user.pk})],
                actor=f"user:{user.pk}", expected_version=request.version - 1)


def mint_cancel(*, mint: MintRequest, actor: str, reason: str) -> MintRequest:
    with transaction.atomic():
        mint = _lock(mint)
        postings = _refund(mint, mint.cash_received_cents) if mint.state == "funded" else []
        _transition(mint, "cancel", actor=actor, reason=reason or "cancelled", postings=postings)
        compliance_services.notional_usage_release(reference=mint.stream)
    return mint


def mint_fail(*, mint: MintRequest, actor: str, reason: str) -> MintRequest:
    """Stop a mint that cannot complete, refunding what was not spent and releasing reserved tokens."""
    with transaction.atomic():
        mint = _lock(mint)
        postings: list[Posting] = []
        if mint.state in ("funded", "order_placed", "filled", "settling", "settled"):
            postings += _refund(mint, mint.cash_received_cents - (mint.cost_cents or 0))
        if mint.state == "minting":
            _assert_chain_operation_not_in_flight(mint)
            postings.append(PendingVoid(f"tokens-{mint.stream}"))
            ChainOperation.objects.filter(request_reference=mint.stream, status=ChainOperation.Status.PENDING
                                          ).update(status=ChainOperation.Status.FAILED, last_error=reason[:500])
        _transition(mint, "fail", actor=actor, reason=reason, postings=postings)
    return mint


def _assert_chain_operation_not_in_flight(request) -> None:
    """Once a chain operation is signed it may land at any moment: only its outcome (confirmed, or
    failed for good by the executor) may end the request, never a person's guess."""
    operation = ChainOperation.objects.select_for_update().filter(request_reference=request.stream).first()
    if operation is not None and operation.status not in (ChainOperation.Status.PENDING,
                                                            ChainOperation.Status.FAILED):
        raise RequestError(f"the chain operation is {operation.status}; wait for its outcome",
                           code="chain_operation_in_flight", http_status=409)


def _refund(mint: MintRequest, amount_cents: int) -> list[Posting]:
    if amount_cents <= 0:
        return []
    return [Line(participant_cash(mint.participant_id), "USD", amount_cents), Line(BANK, "USD", -amount_cents)]


def mint_shares_receive(*, mint: MintRequest, custodian_confirmation: str, user) -> MintRequest:
    """An in-kind mint's shares arrived at the custodian (operations record the confirmation)."""
    with transaction.atomic():
        mint = _lock(mint)
        terms = ProductTerms.objects.select_related("custodian").get(product=mint.product)
        events = _transition(mint, "receive_shares", actor=f"user:{user.pk}",
                             refs={"custodian_confirmation": custodian_confirmation}, append_events=False)
        custody_services.shares_receive_in_kind(
            custodian=terms.custodian, security=mint.product.security, quantity_nano=mint.quantity_nano,
            from_account=participant_shares(mint.participant_id), reference=mint.stream,
            custodian_confirmation=custodian_confirmation, actor=f"user:{user.pk}", extra_events=events)
    return mint


def mint_advance(*, mint: MintRequest, actor: str, now=None) -> MintRequest:
    """Take every automatic step that is due now; safe to call any number of times."""
    now = now or timezone.now()
    mint = MintRequest.objects.select_related("product__security").get(pk=mint.pk)
    if mint.state == "funded":
        if mint.needs_approval and mint.approved_by_id is None:
            return mint  # waits for a second person
        terms = ProductTerms.objects.select_related("broker").get(product=mint.product)
        if terms.market_hours_only and not calendar.is_market_open(now):
            return mint  # accepted and queued; the order goes out when the market opens
        # custody commits the order before calling the broker and dedupes on client_order_id, so a
        # crash here and a retry place exactly one order.
        order = custody_services.order_place(broker=terms.broker, security=mint.product.security, side="buy",
                                             quantity_nano=mint.quantity_nano, client_order_id=mint.stream,
                                             actor=actor)
        with transaction.atomic():
            mint = _lock(mint)
            if mint.state == "funded":
                _transition(mint, "place_order", actor=actor, refs={"order_id": order.pk},
                            update_fields={"broker_order": order})
    if mint.state == "order_placed":
        order = BrokerOrder.objects.get(pk=mint.broker_order_id)
        custody_services.order_sync(order=order, actor=actor)
        order.refresh_from_db()
        with transaction.atomic():
            mint = _lock(mint)
            if mint.state == "order_placed" and order.status == BrokerOrder.Status.FILLED:
                fills = list(Fill.objects.filter(order=order))
                cost = sum(f.gross_cents + f.fee_cents for f in fills)
                # The participant's cash pays for the shares (it leaves the bank for the broker).
                _transition(mint, "fill", actor=actor, refs={"order_id": order.pk, "cost_cents": cost},
                            postings=[Line(participant_cash(mint.participant_id), "USD", cost),
                                      Line(BANK, "USD", -cost)], update_fields={"cost_cents": cost})
                settles_on = max(f.settlement_date for f in fills)
                _transition(mint, "start_settling", actor=actor, refs={"settlement_date": settles_on})
            elif mint.state == "order_placed" and order.status in BrokerOrder.TERMINAL:
                mint_fail(mint=mint, actor=actor, reason=f"broker order {order.status}: {order.reject_reason}")
    if mint.state == "settling":
        with transaction.atomic():
            mint = _lock(mint)
            unsettled = Fill.objects.filter(order_id=mint.broker_order_id).exclude(status=Fill.Status.SETTLED)
            if mint.state == "settling" and not unsettled.exists():
                _transition(mint, "settle", actor=actor)
    if mint.state in ("settled", "shares_received"):
        mint_start_minting(mint=mint, actor=actor)
    return MintRequest.objects.get(pk=mint.pk)


def mint_start_minting(*, mint: MintRequest, actor: str) -> MintRequest:
    """Gate again, check coverage, reserve the tokens and write the chain operation, atomically."""
    try:
        with transaction.atomic():
            mint = _lock(mint)
            if mint.state not in ("settled", "shares_received"):
                return mint
            gates_passed = _gate_again(mint)
            assert_mint_covered(product=mint.product, chain=mint.chain, quantity_base_units=int(mint.token_base_units))
            symbol = mint.product.symbol
            refund = (mint.cash_received_cents - (mint.cost_cents or 0)) if not mint.in_kind else 0
            ChainOperation.objects.create(kind=ChainOperation.Kind.MINT, chain=mint.chain, product=mint.product,
                                          address=mint.wallet.address, amount_base_units=mint.token_base_units,
                                          request_reference=mint.stream)
            _transition(mint, "start_minting", actor=actor, refs={"compliance": gates_passed}, postings=[
                PendingOpen(f"tokens-{mint.stream}", debit=issuance_account(mint.chain, symbol),
                            credit=mint.product.tokens_account(mint.chain), asset=mint.product.token_asset(mint.chain),
                            amount=int(mint.token_base_units)),
                *_refund(mint, refund)])
    except gates.ComplianceRefusal as refusal:
        # A participant or wallet blocked since the request was accepted: stop and refund.
        mint_fail(mint=mint, actor=actor, reason=f"compliance: {refusal.code}")
    return mint


class _Undo(Exception):  # noqa: N818 - control flow
    pass


def _gate_again(request) -> str:
    """The compliance gate before any chain action. This request's own notional already counts
    against today's cap, so the check runs with it released, in a savepoint that is always undone."""
    try:
        with transaction.atomic():
            compliance_services.notional_usage_release(reference=request.stream)
            gates.assert_may_transact(participant=request.participant, wallet=request.wallet,
                                      notional_cents=request.notional_cents)
            raise _Undo
    except _Undo:
        return "passed"


def mint_confirm_on_chain(*, mint: MintRequest, tx_hash: str, actor: str) -> MintRequest:
    """The chain executor saw the mint confirmed at depth: tokens are outstanding."""
    with transaction.atomic():
        mint = _lock(mint)
        ChainOperation.objects.filter(request_reference=mint.stream).update(
            status=ChainOperation.Status.CONFIRMED, tx_hash=tx_hash)
        _transition(mint, "confirm_mint", actor=actor, refs={"tx_hash": tx_hash},
                    postings=[PendingPost(f"tokens-{mint.stream}")])
    return mint


# ----------------------------------------------------------------------------- redemptions

def redemption_request_create(*, participant: Participant, product_symbol: str, chain: str, quantity: str,
                              wallet_id: int, payout: str, actor: str, idempotency_key: str = "") -> Redemption:
    if payout not in Redemption.Payout.values:
        raise RequestError("payout must be \"cash\" or \"in_kind\"", code="invalid_payout")
    q, wallet, endpoint_ids = _request_context(participant, product_symbol, chain, quantity, wallet_id)
    if not q.terms.redemption_addresses.get(chain):
        raise RequestError(f"no redemption address is configured for {q.product.symbol} on {chain}",
                           code="product_not_offered")
    with transactions.step():
        now = timezone.now()
        redemption = sql.insert(Redemption(
            participant_id=participant.pk, product=q.product, chain=chain, wallet=wallet,
            quantity_nano=q.quantity_nano, token_base_units=q.token_base_units, notional_cents=q.notional_cents,
            payout=payout, state="requested", needs_approval=q.notional_cents > q.terms.approval_threshold_cents,
            version=1, delivery_account=participant_shares(participant.pk) if payout == Redemption.Payout.IN_KIND
            else "", idempotency_key=idempotency_key[:200], created_by=actor, created_at=now, updated_at=now))
        gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet,
                                              notional_cents=q.notional_cents, reference=redemption.stream)
        _append(redemption, [NewEvent(stream=redemption.stream, type="redemption.requested", data={
            "redemption_id": redemption.pk, "participant_id": participant.pk, "product": q.product.symbol,
            "chain": chain, "wallet_address": wallet.address, "quantity_nano": q.quantity_nano,
            "token_base_units": q.token_base_units, "payout": payout, "notional_cents": q.notional_cents,
            "needs_approval": redemption.needs_approval})], actor=actor, expected_version=0, savepoint=False)
        _notify(redemption, event_type="redemption.requested", previous_state="", endpoint_ids=endpoint_ids)
    return redemption


def redemption_address(redemption: Redemption) -> str:
    return ProductTerms.objects.get(product=redemption.product).redemption_addresses.get(redemption.chain, "")


def redemption_cancel(*, redemption: Redemption, actor: str, reason: str) -> Redemption:
    with transaction.atomic():
        redemption = _lock(redemption)
        _transition(redemption, "cancel", actor=actor, reason=reason or "cancelled")
        compliance_services.notional_usage_release(reference=redemption.stream)
    return redemption


def redemption_tokens_receive(*, redemption: Redemption, tx_hash: str, actor: str) -> Redemption:
    """The tokens reached the redemption address (the deposit watcher or operations saw it confirmed):
    gate again, then write the burn to the outbox."""
    with transaction.atomic():
        redemption = _lock(redemption)
        _transition(redemption, "receive_tokens", actor=actor, refs={"tx_hash": tx_hash},
                    update_fields={"deposit_tx": tx_hash})
        try:
            with transaction.atomic():
                gates_passed = _gate_again(redemption)
        except gates.ComplianceRefusal as refusal:
            _transition(redemption, "fail", actor=actor, reason=f"compliance: {refusal.code}")
            return redemption
        ChainOperation.objects.create(kind=ChainOperation.Kind.BURN, chain=redemption.chain,
                                      product=redemption.product, address=redemption_address(redemption),
                                      amount_base_units=redemption.token_base_units,
                                      request_reference=redemption.stream)
        _transition(redemption, "start_burning", actor=actor, refs={"compliance": gates_passed})
    return redemption


def redemption_confirm_burn(*, redemption: Redemption, tx_hash: str, actor: str) -> Redemption:
    """The chain executor saw the burn confirmed: the tokens are no longer outstanding."""
    with transaction.atomic():
        redemption = _lock(redemption)
        product, chain = redemption.product, redemption.chain
        ChainOperation.objects.filter(request_reference=redemption.stream).update(
            status=ChainOperation.Status.CONFIRMED, tx_hash=tx_hash)
        amount = int(redemption.token_base_units)
        _transition(redemption, "confirm_burn", actor=actor, refs={"tx_hash": tx_hash}, postings=[
            Line(product.tokens_account(chain), product.token_asset(chain), -amount),
            Line(issuance_account(chain, product.symbol), product.token_asset(chain), amount)])
    return redemption


def redemption_shares_deliver(*, redemption: Redemption, custodian_confirmation: str, user) -> Redemption:
    with transaction.atomic():
        redemption = _lock(redemption)
        terms = ProductTerms.objects.select_related("custodian").get(product=redemption.product)
        events = _transition(redemption, "deliver_shares", actor=f"user:{user.pk}",
                             refs={"custodian_confirmation": custodian_confirmation}, append_events=False)
        custody_services.shares_deliver_in_kind(
            custodian=terms.custodian, security=redemption.product.security, quantity_nano=redemption.quantity_nano,
            to_account=redemption.delivery_account, reference=redemption.stream,
            custodian_confirmation=custodian_confirmation, actor=f"user:{user.pk}", extra_events=events)
    return redemption


def redemption_payout_record(*, redemption: Redemption, bank_reference: str, user) -> Redemption:
    with transaction.atomic():
        redemption = _lock(redemption)
        proceeds = redemption.proceeds_cents or 0
        _transition(redemption, "pay_out", actor=f"user:{user.pk}", refs={"bank_reference": bank_reference},
                    postings=[Line(participant_cash(redemption.participant_id), "USD", proceeds),
                              Line(BANK, "USD", -proceeds)] if proceeds else [])
    return redemption


def redemption_advance(*, redemption: Redemption, actor: str, now=None) -> Redemption:
    now = now or timezone.now()
    redemption = Redemption.objects.select_related("product__security").get(pk=redemption.pk)
    if redemption.state == "burned" and not redemption.in_kind:
        if redemption.needs_approval and redemption.approved_by_id is None:
            return redemption
        terms = ProductTerms.objects.select_related("broker").get(product=redemption.product)
        if terms.market_hours_only and not calendar.is_market_open(now):
            return redemption
        order = custody_services.order_place(broker=terms.broker, security=redemption.product.security, side="sell",
                                             quantity_nano=redemption.quantity_nano,
                                             client_order_id=redemption.stream, actor=actor)
        with transaction.atomic():
            redemption = _lock(redemption)
            if redemption.state == "burned":
                _transition(redemption, "place_order", actor=actor, refs={"order_id": order.pk},
                            update_fields={"broker_order": order})
    if redemption.state == "order_placed":
        order = BrokerOrder.objects.get(pk=redemption.broker_order_id)
        custody_services.order_sync(order=order, actor=actor)
        order.refresh_from_db()
        with transaction.atomic():
            redemption = _lock(redemption)
            if redemption.state == "order_placed" and order.status == BrokerOrder.Status.FILLED:
                fills = list(Fill.objects.filter(order=order))
                proceeds = sum(f.gross_cents - f.fee_cents for f in fills)
                _transition(redemption, "fill", actor=actor, refs={"order_id": order.pk, "proceeds_cents": proceeds},
                            update_fields={"proceeds_cents": proceeds})
                _transition(redemption, "start_settling", actor=actor,
                            refs={"settlement_date": max(f.settlement_date for f in fills)})
    if redemption.state == "settling":
        with transaction.atomic():
            redemption = _lock(redemption)
            unsettled = Fill.objects.filter(order_id=redemption.broker_order_id).exclude(status=Fill.Status.SETTLED)
            if redemption.state == "settling" and not unsettled.exists():
                proceeds = redemption.proceeds_cents or 0
                # The sale's proceeds reach the bank at settlement and are owed to the participant.
                _transition(redemption, "settle", actor=actor, postings=[
                    Line(BANK, "USD", proceeds), Line(participant_cash(redemption.participant_id), "USD", -proceeds)]
                    if proceeds else [])
    return Redemption.objects.get(pk=redemption.pk)


# --------------------------------------------------------------------------------- webhooks

def _notify(request, *, event_type: str, previous_state: str, endpoint_ids: list[int] | None = None) -> None:
    """Queue one delivery per active endpoint of the request's participant, in the same transaction
    (`endpoint_ids` when the caller has just read them)."""
    from mint_redeem.webhooks import request_payload

    if endpoint_ids is None:
        endpoint_ids = selectors.active_webhook_endpoint_ids(participant_id=request.participant_id)
    if not endpoint_ids:
        return
    event_id = f"{request.stream}.{request.version}.{request.state}"
    payload = {"id": event_id, "type": event_type, "created_at": timezone.now().isoformat(),
               "previous_state": previous_state, "data": request_payload(request)}
    # Due now: sent by the task queued on commit, or by the retry beat if the process dies before that.
    now = timezone.now()
    deliveries = [WebhookDelivery(endpoint_id=endpoint_id, event_id=event_id, event_type=event_type, payload=payload,
                                  next_attempt_at=now) for endpoint_id in endpoint_ids]
    # event_id carries the stream version, so it is new for every transition.
    ids = [d.pk for d in WebhookDelivery.objects.bulk_create(deliveries)]
    if ids:
        from mint_redeem.tasks import deliver_webhook

        transaction.on_commit(lambda: [deliver_webhook.delay(delivery_id) for delivery_id in ids])
